"""One simulated device's connection to the gateway, and what the devices of a run share.

`DeviceClient.run` connects, sends `auth` and `hello`, then a frame dispatcher reads what the
cloud sends (replies, function calls, variable reads) while a ticker sends `ping` frames every
keepAlive / 2 seconds and, with a rate, the device's own activity. Events go through the
device's outbox: a publisher sends them one at a time and keeps each until the cloud
acknowledges it, so an event whose `ack` was lost (connection dropped, cloud `unavailable`) is
sent again, under the same `messageId`, after reconnecting. The device paces its publishes under
the cloud's rate limit. A dropped connection is retried with exponential backoff; a refused one
(close code 4401 or 4403) or a replaced one (4409) is reported and not retried.

After the welcome the device subscribes to the run's prefixes, if any, and acknowledges every
`event` frame delivered to them.

Adding a message type: a frame the cloud sends on its own gets a handler in
`DeviceClient.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simulator.activities import (
    FUNCTIONS,
    VARIABLES,
    Activity,
    Position,
    Thermostat,
    answer_call,
    answer_get,
    location_frame,
)
from simulator.protocol import MAX_FRAME_BYTES, MAX_FRAME_ID, REFUSED, CloseCode, decode, encode
from simulator.report import SimulationReport

REPLY_SECONDS = 10.0  # how long the device waits for `ok`, `welcome`, `pong`, `ack`
# A device paces itself a little under the cloud's publish limit, so that network jitter never
# trips it.
PACE_MARGIN = 0.9
MAX_OUTBOX = 100  # events a device keeps until acknowledged; new events beyond are dropped
UNAVAILABLE_RETRY_SECONDS = 1.0  # after the cloud could not store an event


class _Refused(Exception):
    """The cloud refused the device (unauthorized or denied): not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Replaced(Exception):
    """Another connection of the same device took over (close code 4409): not retried."""


class _Drop(Exception):
    """The session ended in a way that a reconnect may cure."""


class _Pacer:
    """Spaces out connection attempts: at most `per_second` of them a second, over all
    devices (first connections and reconnects alike)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Pace:
    """The device's own view of the cloud's publish limit: a token bucket at `rate` a second
    with bursts of `burst`, on the monotonic clock."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def delay(self) -> float:
        """Seconds until a publish fits under the limit (0: now)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass
class _Outgoing:
    """An event in a device's outbox: kept until the cloud acknowledges it."""

    message_id: str
    name: str
    data: str
    sent: bool = False  # sent at least once: sending it again is a retransmission

    def frame(self) -> dict[str, Any]:
        return {"type": "publish", "messageId": self.message_id, "name": self.name,
                "data": self.data, "private": True}


class Simulation:
    """What the devices of one run share: their settings, the pace of new connections, the
    stop signal, the random source and the counts."""

    def __init__(
        self,
        url: str,
        *,
        product_id: int | None,
        rate: float,
        firmware_version: str,
        system_firmware_version: str,
        connects_per_second: float,
        max_handshakes: int,
        backoff_first: float,
        backoff_max: float,
        device_count: int,
        activities: Sequence[Activity],
        event_rate: float | None,
        event_burst: int,
        claim_code: str | None = None,
        location_rate: float = 0.0,
        subscribe: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.subscribe = list(subscribe)
        self.product_id = product_id
        self.claim_code = claim_code
        self.firmware_version = firmware_version
        self.system_firmware_version = system_firmware_version
        # Fleet-wide activity rate split evenly: each device acts every device_count / rate s.
        # An infinite rate floods: each device publishes its next event once the last is
        # acknowledged (only the activities that publish).
        self.flood = math.isinf(rate)
        self.activity_interval = device_count / rate if 0 < rate < math.inf else None
        self.activities = list(activities)
        # Location frames, fleet-wide, split evenly as the activity rate is.
        self.location_interval = device_count / location_rate if location_rate > 0 else None
        self.events = [activity for activity in activities if activity.publishes]
        self.event_rate = event_rate
        self.event_burst = event_burst
        # Message IDs are `<run>-<n>`: unique per device across runs, whatever a device's
        # counter restarts from.
        self.run_id = secrets.token_hex(6)
        self.pacer = _Pacer(connects_per_second)
        self.handshakes = asyncio.Semaphore(max_handshakes)
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.stopping = asyncio.Event()
        self.all_settled = asyncio.Event()  # every device welcomed once, or stopped for good
        self.started = time.monotonic()
        self.report = SimulationReport(devices=device_count)
        self.rng = random.Random()

    def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "productId": self.product_id,
            "firmwareVersion": self.firmware_version,
            "systemFirmwareVersion": self.system_firmware_version,
            "functions": list(FUNCTIONS),
            "variables": list(VARIABLES),
            **({"claimCode": self.claim_code} if self.claim_code else {}),
        }

    def settled(self) -> bool:
        """Every device is welcomed at least once or stopped for good."""
        report = self.report
        return report.ever_welcomed + report.refused + report.replaced >= report.devices

    def note_settled(self) -> None:
        if self.report.all_welcomed_after is None and self.settled():
            self.report.all_welcomed_after = time.monotonic() - self.started
            self.all_settled.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the simulation stops first; True if it is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()


class DeviceClient:
    """One simulated device: its connection loop and, while connected, its frame dispatcher,
    its ticker and its publisher. Its thermostat and its outbox outlive its connections."""

    def __init__(self, simulation: Simulation, device_id: str, secret: str) -> None:
        self.sim = simulation
        self.device_id = device_id
        self.secret = secret
        self.ws: ClientConnection | None = None
        self.keep_alive = 30.0
        self.welcomed = False
        self.quarantined = False
        self.ever_welcomed = False
        self.welcomed_once_this_time = False
        self.handshaking = False
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.thermostat = Thermostat.random(simulation.rng)
        self.position = Position.random(simulation.rng)
        self.locations = 0  # location frames created, for their message IDs
        self.published = 0  # events created, for their message IDs
        self.outbox: deque[_Outgoing] = deque()
        self.queued = asyncio.Event()  # wakes the publisher
        self.pace = (
            _Pace(simulation.event_rate * PACE_MARGIN, simulation.event_burst)
            if simulation.event_rate is not None
            else None
        )
        # Frames the cloud sends on its own (with an `id`), by type: the handler's answer is
        # sent back with `replyTo`.
        self.requests: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]] = {
            "call": self._answer_call,
            "get": self._answer_get,
            "event": self._receive_event,
        }

    # --- the connection loop -------------------------------------------------------------

    async def run(self) -> None:
        sim, report = self.sim, self.sim.report
        failures = 0
        first = True
        while not sim.stopping.is_set():
            # At most `max_handshakes` devices between connecting and welcomed, and new
            # connections at a bounded pace: a slow server is not buried under retries.
            await sim.handshakes.acquire()
            self.handshaking = True
            try:
                await sim.pacer.wait()
                if sim.stopping.is_set():
                    return
                if not first:
                    report.reconnects += 1
                first = False
                await self._connection()
            except _Refused as refused:
                report.refused += 1
                report.refusals[self.device_id] = refused.reason
                sim.note_settled()
                return
            except _Replaced:
                report.replaced += 1
                report.refusals[self.device_id] = "replaced"
                sim.note_settled()
                return
            except (_Drop, OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                pass  # retried below
            finally:
                self._end_handshake()
            if sim.stopping.is_set():
                return
            if self.welcomed_once_this_time:
                failures = 0
            else:
                report.failed_attempts += 1
            failures += 1
            delay = min(sim.backoff_max, sim.backoff_first * 2 ** min(failures - 1, 16))
            if await sim.pause(delay * (0.5 + sim.rng.random() / 2)):
                return

    async def _connection(self) -> None:
        self.welcomed_once_this_time = False
        self.next_id = 0
        self.pending.clear()
        async with connect(
            self.sim.url,
            open_timeout=REPLY_SECONDS,
            close_timeout=5,
            ping_interval=None,  # the protocol's own `ping` frames keep the session alive
            compression=None,
            max_size=MAX_FRAME_BYTES,
            proxy=None,
            user_agent_header="devicecloud-simulator/1",
        ) as ws:
            self.ws = ws
            self.sim.report.connected += 1
            reader = asyncio.create_task(self._read(ws))
            try:
                await self._session(ws, reader)
            except _Drop:
                pass  # closed below; the close code tells whether to come back
            finally:
                self.sim.report.connected -= 1
                self._set_offline()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                for future in self.pending.values():
                    future.cancel()
                self.pending.clear()
                self.ws = None
        # A clean close while not stopping still ends this attempt: reconnect.
        if not self.sim.stopping.is_set():
            self._raise_for_close(ws)
            raise _Drop("closed")

    async def _session(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        sim = self.sim
        reply = await self._request(ws, reader, {"type": "auth", "deviceId": self.device_id,
                                                 "secret": self.secret})
        if reply.get("type") != "ok":
            self._refuse_or_drop(reply)
        welcome = await self._request(ws, reader, sim.hello())
        if welcome.get("type") != "welcome":
            self._refuse_or_drop(welcome)
        self._on_welcome(welcome)
        # Subscriptions end with the connection: subscribe again after every welcome.
        for prefix in sim.subscribe:
            reply = await self._request(ws, reader, {"type": "subscribe", "prefix": prefix})
            if reply.get("type") == "ack":
                sim.report.subscriptions += 1
        ticker = asyncio.create_task(self._tick(ws, reader))
        publisher = asyncio.create_task(self._publish(ws, reader))
        stop = asyncio.create_task(sim.stopping.wait())
        try:
            await asyncio.wait({reader, ticker, publisher, stop},
                               return_when=asyncio.FIRST_COMPLETED)
            if sim.stopping.is_set() and not publisher.done():
                # The event in flight gets its answer, so that what is stored is what the
                # report counts as acknowledged.
                self.queued.set()
                await asyncio.wait({publisher, reader}, timeout=REPLY_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ticker, publisher, stop):
                task.cancel()
            for task in (ticker, publisher, stop):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if sim.stopping.is_set():
            with contextlib.suppress(Exception):
                await ws.close()
            return
        for task in (ticker, publisher):
            if task.done() and not task.cancelled() and (error := task.exception()) is not None:
                raise error  # _Drop, or _Refused if the cloud closed with 4401/4403

    def _refuse_or_drop(self, reply: dict[str, Any]) -> None:
        code = reply.get("code")
        if reply.get("type") == "error" and code in ("unauthorized", "denied"):
            raise _Refused(str(code))
        raise _Drop(f"unexpected reply {reply.get('type')!r} ({code})")

    def _raise_for_close(self, ws: ClientConnection) -> None:
        code = ws.close_code
        if code in REFUSED:
            raise _Refused(REFUSED[CloseCode(code)])
        if code == CloseCode.REPLACED:
            raise _Replaced()

    def _end_handshake(self) -> None:
        if self.handshaking:
            self.handshaking = False
            self.sim.handshakes.release()

    def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self._end_handshake()
        report = self.sim.report
        keep_alive = welcome.get("keepAlive")
        if isinstance(keep_alive, int | float) and keep_alive > 0:
            self.keep_alive = float(keep_alive)
        self.welcomed = True
        self.welcomed_once_this_time = True
        self.quarantined = bool(welcome.get("quarantined"))
        report.welcomed += 1
        if self.quarantined:
            report.quarantined += 1
        if welcome.get("claimed") is True:
            report.claimed += 1
        if not self.ever_welcomed:
            self.ever_welcomed = True
            report.ever_welcomed += 1
            self.sim.note_settled()

    def _set_offline(self) -> None:
        if self.welcomed:
            self.sim.report.welcomed -= 1
            if self.quarantined:
                self.sim.report.quarantined -= 1
        self.welcomed = self.quarantined = False

    # --- frames ----------------------------------------------------------------------------

    def _frame_id(self) -> int:
        self.next_id = self.next_id % MAX_FRAME_ID + 1
        return self.next_id

    async def _send(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        await ws.send(encode(frame))
        self.sim.report.frames_sent += 1

    async def _request(
        self, ws: ClientConnection, reader: asyncio.Task[None], frame: dict[str, Any]
    ) -> dict[str, Any]:
        """Send a frame with a new `id` and wait for the cloud's reply to it."""
        frame["id"] = self._frame_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[frame["id"]] = future
        await self._send(ws, frame)
        waiting: set[asyncio.Future[Any]] = {future, reader}
        done, _ = await asyncio.wait(waiting, timeout=REPLY_SECONDS,
                                     return_when=asyncio.FIRST_COMPLETED)
        if future in done and not future.cancelled():
            return future.result()
        self.pending.pop(frame["id"], None)
        if reader in done:  # the connection closed before the reply
            self._raise_for_close(ws)
            raise _Drop("closed before the reply")
        raise _Drop(f"no reply to {frame['type']} within {REPLY_SECONDS:g} s")

    async def _read(self, ws: ClientConnection) -> None:
        """The dispatcher: every frame the cloud sends, until the connection closes."""
        async for message in ws:
            frame = decode(message)
            if frame is not None:
                await self._dispatch(ws, frame)

    async def _dispatch(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        reply_to = frame.get("replyTo")
        if kind == "error":
            self.sim.report.cloud_errors += 1
        if reply_to is not None:
            future = self.pending.pop(reply_to, None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        handler = self.requests.get(kind) if isinstance(kind, str) else None
        if handler is not None and "id" in frame:
            answer = await handler(frame)
            if answer is not None:
                await self._send(ws, {**answer, "replyTo": frame["id"]})

    async def _tick(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        """Pings every keepAlive / 2 seconds and, with a rate, the device's own activity."""
        sim, rng = self.sim, self.sim.rng
        loop = asyncio.get_running_loop()
        ping_every = self.keep_alive / 2
        next_ping = loop.time() + ping_every * (0.5 + rng.random() / 2)  # spread the fleet out
        next_activity = self._next_activity(loop.time())
        next_location = self._next_location(loop.time())
        while True:
            wake = min(moment for moment in (next_ping, next_activity, next_location)
                       if moment is not None)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            now = loop.time()
            if next_location is not None and now >= next_location:
                next_location = self._next_location(now)
                await self._send_location(ws, reader)
            if now >= next_ping:
                next_ping = now + ping_every
                reply = await self._request(ws, reader,
                                            {"type": "ping"})
                if reply.get("type") != "pong":
                    raise _Drop(f"ping answered with {reply.get('type')!r}")
            if next_activity is not None and now >= next_activity:
                next_activity = self._next_activity(now)
                activity = self._choose(sim.activities)
                frame = activity.build(self.thermostat, sim.rng)
                if activity.publishes:
                    self._queue(frame)
                    continue
                reply = await self._request(ws, reader, frame)
                if frame["type"] == "error":
                    sim.report.errors_reported += 1
                if reply.get("type") == "ack":
                    sim.report.acks += 1

    def _next_location(self, now: float) -> float | None:
        if self.sim.location_interval is None:
            return None
        return now + self.sim.rng.expovariate(1 / self.sim.location_interval)

    async def _send_location(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        """Send a batch of points along the device's track, within the publish pace (a
        location frame costs the cloud's publish limit a token, as an event does)."""
        sim, report = self.sim, self.sim.report
        if self.pace is not None:
            while (delay := self.pace.delay()) > 0:
                if await sim.pause(delay):
                    return
            self.pace.take()
        self.locations += 1
        frame = {**location_frame(self.position, sim.rng),
                 "messageId": f"{sim.run_id}-loc-{self.locations}"}
        report.locations_sent += 1
        reply = await self._request(ws, reader, frame)
        if reply.get("type") == "ack":
            report.locations_acknowledged += 1
            report.location_points_acknowledged += len(frame["points"])
        else:
            report.locations_refused += 1

    def _next_activity(self, now: float) -> float | None:
        if self.sim.activity_interval is None:
            return None
        return now + self.sim.rng.expovariate(1 / self.sim.activity_interval)

    def _choose(self, activities: list[Activity]) -> Activity:
        if len(activities) == 1:
            return activities[0]
        return self.sim.rng.choices(activities, [activity.weight for activity in activities])[0]

    # --- events ------------------------------------------------------------------------------

    def _queue(self, frame: dict[str, Any]) -> None:
        """Put a new event in the outbox (or drop it, counted, when the outbox is full)."""
        report = self.sim.report
        report.events_published += 1
        if len(self.outbox) >= MAX_OUTBOX:
            report.events_dropped += 1
            return
        self.published += 1
        self.outbox.append(_Outgoing(f"{self.sim.run_id}-{self.published}", frame["name"],
                                     frame["data"]))
        report.events_pending += 1
        self.queued.set()

    async def _publish(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        """Send the outbox's events one at a time, oldest first, each until the cloud answers:
        `ack` (stored) and `rate_limited` (not stored, and not sent again: the device lost
        it) take it out of the outbox; `unavailable` keeps it for another try a little later;
        a dropped connection keeps it for the next connection. Returns when the simulation
        stops, between two events."""
        sim, report = self.sim, self.sim.report
        while not sim.stopping.is_set():
            if not self.outbox:
                if sim.flood:
                    # The flood starts once the whole fleet is connected: connecting does not
                    # compete with it.
                    if not sim.all_settled.is_set():
                        await self._until(sim.all_settled)
                        continue
                    self._queue(self._choose(sim.events).build(self.thermostat, sim.rng))
                    continue
                self.queued.clear()
                await self.queued.wait()
                continue
            if self.pace is not None:
                while (delay := self.pace.delay()) > 0:
                    if await sim.pause(delay):
                        return
                self.pace.take()
            event = self.outbox[0]
            if event.sent:
                report.events_retransmitted += 1
            event.sent = True
            reply = await self._request(ws, reader, event.frame())
            if reply.get("type") != "ack" and reply.get("code") == "unavailable":
                if await sim.pause(UNAVAILABLE_RETRY_SECONDS):
                    return
                continue
            self.outbox.popleft()
            report.events_pending -= 1
            if reply.get("type") == "ack":
                report.events_acknowledged += 1
            elif reply.get("code") == "rate_limited":
                report.events_rate_limited += 1
            else:
                report.events_refused += 1

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for `event`, or for the simulation to stop."""
        waiters = {asyncio.create_task(event.wait()),
                   asyncio.create_task(self.sim.stopping.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- the cloud's requests ------------------------------------------------------------------

    async def _receive_event(self, frame: dict[str, Any]) -> dict[str, Any]:
        """An event delivered to a subscription: acknowledge it (a copy sent again because
        the first ack was late is acknowledged again)."""
        self.sim.report.deliveries += 1
        return {"type": "ack"}

    async def _answer_call(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.sim.report.calls_answered += 1
        return answer_call(self.thermostat, frame)

    async def _answer_get(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.sim.report.reads_answered += 1
        return answer_get(self.thermostat, frame)
