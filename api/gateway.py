"""The device gateway: the WebSocket endpoint devices hold open (`/device/v1`).

This module speaks the protocol of docs/device-protocol.md: it reads frames, checks their shape,
calls the rules in fleet/gateway.py and writes the replies. It also owns what only a live
connection knows: heartbeats and the silence watchdog, the in-memory `lastHeardAt` between
flushes, and the registry of this process's connections, so that a device connecting again
closes its older connection (`replaced`). A device's older connection held by another process
is made harmless by its session ID (see fleet/gateway.py); closing it arrives with the broker
in issue 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from enum import IntEnum
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from core import clock
from core.settings import Settings
from fleet import gateway
from fleet.gateway import DeviceDenied, Hello
from fleet.rate_limit import TokenBucket

log = logging.getLogger("devicecloud.gateway")

MAX_FRAME_BYTES = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds from the upgrade to `hello`
MAX_FRAME_ID = 2**31 - 1
MAX_PRODUCT_ID = 2**63 - 1
MAX_NAMES = 64
MAX_ERROR_MESSAGE = 1024
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CloseCode(IntEnum):
    UNAUTHORIZED = 4401
    DENIED = 4403
    TIMEOUT = 4408
    REPLACED = 4409
    INTERNAL = 1011


class BadFrame(Exception):
    """A frame the cloud refuses with an error frame (`code`), naming it by `reply_to`."""

    def __init__(self, message: str, *, code: str = "bad_frame", reply_to: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reply_to = reply_to


class Disconnected(Exception):
    """The device closed the connection."""


def _frame_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_FRAME_ID:
        return value
    return None


def parse_frame(text: str) -> tuple[str, int, dict[str, Any]]:
    """The type, ID and body of one text frame; `BadFrame` if it is not a well-formed frame."""
    if len(text) > MAX_FRAME_BYTES or len(text.encode()) > MAX_FRAME_BYTES:
        raise BadFrame(f"A frame is at most {MAX_FRAME_BYTES} bytes.", code="frame_too_large")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python allows
        raise BadFrame("The frame is not JSON.") from None
    if not isinstance(body, dict):
        raise BadFrame("A frame is a JSON object.")
    frame_id = _frame_id(body.get("id"))
    if frame_id is None:
        raise BadFrame(f"`id` is required: an integer from 1 to {MAX_FRAME_ID}.")
    kind = body.get("type")
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
        or not all(isinstance(name, str) and _NAME.match(name) for name in value)
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
        self.closed = False
        self.device_id = ""
        self.session_id = ""
        self.heard_at: datetime = clock.now()
        self._lock = asyncio.Lock()

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
        await self.send(_error_frame(error.code, error.message, error.reply_to))

    async def close(
        self, close_code: CloseCode, code: str, message: str, reply_to: int | None = None
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


def _error_frame(code: str, message: str, reply_to: int | None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reply_to is not None:
        frame["replyTo"] = reply_to
    return frame


class DeviceGateway:
    """The ASGI endpoint of `/device/v1`, with the registry of this process's connections."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.connections: dict[str, DeviceConnection] = {}
        self._heard: set[str] = set()
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
            await connection.close(CloseCode.INTERNAL, "internal", "The cloud failed; reconnect.")
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
                CloseCode.TIMEOUT, "timeout", f"No auth and hello within {HANDSHAKE_TIMEOUT:g} s."
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
                    CloseCode.TIMEOUT, "timeout", f"Nothing heard for {silence} s."
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
                "unauthorized",
                "The first frame must be a well-formed `auth`.",
                error.reply_to,
            )
            return False
        if kind != "auth":
            await connection.close(
                CloseCode.UNAUTHORIZED, "unauthorized", "The first frame must be `auth`.", frame_id
            )
            return False
        device_id, secret = body.get("deviceId"), body.get("secret")
        device = None
        if isinstance(device_id, str) and isinstance(secret, str) and len(secret) <= 256:
            device = await gateway.authenticate(device_id, secret)
        if device is None:
            await connection.close(
                CloseCode.UNAUTHORIZED, "unauthorized", "Wrong device ID or secret.", frame_id
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
                    raise BadFrame("Say `hello` first.", code="hello_required", reply_to=frame_id)
                hello = parse_hello(frame_id, body)
            except BadFrame as error:
                await connection.refuse(error)
                continue
            break
        keepalive = self.settings.device_keepalive
        # One welcome at a time per device: the registry then agrees with the order in which
        # the database gave out sessions, and the newest connection is the one that stays.
        lock = self._welcome_locks.setdefault(connection.device_id, asyncio.Lock())
        async with lock:
            try:
                welcome = await gateway.welcome(connection.device_id, hello)
            except DeviceDenied as error:
                await connection.close(CloseCode.DENIED, "denied", error.message, frame_id)
                return None
            connection.session_id = welcome.session_id
            older = self.connections.get(connection.device_id)
            self.connections[connection.device_id] = connection
        if older is not None:
            await older.close(
                CloseCode.REPLACED,
                "replaced",
                "The device connected again; this connection is replaced.",
            )
        await connection.send(
            {
                "type": "welcome",
                "replyTo": frame_id,
                "productId": welcome.assignment.product_id,
                "quarantined": welcome.assignment.quarantined,
                "keepAlive": keepalive,
            }
        )
        return keepalive

    async def _handle(
        self, connection: DeviceConnection, kind: str, frame_id: int, body: dict[str, Any]
    ) -> None:
        if kind == "ping":
            await connection.send({"type": "pong", "replyTo": frame_id})
        elif kind == "error":
            try:
                code = _string(body, "code", frame_id) or ""
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
                    "Too many error reports; this one was not stored.", code="rate_limited",
                    reply_to=frame_id,
                ))
                return
            await gateway.record_error(connection.device_id, code, message, reset_reason)
            await connection.send({"type": "ack", "replyTo": frame_id})
        elif kind in ("auth", "hello"):
            await connection.refuse(
                BadFrame(f"`{kind}` was already said on this connection.", reply_to=frame_id)
            )
        else:
            await connection.refuse(
                BadFrame(
                    f"Unknown frame type `{kind[:64]}`.", code="unknown_type", reply_to=frame_id
                )
            )

    def _note_heard(self, connection: DeviceConnection) -> None:
        """Note that the device was heard; `heard_flusher` writes the notes in batches."""
        if connection.session_id:
            self._heard.add(connection.session_id)

    @contextlib.asynccontextmanager
    async def heard_flusher(self) -> AsyncIterator[None]:
        """Write `lastHeardAt` for every device heard since the last pass, every
        `HEARD_FLUSH_INTERVAL`, while the block (the app's lifespan) runs."""

        async def flush_forever() -> None:
            interval = gateway.HEARD_FLUSH_INTERVAL.total_seconds()
            while True:
                await asyncio.sleep(interval)
                heard, self._heard = self._heard, set()
                try:
                    await gateway.record_heard(heard, clock.now())
                except Exception:  # the database is down: these notes wait for the next pass
                    self._heard |= heard
                    log.exception("writing lastHeardAt failed")

        task = asyncio.create_task(flush_forever(), name="last-heard-flusher")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])

    async def _forget(self, connection: DeviceConnection) -> None:
        """The connection ended: mark the device offline unless a newer connection has it."""
        if not connection.session_id:
            return
        if self.connections.get(connection.device_id) is connection:
            del self.connections[connection.device_id]
            lock = self._welcome_locks.get(connection.device_id)
            if lock is not None and not lock.locked():
                del self._welcome_locks[connection.device_id]
        await gateway.disconnect(connection.device_id, connection.session_id, connection.heard_at)
