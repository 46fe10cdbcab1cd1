"""The device gateway: the WebSocket endpoint devices hold open (`/device/v1`).

This module speaks the protocol of docs/device-protocol.md: it reads frames, checks their shape,
calls the rules in fleet/gateway.py and fleet/events.py and writes the replies (refusing a
paused organization's new publishes and location points: `fleet.pauses`). It also owns
what only a live connection knows: heartbeats and the silence watchdog, the in-memory
`lastHeardAt` between flushes, publish rate limits, the cloud's requests waiting for the
device's reply, the device's subscriptions (a `fleet.subscriptions.Feed`, ended with the
connection), and the registry of this process's connections, so that a device connecting
again closes its older connection (`replaced`), here or, through the broker, in the process
that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from core import clock
from core.errors import ErrorCode, InvalidInput, LimitReached
from core.metering import iso_utc
from core.settings import Settings
from core.text import storable as text_storable
from fleet import events, gateway, locations, pauses, rpc, subscriptions
from fleet.errors import FleetCode
from fleet.gateway import DeviceDenied, Hello
from fleet.rate_limit import TokenBucket

log = logging.getLogger("devicecloud.gateway")

# Room for an event at the largest data limit (16 KiB) even if every character is escaped.
MAX_FRAME_BYTES = 128 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds from the upgrade to `hello`
MAX_FRAME_ID = 2**31 - 1
MAX_PRODUCT_ID = 2**63 - 1
MAX_NAMES = 64
MAX_ERROR_MESSAGE = 1024
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# How long a connection trusts what it knows of its device's product (the team may move it).
TARGET_REFRESH = timedelta(seconds=5)
# The acknowledged message IDs a connection remembers, so that retransmitting them costs
# neither a write nor a rate-limit token.
REMEMBERED_MESSAGES = 256
MAX_INT32 = 2**31 - 1


class CloseCode(IntEnum):
    UNAUTHORIZED = 4401
    DENIED = 4403
    TIMEOUT = 4408
    REPLACED = 4409
    INTERNAL = 1011


class FrameCode(StrEnum):
    """The `code` of the cloud's error frames (docs/device-protocol.md, "Errors from the
    cloud")."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LARGE = "frame_too_large"
    RATE_LIMITED = "rate_limited"
    INVALID_NAME = "invalid_name"
    RESERVED_NAME = "reserved_name"
    DATA_TOO_LARGE = "data_too_large"
    INVALID_LOCATION = "invalid_location"
    UNAVAILABLE = "unavailable"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    DATA_LIMIT_REACHED = "data_limit_reached"
    HELLO_REQUIRED = "hello_required"
    UNAUTHORIZED = "unauthorized"
    DENIED = "denied"
    REPLACED = "replaced"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


# The publishing rules' codes a device sees; data the rules refuse as unstorable text never
# gets this far (`parse_frame` refuses it as `bad_frame`).
_PUBLISH_CODES: dict[ErrorCode, FrameCode] = {
    FleetCode.INVALID_NAME: FrameCode.INVALID_NAME,
    FleetCode.RESERVED_NAME: FrameCode.RESERVED_NAME,
    FleetCode.DATA_TOO_LARGE: FrameCode.DATA_TOO_LARGE,
}


class BadFrame(Exception):
    """A frame the cloud refuses with an error frame (`code`), naming it by `reply_to`."""

    def __init__(self, message: str, *, code: FrameCode = FrameCode.BAD_FRAME,
                 reply_to: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reply_to = reply_to
        self.details = details or {}


class Disconnected(Exception):
    """The device closed the connection."""


def _frame_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_FRAME_ID:
        return value
    return None


def parse_frame(text: str) -> tuple[str, int, dict[str, Any]]:
    """The type, ID and body of one text frame; `BadFrame` if it is not a well-formed frame."""
    if len(text) > MAX_FRAME_BYTES or len(text.encode()) > MAX_FRAME_BYTES:
        raise BadFrame(f"A frame is at most {MAX_FRAME_BYTES} bytes.",
                       code=FrameCode.FRAME_TOO_LARGE)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python allows
        raise BadFrame("The frame is not JSON.") from None
    if not isinstance(body, dict):
        raise BadFrame("A frame is a JSON object.")
    if not text_storable(body):
        raise BadFrame(
            "Strings must be Unicode text without NUL characters or unpaired surrogates.",
            reply_to=_frame_id(body.get("id")),
        )
    kind = body.get("type")
    if kind in ("reply", "ack"):  # the device's answer to a request or a delivery of the cloud
        reply_to = _frame_id(body.get("replyTo"))
        if reply_to is None:
            raise BadFrame(f"`replyTo` is required: an integer from 1 to {MAX_FRAME_ID}.")
        return kind, reply_to, body
    frame_id = _frame_id(body.get("id"))
    if frame_id is None:
        raise BadFrame(f"`id` is required: an integer from 1 to {MAX_FRAME_ID}.")
    if not isinstance(kind, str) or not kind:
        raise BadFrame("`type` is required: a string.", reply_to=frame_id)
    return kind, frame_id, body


def _string(
    body: dict[str, Any],
    field: str,
    frame_id: int,
    *,
    low: int = 1,
    high: int = 64,
    optional: bool = False,
) -> str | None:
    value = body.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise BadFrame(
            f"`{field}` must be a string of {low} to {high} characters.", reply_to=frame_id
        )
    return value


def _names(body: dict[str, Any], field: str, frame_id: int) -> list[str]:
    value = body.get(field)
    if (
        not isinstance(value, list)
        or len(value) > MAX_NAMES
        or not all(isinstance(name, str) and _NAME.fullmatch(name) for name in value)
    ):
        raise BadFrame(
            f"`{field}` must be a list of at most {MAX_NAMES} names of 1 to 64 letters, digits, "
            "'_' or '-'.",
            reply_to=frame_id,
        )
    return value


def parse_hello(frame_id: int, body: dict[str, Any]) -> Hello:
    product_id = body.get("productId", ...)
    if product_id is not None and not (
        isinstance(product_id, int)
        and not isinstance(product_id, bool)
        and 1 <= product_id <= MAX_PRODUCT_ID
    ):
        raise BadFrame(
            "`productId` is required: a product ID, or null for generic firmware.",
            reply_to=frame_id,
        )
    return Hello(
        product_id=product_id,
        firmware_version=_string(body, "firmwareVersion", frame_id) or "",
        system_firmware_version=_string(body, "systemFirmwareVersion", frame_id) or "",
        functions=_names(body, "functions", frame_id),
        variables=_names(body, "variables", frame_id),
        claim_code=_string(body, "claimCode", frame_id, optional=True),
    )


class DeviceConnection:
    """One device's open WebSocket. Sends are serialized: another connection of the same device
    may close this one while it is answering a frame."""

    def __init__(self, websocket: WebSocket, settings: Settings):
        self.websocket = websocket
        self.error_reports = TokenBucket(settings.device_error_rate, settings.device_error_burst)
        self.publishes = TokenBucket(settings.device_event_rate, settings.device_event_burst)
        self.acknowledged: deque[str] = deque(maxlen=REMEMBERED_MESSAGES)
        # Refused publishes not yet added to the device's counter, and the bucket that spaces
        # the connection's own writes of them.
        self.refused = 0
        self.refusal_writes = TokenBucket(
            1 / gateway.RATE_LIMITED_FLUSH_INTERVAL.total_seconds(), 1
        )
        self.closed = False
        self.device_id = ""
        self.session_id = ""
        self.heard_at: datetime = clock.now()
        # Where the device's events go and their data limit, as of `target_read_at`.
        self.event_product_id: int | None = None
        self.event_data_limit = events.DEFAULT_DATA_LIMIT
        self.target_read_at: datetime = clock.now()
        # The cloud's requests (function calls, variable reads) waiting for the device.
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        self._lock = asyncio.Lock()
        self.settings = settings
        # The device's subscriptions, from its first `subscribe` until the connection ends.
        self.feed: subscriptions.Feed | None = None

    def new_request_id(self) -> int:
        """An ID for a frame the cloud sends (a request or a delivery), distinct from those
        still waiting for the device's answer."""
        self._next_request = self._next_request % MAX_FRAME_ID + 1
        return self._next_request

    async def deliver(self, delivery: subscriptions.Delivery) -> None:
        """Write a delivery as an `event` frame (the same frame when it is sent again)."""
        event = delivery.event
        await self.send({
            "type": "event", "id": delivery.id, "name": event.name, "data": event.data,
            "publishedAt": event.published_at.astimezone(UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "deviceId": event.device_id, "private": event.private,
        })

    async def tell_paused(self, pause: pauses.Pause) -> None:
        """Tell the device its deliveries are withheld until the pause ends (the feed does,
        once a pause)."""
        await self.refuse(_paused(pause, None))

    async def ask(self, frame: dict[str, Any], within: float) -> dict[str, Any]:
        """Send the device a request frame and wait for its `reply` (`rpc.DeviceFailed`
        when the device is gone or silent)."""
        request_id = self.new_request_id()
        answered = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = answered
        try:
            await self.send({**frame, "id": request_id})
            if self.closed:
                raise rpc.DeviceFailed(rpc.Failure.OFFLINE)
            async with asyncio.timeout(within):
                return await answered
        except TimeoutError:
            raise rpc.DeviceFailed(
                rpc.Failure.TIMED_OUT, f"The device did not answer within {within:g} seconds."
            ) from None
        finally:
            self.waiting.pop(request_id, None)

    def abandon_requests(self) -> None:
        """The connection ended: every request still waiting fails as offline."""
        for answered in self.waiting.values():
            if not answered.done():
                answered.set_exception(rpc.DeviceFailed(rpc.Failure.OFFLINE))

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._lock:
            if self.closed:
                return
            try:
                await self.websocket.send_text(json.dumps(frame, separators=(",", ":")))
            except (WebSocketDisconnect, RuntimeError):
                self.closed = True  # the device is already gone

    async def refuse(self, error: BadFrame) -> None:
        """Answer a frame with an error frame; the connection stays open."""
        await self.send({**_error_frame(error.code, error.message, error.reply_to),
                         **error.details})

    async def close(
        self, close_code: CloseCode, code: FrameCode, message: str, reply_to: int | None = None
    ) -> None:
        """Send an error frame, then close the connection with `close_code`."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                await self.websocket.send_text(
                    json.dumps(_error_frame(code, message, reply_to), separators=(",", ":"))
                )
                await self.websocket.close(close_code)
            except (WebSocketDisconnect, RuntimeError):
                pass  # the device is already gone

    async def receive(self, deadline: float) -> tuple[str, int, dict[str, Any]]:
        """The next frame, received before `deadline` (event-loop time; `TimeoutError` after).
        Raises `BadFrame` for a malformed frame and `Disconnected` when the device left."""
        async with asyncio.timeout_at(deadline):
            message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            raise Disconnected
        self.heard_at = clock.now()
        text = message.get("text")
        if text is None:
            raise BadFrame("Frames are JSON text messages, not binary ones.")
        return parse_frame(text)


def _paused(pause: pauses.Pause, reply_to: int | None) -> BadFrame:
    """The `data_limit_reached` error frame of a paused organization's device, with the
    pause's end."""
    return BadFrame(pause.message, code=FrameCode.DATA_LIMIT_REACHED, reply_to=reply_to,
                    details={"until": iso_utc(pause.until)})


def _error_frame(code: FrameCode, message: str, reply_to: int | None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reply_to is not None:
        frame["replyTo"] = reply_to
    return frame


class DeviceGateway:
    """The ASGI endpoint of `/device/v1`, with the registry of this process's connections."""

    def __init__(self, settings: Settings, router: rpc.Router):
        self.settings = settings
        self.router = router
        router.handler = self._device_request
        router.close_handler = self._close_replaced
        self.connections: dict[str, DeviceConnection] = {}
        self._heard: dict[str, datetime] = {}  # session ID: the time of its last frame
        self._welcome_locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        connection = DeviceConnection(websocket, self.settings)
        try:
            await self._serve(connection)
        except Disconnected:
            pass
        except Exception:
            log.exception("device connection failed", extra={"device": connection.device_id})
            await connection.close(
                CloseCode.INTERNAL, FrameCode.INTERNAL, "The cloud failed; reconnect."
            )
        finally:
            await self._forget(connection)

    async def _serve(self, connection: DeviceConnection) -> None:
        loop = asyncio.get_running_loop()
        handshake_deadline = loop.time() + HANDSHAKE_TIMEOUT
        try:
            if not await self._authenticate(connection, handshake_deadline):
                return
            keepalive = await self._hello(connection, handshake_deadline)
        except TimeoutError:
            await connection.close(
                CloseCode.TIMEOUT, FrameCode.TIMEOUT,
                f"No auth and hello within {HANDSHAKE_TIMEOUT:g} s.",
            )
            return
        if keepalive is None:
            return
        silence = 2 * keepalive
        while not connection.closed:
            try:
                kind, frame_id, body = await connection.receive(loop.time() + silence)
            except TimeoutError:
                await connection.close(
                    CloseCode.TIMEOUT, FrameCode.TIMEOUT, f"Nothing heard for {silence} s."
                )
                return
            except BadFrame as error:
                await connection.refuse(error)
                self._note_heard(connection)
                continue
            await self._handle(connection, kind, frame_id, body)
            self._note_heard(connection)

    async def _authenticate(self, connection: DeviceConnection, deadline: float) -> bool:
        try:
            kind, frame_id, body = await connection.receive(deadline)
        except BadFrame as error:
            await connection.close(
                CloseCode.UNAUTHORIZED,
                FrameCode.UNAUTHORIZED,
                "The first frame must be a well-formed `auth`.",
                error.reply_to,
            )
            return False
        if kind != "auth":
            await connection.close(
                CloseCode.UNAUTHORIZED, FrameCode.UNAUTHORIZED, "The first frame must be `auth`.",
                frame_id,
            )
            return False
        device_id, secret = body.get("deviceId"), body.get("secret")
        device = None
        if isinstance(device_id, str) and isinstance(secret, str) and len(secret) <= 256:
            device = await gateway.authenticate(device_id, secret)
        if device is None:
            await connection.close(
                CloseCode.UNAUTHORIZED, FrameCode.UNAUTHORIZED, "Wrong device ID or secret.",
                frame_id,
            )
            return False
        connection.device_id = device.id
        await connection.send({"type": "ok", "replyTo": frame_id})
        return True

    async def _hello(self, connection: DeviceConnection, deadline: float) -> int | None:
        """Wait for a valid hello and welcome the device; the keepAlive it was given, or None
        if it was refused."""
        while True:
            try:
                kind, frame_id, body = await connection.receive(deadline)
                if kind != "hello":
                    raise BadFrame("Say `hello` first.", code=FrameCode.HELLO_REQUIRED,
                                   reply_to=frame_id)
                hello = parse_hello(frame_id, body)
            except BadFrame as error:
                await connection.refuse(error)
                continue
            break
        keepalive = self.settings.device_keepalive
        # One welcome at a time per device: the registry then agrees with the order in which
        # the database gave out sessions, and the newest connection is the one that stays.
        lock = self._welcome_locks.setdefault(connection.device_id, asyncio.Lock())
        older: DeviceConnection | None = None

        def register(session_id: str) -> None:
            # As the session commits: a call to the device, now online, finds this connection.
            nonlocal older
            connection.session_id = session_id
            older = self.connections.get(connection.device_id)
            self.connections[connection.device_id] = connection

        async with lock:
            try:
                welcome = await gateway.welcome(connection.device_id, hello, register)
            except DeviceDenied as error:
                await connection.close(CloseCode.DENIED, FrameCode.DENIED, error.message, frame_id)
                return None
            connection.event_product_id = welcome.event_product_id
            connection.event_data_limit = welcome.event_data_limit
            connection.target_read_at = clock.now()
        if welcome.replaced_session_id is not None:
            await self.router.close_elsewhere(connection.device_id, welcome.replaced_session_id)
        if older is not None:
            await older.close(
                CloseCode.REPLACED,
                FrameCode.REPLACED,
                "The device connected again; this connection is replaced.",
            )
        await connection.send(
            {
                "type": "welcome",
                "replyTo": frame_id,
                "productId": welcome.assignment.product_id,
                "quarantined": welcome.assignment.quarantined,
                "keepAlive": keepalive,
                **({"claimed": True} if welcome.claimed else {}),
            }
        )
        return keepalive

    async def _handle(
        self, connection: DeviceConnection, kind: str, frame_id: int, body: dict[str, Any]
    ) -> None:
        if kind == "ping":
            await connection.send({"type": "pong", "replyTo": frame_id})
        elif kind == "publish":
            await self._publish(connection, frame_id, body)
        elif kind == "location":
            await self._location(connection, frame_id, body)
        elif kind in ("subscribe", "unsubscribe"):
            await self._subscription(connection, kind, frame_id, body)
        elif kind == "ack":
            # Of a delivery: one acknowledged already (both copies of a retransmission) or
            # dropped is no error.
            if connection.feed is not None:
                connection.feed.acknowledge(frame_id)
        elif kind == "reply":
            answered = connection.waiting.get(frame_id)
            if answered is None or answered.done():
                await connection.refuse(BadFrame(
                    f"No request {frame_id} is waiting for a reply.", reply_to=frame_id
                ))
            else:
                answered.set_result(body)
        elif kind == "error":
            try:
                device_code = _string(body, "code", frame_id) or ""
                message = (
                    _string(body, "message", frame_id, low=0, high=MAX_ERROR_MESSAGE, optional=True)
                    or ""
                )
                reset_reason = _string(body, "resetReason", frame_id, optional=True)
            except BadFrame as error:
                await connection.refuse(error)
                return
            if not connection.error_reports.take():
                await connection.refuse(BadFrame(
                    "Too many error reports; this one was not stored.", code=FrameCode.RATE_LIMITED,
                    reply_to=frame_id,
                ))
                return
            await gateway.record_error(connection.device_id, device_code, message, reset_reason)
            await connection.send({"type": "ack", "replyTo": frame_id})
        elif kind in ("auth", "hello"):
            await connection.refuse(
                BadFrame(f"`{kind}` was already said on this connection.", reply_to=frame_id)
            )
        else:
            await connection.refuse(
                BadFrame(
                    f"Unknown frame type `{kind[:64]}`.", code=FrameCode.UNKNOWN_TYPE,
                    reply_to=frame_id,
                )
            )

    async def _subscription(
        self, connection: DeviceConnection, kind: str, frame_id: int, body: dict[str, Any]
    ) -> None:
        """Add or remove a subscription, then acknowledge it."""
        prefix = body.get("prefix")
        if not isinstance(prefix, str):
            await connection.refuse(BadFrame("`prefix` is required: a string.",
                                             reply_to=frame_id))
            return
        if connection.feed is None:
            connection.feed = subscriptions.Feed(
                connection.device_id, send=connection.deliver, paused=connection.tell_paused,
                new_id=connection.new_request_id, settings=self.settings,
            )
        try:
            if kind == "subscribe":
                await connection.feed.subscribe(prefix)
            else:
                await connection.feed.unsubscribe(prefix)
        except InvalidInput as error:
            await connection.refuse(BadFrame(error.message, code=FrameCode.INVALID_NAME,
                                             reply_to=frame_id))
            return
        except LimitReached as error:
            await connection.refuse(BadFrame(
                error.message, code=FrameCode.TOO_MANY_SUBSCRIPTIONS, reply_to=frame_id
            ))
            return
        await connection.send({"type": "ack", "replyTo": frame_id})

    async def _publish(
        self, connection: DeviceConnection, frame_id: int, body: dict[str, Any]
    ) -> None:
        """Store a published event, then acknowledge it: an `ack` means it is durably stored.
        A retransmission (the same `messageId`) is acknowledged and stored once. While the
        device's organization is paused, a new event is neither stored nor acknowledged; a
        retransmission of a stored one is acknowledged still."""
        try:
            event = await self._parse_publish(connection, frame_id, body)
        except BadFrame as error:
            await connection.refuse(error)
            return
        assert event.message_id is not None
        if event.message_id in connection.acknowledged:  # stored already: nothing to spend
            await connection.send({"type": "ack", "replyTo": frame_id})
            return
        pause = await pauses.refusing_publish(connection.device_id, event.product_id,
                                              event.message_id)
        if pause is not None:
            await connection.refuse(_paused(pause, frame_id))
            return
        if not connection.publishes.take():
            connection.refused += 1
            if connection.refusal_writes.take():
                await self._write_refused(connection)
            await connection.refuse(BadFrame(
                "Too many events; this one was not stored. Publish about once a second, in "
                f"bursts of at most {self.settings.device_event_burst}.",
                code=FrameCode.RATE_LIMITED, reply_to=frame_id,
            ))
            return
        try:
            (stored,) = await events.record([event])
        except events.EventsUnavailable as error:
            await connection.refuse(BadFrame(error.message, code=FrameCode.UNAVAILABLE,
                                             reply_to=frame_id))
            return
        if stored is None:  # a retransmission of an event stored on an earlier connection
            connection.publishes.give_back()
        connection.acknowledged.append(event.message_id)
        await connection.send({"type": "ack", "replyTo": frame_id})

    async def _location(
        self, connection: DeviceConnection, frame_id: int, body: dict[str, Any]
    ) -> None:
        """Store a frame's location points, all or none, then acknowledge it: an `ack` means
        they are durably stored. A frame costs one token of the publish rate limit, and a
        retransmission (the same `messageId`) is acknowledged and stored once, as publishes.
        While the device's organization is paused, new points are neither stored nor
        acknowledged; a retransmission of stored ones is acknowledged still."""
        message_id = body.get("messageId")
        if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
            await connection.refuse(BadFrame(
                "`messageId` is required: 1 to 64 letters, digits, '_', '-', '.' or ':', the "
                "same when the frame is sent again.", reply_to=frame_id))
            return
        now = clock.now()
        try:
            points = locations.check_points(body.get("points"), now)
        except locations.InvalidPoint as error:
            details: dict[str, Any] = {"field": error.field}
            if error.index is not None:
                details["point"] = error.index
            await connection.refuse(BadFrame(error.message, code=FrameCode.INVALID_LOCATION,
                                             reply_to=frame_id, details=details))
            return
        remembered = f"location/{message_id}"  # '/' is in no message ID: no event's
        if remembered in connection.acknowledged:
            await connection.send({"type": "ack", "replyTo": frame_id})
            return
        await self._refresh_target(connection)
        pause = await pauses.refusing_location(connection.device_id,
                                               connection.event_product_id, message_id)
        if pause is not None:
            await connection.refuse(_paused(pause, frame_id))
            return
        if not connection.publishes.take():
            await connection.refuse(BadFrame(
                "Too many frames; these points were not stored. Send them again later (same "
                "`messageId`).", code=FrameCode.RATE_LIMITED, reply_to=frame_id,
            ))
            return
        try:
            stored = await locations.store(connection.device_id, connection.event_product_id,
                                           message_id, points, now)
        except Exception:
            log.exception("storing location points failed",
                          extra={"device": connection.device_id})
            await connection.refuse(BadFrame(
                "The points could not be stored; send them again (same `messageId`).",
                code=FrameCode.UNAVAILABLE, reply_to=frame_id,
            ))
            return
        if not stored:  # a retransmission of a frame stored on an earlier connection
            connection.publishes.give_back()
        connection.acknowledged.append(remembered)
        await connection.send({"type": "ack", "replyTo": frame_id})

    @staticmethod
    async def _refresh_target(connection: DeviceConnection) -> None:
        """Read the device's product again once what the connection knows of it is stale."""
        if clock.now() - connection.target_read_at >= TARGET_REFRESH:
            connection.event_product_id, connection.event_data_limit = (
                await gateway.event_target(connection.device_id)
            )
            connection.target_read_at = clock.now()

    @staticmethod
    async def _write_refused(connection: DeviceConnection) -> None:
        """Add the connection's refused publishes to its device's counter."""
        count, connection.refused = connection.refused, 0
        if not count:
            return
        try:
            await gateway.record_rate_limited(Counter({connection.device_id: count}))
        except Exception:  # the database is down: the flusher tries again
            connection.refused += count
            log.exception("counting rate-limited events failed")

    async def _parse_publish(
        self, connection: DeviceConnection, frame_id: int, body: dict[str, Any]
    ) -> events.NewEvent:
        message_id = body.get("messageId")
        if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
            raise BadFrame("`messageId` is required: 1 to 64 letters, digits, '_', '-', '.' "
                           "or ':', the same when the event is sent again.", reply_to=frame_id)
        name, data, private = body.get("name"), body.get("data", ""), body.get("private", True)
        if not isinstance(name, str):
            raise BadFrame("`name` is required: a string.", reply_to=frame_id)
        if not isinstance(data, str):
            raise BadFrame("`data` must be a string.", reply_to=frame_id)
        if not isinstance(private, bool):
            raise BadFrame("`private` must be true or false.", reply_to=frame_id)
        await self._refresh_target(connection)
        try:
            events.check_name(name)
            events.check_data(data, connection.event_data_limit)
        except InvalidInput as error:
            raise BadFrame(error.message, code=_PUBLISH_CODES.get(error.code, FrameCode.BAD_FRAME),
                           reply_to=frame_id) from None
        return events.NewEvent(
            product_id=connection.event_product_id,
            device_id=connection.device_id,
            name=name,
            data=data,
            published_at=clock.now(),
            private=private,
            message_id=message_id,
            device_publish=True,
        )

    async def _device_request(self, request: rpc.Request, within: float) -> rpc.Value:
        """Ask a device connected here (the router calls this, for any process's caller)."""
        connection = self.connections.get(request.device_id)
        if connection is None or connection.closed or connection.session_id != request.session_id:
            raise rpc.DeviceFailed(rpc.Failure.OFFLINE)
        frame: dict[str, Any] = {"type": request.kind.value, "name": request.name}
        if request.kind is rpc.Kind.CALL:
            frame["argument"] = request.argument
        reply = await connection.ask(frame, within)
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise rpc.DeviceFailed(
                rpc.Failure.NOT_FOUND if code == "not_found" else rpc.Failure.FAILED,
                str(message)[:MAX_ERROR_MESSAGE] if isinstance(message, str) else "",
                answered=True,
            )
        value: Any = reply.get("value")  # untrusted JSON, checked here
        if request.kind is rpc.Kind.CALL:
            valid = isinstance(value, int) and not isinstance(value, bool) and (
                -MAX_INT32 - 1 <= value <= MAX_INT32
            )
        else:
            valid = isinstance(value, bool | int | float | str)
        if not valid:
            await connection.refuse(BadFrame(
                "`value` must be a 32-bit integer for a call, and a boolean, number or string "
                "for a variable.", reply_to=None,
            ))
            raise rpc.DeviceFailed(rpc.Failure.FAILED, "The device answered with a bad value.",
                                   answered=True)
        return value

    async def _close_replaced(self, device_id: str, session_id: str) -> None:
        """Another process welcomed the device again: close the older connection held here."""
        connection = self.connections.get(device_id)
        if connection is not None and connection.session_id == session_id:
            await connection.close(
                CloseCode.REPLACED,
                FrameCode.REPLACED,
                "The device connected again; this connection is replaced.",
            )

    def _note_heard(self, connection: DeviceConnection) -> None:
        """Note when the device was last heard; `heard_flusher` writes the notes in batches."""
        if connection.session_id:
            self._heard[connection.session_id] = connection.heard_at

    async def flush_heard(self) -> None:
        """Write `lastHeardAt` for every device heard since the last pass."""
        heard, self._heard = self._heard, {}
        try:
            await gateway.record_heard(heard)
        except Exception:  # the database is down: these notes wait for the next pass
            for session_id, heard_at in heard.items():
                self._heard[session_id] = max(heard_at, self._heard.get(session_id, heard_at))
            log.exception("writing lastHeardAt failed")

    async def flush_refused(self) -> None:
        """Add the refused publishes that connections have not written yet to the devices'
        counters, in one batch."""
        refused: Counter[str] = Counter()
        pending = [c for c in self.connections.values() if c.refused]
        for connection in pending:
            refused[connection.device_id] += connection.refused
            connection.refused = 0
        try:
            await gateway.record_rate_limited(refused)
        except Exception:  # the database is down: these counts wait for the next pass
            for connection in pending:
                connection.refused += refused[connection.device_id]
            log.exception("counting rate-limited events failed")

    @contextlib.asynccontextmanager
    async def heard_flusher(self) -> AsyncIterator[None]:
        """While the block (the app's lifespan) runs, write `lastHeardAt` every
        `HEARD_FLUSH_INTERVAL` and the refused publishes every `RATE_LIMITED_FLUSH_INTERVAL`."""

        async def every(interval: timedelta, flush: Callable[[], Awaitable[None]]) -> None:
            while True:
                await asyncio.sleep(interval.total_seconds())
                await flush()

        tasks = [
            asyncio.create_task(
                every(gateway.HEARD_FLUSH_INTERVAL, self.flush_heard), name="last-heard-flusher"
            ),
            asyncio.create_task(
                every(gateway.RATE_LIMITED_FLUSH_INTERVAL, self.flush_refused),
                name="rate-limited-flusher",
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    async def _forget(self, connection: DeviceConnection) -> None:
        """The connection ended: mark the device offline unless a newer connection has it."""
        connection.abandon_requests()
        if connection.feed is not None:
            await connection.feed.close()
        await self._write_refused(connection)
        if not connection.session_id:
            return
        if self.connections.get(connection.device_id) is connection:
            del self.connections[connection.device_id]
            lock = self._welcome_locks.get(connection.device_id)
            if lock is not None and not lock.locked():
                del self._welcome_locks[connection.device_id]
        await gateway.disconnect(connection.device_id, connection.session_id, connection.heard_at)
