"""`devicecloud simulate`: the reference device client of the device protocol v1
(docs/device-protocol.md) and a load generator.

Each device runs one coroutine (`DeviceClient.run`): connect, `auth`, `hello`, then a frame
dispatcher reads what the cloud sends (replies, function calls, variable reads) while a ticker
sends `ping` frames every keepAlive / 2 seconds and, with a rate, the device's own activity:
events (`temperature`, `status/battery`, `status/rssi`) and now and then an error report.
Events go through the device's outbox: a publisher sends them one at a time and keeps each
until the cloud acknowledges it, so an event whose `ack` was lost (connection dropped, cloud
`unavailable`) is sent again, under the same `messageId`, after reconnecting. The device paces
its publishes under the cloud's rate limit (1 a second, bursts of 4, by default).
A dropped connection is retried with exponential backoff; a refused one (close code 4401 or
4403) is reported and not retried. New connections are opened at a bounded pace so that
thousands of devices do not stampede the server.

Adding a message type: a frame the cloud sends on its own gets a handler in
`DeviceClient.requests`; a frame the device sends on its own gets an `Activity` in
`ACTIVITIES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import math
import random
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from core.device_ids import normalize_device_id

DEFAULT_URL = "ws://127.0.0.1:8000/device/v1"
DEFAULT_FIRMWARE_VERSION = "1"
DEFAULT_SYSTEM_FIRMWARE_VERSION = "5.6.0"
FUNCTIONS = ["reboot", "setTemp"]
VARIABLES = ["temperature"]

MAX_FRAME_BYTES = 16 * 1024
CONNECTS_PER_SECOND = 200.0
MAX_HANDSHAKES = 100  # devices between connecting and welcomed at once
REPLY_SECONDS = 10.0  # how long the device waits for `ok`, `welcome`, `pong`, `ack`
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
PROGRESS_SECONDS = 1.0
MAX_FRAME_ID = 2**31 - 1
MAX_CSV_ROWS = 1_000_000
DEFAULT_ACTIVITY_INTERVAL = 10.0  # seconds between a device's own frames, on average (CLI)
# The cloud's default publish limit per device (DEVICE_EVENT_RATE, DEVICE_EVENT_BURST). A
# device paces itself a little under it, so that network jitter never trips the limit.
DEVICE_EVENT_RATE = 1.0
DEVICE_EVENT_BURST = 4
PACE_MARGIN = 0.9
MAX_OUTBOX = 100  # events a device keeps until acknowledged; new events beyond are dropped
UNAVAILABLE_RETRY_SECONDS = 1.0  # after the cloud could not store an event

# Close codes of the protocol.
CLOSE_UNAUTHORIZED = 4401
CLOSE_DENIED = 4403
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409
REFUSED_CODES = {CLOSE_UNAUTHORIZED: "unauthorized", CLOSE_DENIED: "denied"}

ERROR_SAMPLES = [
    ("OUT_OF_MEMORY", "heap exhausted", "watchdog"),
    ("SENSOR_TIMEOUT", "temperature sensor did not answer within 500 ms", None),
    ("WIFI_DISCONNECTED", "access point lost", None),
    ("BROWNOUT", "supply voltage under 3.0 V", "brownout"),
]


class SimulatorError(Exception):
    """The simulation cannot start; the message says why."""


class _Refused(Exception):
    """The cloud refused the device (unauthorized or denied): not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Replaced(Exception):
    """Another connection of the same device took over (close code 4409): not retried."""


class _Drop(Exception):
    """The session ended in a way that a reconnect may cure."""


@dataclass
class SimulationReport:
    """Counts of a simulation: live figures while it runs, final figures at the end.

    `connected`, `welcomed` and `quarantined` count the devices in that state right now;
    `ever_welcomed` those welcomed at least once; `refused` and `replaced` devices stopped;
    `reconnects` counts connection attempts after the first, per device.

    Events: every event `events_published` ends up acknowledged (stored), refused for the rate
    limit (`events_rate_limited`, not sent again), refused for another reason
    (`events_refused`), dropped because the device's outbox was full (`events_dropped`), or
    still waiting in an outbox (`events_pending`, sent again after a reconnect).
    `events_retransmitted` counts the publish frames that sent an event again.
    `calls_answered` and `reads_answered` count the cloud's function calls and variable reads
    the devices answered (with a value or `not_found`). `claimed` counts the welcomes that
    said the claim code made the device its customer's."""

    devices: int = 0
    connected: int = 0
    welcomed: int = 0
    quarantined: int = 0
    ever_welcomed: int = 0
    refused: int = 0
    replaced: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    frames_sent: int = 0
    errors_reported: int = 0
    acks: int = 0  # error reports acknowledged
    cloud_errors: int = 0
    events_published: int = 0
    events_acknowledged: int = 0
    events_rate_limited: int = 0
    events_refused: int = 0
    events_dropped: int = 0
    events_pending: int = 0
    events_retransmitted: int = 0
    calls_answered: int = 0
    reads_answered: int = 0
    claimed: int = 0
    elapsed: float = 0.0
    all_welcomed_after: float | None = None  # seconds from start until every device not
    # refused had been welcomed once
    refusals: dict[str, str] = field(default_factory=dict)  # device ID -> reason

    def snapshot(self) -> SimulationReport:
        return replace(self, refusals=dict(self.refusals))

    def summary(self) -> str:
        line = (
            f"{self.devices} devices: {self.connected} connected, {self.welcomed} welcomed,"
            f" {self.quarantined} quarantined, {self.refused} refused,"
            f" {self.reconnects} reconnects"
        )
        if self.replaced:
            line += f", {self.replaced} replaced"
        if self.claimed:
            line += f", {self.claimed} claimed"
        if self.failed_attempts:
            line += f", {self.failed_attempts} failed attempts"
        if self.errors_reported:
            line += f", {self.errors_reported} errors reported"
        if self.events_published:
            line += (
                f"; events: {self.events_published} published,"
                f" {self.events_acknowledged} acknowledged,"
                f" {self.events_rate_limited} rate-limited,"
                f" {self.events_retransmitted} retransmitted"
            )
            for count, what in (
                (self.events_pending, "pending"),
                (self.events_refused, "refused"),
                (self.events_dropped, "dropped"),
            ):
                if count:
                    line += f", {count} {what}"
        if self.calls_answered or self.reads_answered:
            line += (
                f"; answered {self.calls_answered} function calls,"
                f" {self.reads_answered} variable reads"
            )
        return line


def load_devices_csv(path: str | Path) -> list[tuple[str, str]]:
    """`device_id,secret` rows after a header line, as `devicecloud devices provision` writes
    them. A malformed file raises SimulatorError naming the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SimulatorError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SimulatorError(f"{path} is not a UTF-8 text file.") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None or [cell.strip().lower() for cell in header] != ["device_id", "secret"]:
        raise SimulatorError(
            f"{path}: the first line must be the header 'device_id,secret', "
            f"not {','.join(header or [])[:60]!r}."
        )
    devices: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise SimulatorError(
                f"{path}, line {number}: expected 2 columns (device_id,secret), got {len(row)}."
            )
        device_id, secret = normalize_device_id(row[0]), row[1].strip()
        if device_id is None:
            raise SimulatorError(
                f"{path}, line {number}: {row[0][:40]!r} is not a device ID"
                " (24 hexadecimal characters)."
            )
        if not secret:
            raise SimulatorError(f"{path}, line {number}: the secret is empty.")
        if device_id in seen:
            raise SimulatorError(f"{path}, line {number}: device {device_id} is listed twice.")
        if len(devices) >= MAX_CSV_ROWS:
            raise SimulatorError(f"{path}: more than {MAX_CSV_ROWS} devices.")
        seen.add(device_id)
        devices.append((device_id, secret))
    if not devices:
        raise SimulatorError(f"{path} lists no devices.")
    return devices


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
class Thermostat:
    """What a simulated device measures. `setTemp` moves the set point (and, the device being
    simulated, the temperature at once); each `temperature` event drifts around it."""

    set_point: float
    temperature: float
    battery: int  # percent

    @classmethod
    def random(cls, rng: random.Random) -> Thermostat:
        set_point = 21.0
        return cls(set_point, round(set_point + rng.uniform(-2, 2), 2), rng.randint(40, 100))

    def drift(self, rng: random.Random) -> float:
        step = 0.3 * (self.set_point - self.temperature) + rng.gauss(0, 0.15)
        self.temperature = round(self.temperature + step, 2)
        return self.temperature


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


def temperature_event(device: DeviceClient) -> dict[str, Any]:
    return {"type": "publish", "name": "temperature",
            "data": f"{device.thermostat.drift(device.sim.rng):.2f}"}


def status_event(device: DeviceClient) -> dict[str, Any]:
    rng, thermostat = device.sim.rng, device.thermostat
    if rng.random() < 0.5:
        if thermostat.battery <= 5:
            thermostat.battery = 100  # recharged
        elif rng.random() < 0.2:
            thermostat.battery -= 1
        return {"type": "publish", "name": "status/battery", "data": str(thermostat.battery)}
    return {"type": "publish", "name": "status/rssi", "data": str(rng.randint(-90, -40))}


def error_report(device: DeviceClient) -> dict[str, Any]:
    code, message, reset_reason = device.sim.rng.choice(ERROR_SAMPLES)
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reset_reason:
        frame["resetReason"] = reset_reason
    return frame


@dataclass(frozen=True)
class Activity:
    """Something a device does on its own: `build` makes the frame (a `publish` goes through
    the device's outbox; any other frame is sent as a request of its own)."""

    weight: float
    build: Callable[[DeviceClient], dict[str, Any]]
    publishes: bool


# What a device does on its own when the simulation has a rate.
ACTIVITIES: tuple[Activity, ...] = (
    Activity(0.7, temperature_event, publishes=True),
    Activity(0.25, status_event, publishes=True),
    Activity(0.05, error_report, publishes=False),
)


class _Simulation:
    """State shared by the device coroutines of one run."""

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
    ) -> None:
        self.url = url
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

    def __init__(self, simulation: _Simulation, device_id: str, secret: str) -> None:
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
            max_size=MAX_FRAME_BYTES * 4,
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
            self._refuse_or_drop(ws, reply, "unauthorized")
        welcome = await self._request(ws, reader, sim.hello())
        if welcome.get("type") != "welcome":
            self._refuse_or_drop(ws, welcome, "denied")
        self._on_welcome(welcome)
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
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # _Drop, or _Refused if the cloud closed with 4401/4403

    def _refuse_or_drop(self, ws: ClientConnection, reply: dict[str, Any], expected: str) -> None:
        code = reply.get("code")
        if reply.get("type") == "error" and code in ("unauthorized", "denied"):
            raise _Refused(str(code))
        raise _Drop(f"unexpected reply {reply.get('type')!r} ({code})")

    def _raise_for_close(self, ws: ClientConnection) -> None:
        code = ws.close_code
        if code in REFUSED_CODES:
            raise _Refused(REFUSED_CODES[code])
        if code == CLOSE_REPLACED:
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
        await ws.send(json.dumps(frame, separators=(",", ":")))
        self.sim.report.frames_sent += 1

    async def _request(
        self, ws: ClientConnection, reader: asyncio.Task[None], frame: dict[str, Any]
    ) -> dict[str, Any]:
        """Send a frame with a new `id` and wait for the cloud's reply to it."""
        frame["id"] = self._frame_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[frame["id"]] = future
        await self._send(ws, frame)
        done, _ = await asyncio.wait({future, reader}, timeout=REPLY_SECONDS,
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
            try:
                frame = json.loads(message)
            except (TypeError, ValueError):
                continue
            if isinstance(frame, dict):
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
        while True:
            wake = min(next_ping, next_activity if next_activity is not None else next_ping)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            now = loop.time()
            if now >= next_ping:
                next_ping = now + ping_every
                reply = await self._request(ws, reader,
                                            {"type": "ping"})
                if reply.get("type") != "pong":
                    raise _Drop(f"ping answered with {reply.get('type')!r}")
            if next_activity is not None and now >= next_activity:
                next_activity = self._next_activity(now)
                activity = self._choose(sim.activities)
                frame = activity.build(self)
                if activity.publishes:
                    self._queue(frame)
                    continue
                reply = await self._request(ws, reader, frame)
                if frame["type"] == "error":
                    sim.report.errors_reported += 1
                if reply.get("type") == "ack":
                    sim.report.acks += 1

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
                    self._queue(self._choose(sim.events).build(self))
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

    async def _answer_call(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Functions: `reboot` returns 0; `setTemp` takes a number (the new set point) and
        returns 1, or -1 for an argument that is not a number."""
        self.sim.report.calls_answered += 1
        name, argument = frame.get("name"), frame.get("argument", "")
        if name == "reboot":
            return {"type": "reply", "value": 0}
        if name == "setTemp":
            try:
                value = float(argument) if isinstance(argument, str) else math.nan
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                return {"type": "reply", "value": -1}
            self.thermostat.set_point = self.thermostat.temperature = value
            return {"type": "reply", "value": 1}
        return _not_found("function", name)

    async def _answer_get(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Variables: `temperature`, the current temperature (a float)."""
        self.sim.report.reads_answered += 1
        name = frame.get("name")
        if name == "temperature":
            return {"type": "reply", "value": float(self.thermostat.temperature)}
        return _not_found("variable", name)


def _not_found(what: str, name: object) -> dict[str, Any]:
    return {"type": "reply",
            "error": {"code": "not_found", "message": f"no {what} named {str(name)[:64]!r}"}}


async def simulate(
    server_url: str,
    devices: list[tuple[str, str]],
    *,
    product_id: int | None,
    rate: float = 0.0,
    duration: float | None = None,
    firmware_version: str = DEFAULT_FIRMWARE_VERSION,
    system_firmware_version: str = DEFAULT_SYSTEM_FIRMWARE_VERSION,
    progress: Callable[[SimulationReport], None] | None = None,
    connects_per_second: float = CONNECTS_PER_SECOND,
    max_handshakes: int = MAX_HANDSHAKES,
    backoff_first: float = BACKOFF_FIRST,
    backoff_max: float = BACKOFF_MAX,
    stop: asyncio.Event | None = None,
    activities: Sequence[Activity] = ACTIVITIES,
    event_rate: float | None = DEVICE_EVENT_RATE,
    event_burst: int = DEVICE_EVENT_BURST,
    claim_code: str | None = None,
) -> SimulationReport:
    """Connect every device and keep it online for `duration` seconds (None: until `stop` is
    set or the task is cancelled), then close the connections and return the counts.

    `rate` is the fleet-wide number of frames per second the devices send on their own
    (events and error reports, drawn from `activities` by weight), spread evenly over the
    devices; `math.inf` floods: once every device is welcomed, each publishes its next event
    as soon as the last is acknowledged. Each device keeps its publishes under `event_rate` a
    second with bursts of `event_burst` (the cloud's limit; None: unpaced). New connections
    are opened at most `connects_per_second` a second, with at most `max_handshakes` devices
    waiting for their welcome at once. `progress` is called with a snapshot of the counts
    about once a second, and once at the end. When the simulation stops, each device waits
    for the answer to the event it has in flight before closing its connection. Every device
    presents `claim_code` in its hello, if given (a code claims one device, once)."""
    if not devices:
        raise SimulatorError("no devices to simulate.")
    if not rate >= 0:
        raise SimulatorError("the rate must be zero or more frames per second.")
    if rate > 0 and not activities:
        raise SimulatorError("a rate needs at least one activity.")
    if math.isinf(rate) and not any(activity.publishes for activity in activities):
        raise SimulatorError("flooding needs an activity that publishes events.")
    if event_rate is not None and not (event_rate > 0 and event_burst >= 1):
        raise SimulatorError("the event rate must be more than 0, with bursts of 1 or more.")
    if not server_url.startswith(("ws://", "wss://")):
        raise SimulatorError(f"the server URL must start with ws:// or wss://, not {server_url!r}")
    sim = _Simulation(
        server_url,
        product_id=product_id,
        rate=rate,
        firmware_version=firmware_version,
        system_firmware_version=system_firmware_version,
        connects_per_second=connects_per_second,
        max_handshakes=max_handshakes,
        backoff_first=backoff_first,
        backoff_max=backoff_max,
        device_count=len(devices),
        activities=activities,
        event_rate=event_rate,
        event_burst=event_burst,
        claim_code=claim_code,
    )
    clients = [DeviceClient(sim, device_id, secret) for device_id, secret in devices]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    everything = asyncio.gather(*tasks, return_exceptions=True)

    async def watch() -> None:
        if stop is not None:
            waiters = [asyncio.create_task(stop.wait())]
            if duration is not None:
                waiters.append(asyncio.create_task(asyncio.sleep(duration)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        elif duration is not None:
            await asyncio.sleep(duration)
        else:
            await asyncio.Event().wait()

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            sim.report.elapsed = time.monotonic() - sim.started
            if progress is not None:
                progress(sim.report.snapshot())

    watcher = asyncio.create_task(watch())
    ticker = asyncio.create_task(report_progress())
    try:
        # Ends when the time is up, on `stop`, or when every device stopped for good.
        await asyncio.wait({watcher, everything}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sim.stopping.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(everything), timeout=15)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await everything
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    for client, task in zip(clients, tasks, strict=True):
        error = None if task.cancelled() else task.exception()
        if isinstance(error, InvalidURI):
            raise SimulatorError(f"the server URL is not valid: {error}")
        if error is not None:
            raise SimulatorError(f"device {client.device_id} failed: {error!r}") from error
    sim.report.elapsed = time.monotonic() - sim.started
    final = sim.report.snapshot()
    if progress is not None:
        progress(final)
    return final


class ProgressDisplay:
    """Counts on stderr: one line rewritten in place on a terminal, else a plain line each
    time they change (at most about once a second)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = ""

    def __call__(self, report: SimulationReport) -> None:
        line = f"[{report.elapsed:6.0f} s] {report.summary()}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif report.summary() != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last = report.summary()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards `wanted` (up to the hard limit); returns
    the limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def _claim_code(text: str) -> str:
    if not 1 <= len(text) <= 64:
        raise argparse.ArgumentTypeError("a claim code is 1 to 64 characters")
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _rate(text: str) -> float:
    if text.strip().lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, nor 'max'") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _burst(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `devicecloud simulate`."""
    parser.description = (
        "Connect simulated thermostats to the device gateway and keep them online. They publish"
        " events (temperature, status/battery, status/rssi) and now and then report an error,"
        " answer function calls (reboot, setTemp) and variable reads (temperature), and"
        " send again, under the same message ID, every event not acknowledged. The counts are"
        " shown as they change and printed at the end."
    )
    parser.add_argument("--devices", required=True, type=Path, metavar="FILE.csv",
                        help="device_id,secret rows (as `devices provision` writes them)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the device gateway (default: {DEFAULT_URL})")
    parser.add_argument("--product-id", type=int, default=None, metavar="N",
                        help="the product ID the firmware reports (default: none)")
    parser.add_argument("--rate", type=_rate, default=None, metavar="R",
                        help="frames per second the whole fleet sends on its own (events and"
                             " error reports), or 'max': every device publishes its next event"
                             " once the last is acknowledged, within --event-rate (default:"
                             f" one frame per device every {DEFAULT_ACTIVITY_INTERVAL:g} s;"
                             " 0: none)")
    parser.add_argument("--event-rate", type=_positive_float, default=DEVICE_EVENT_RATE,
                        metavar="E",
                        help="events per second each device keeps under, the cloud's"
                             f" DEVICE_EVENT_RATE (default: {DEVICE_EVENT_RATE:g})")
    parser.add_argument("--event-burst", type=_burst, default=DEVICE_EVENT_BURST, metavar="B",
                        help="the bursts of events each device keeps under, the cloud's"
                             f" DEVICE_EVENT_BURST (default: {DEVICE_EVENT_BURST})")
    parser.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")
    parser.add_argument("--firmware-version", default=DEFAULT_FIRMWARE_VERSION)
    parser.add_argument("--system-firmware-version", default=DEFAULT_SYSTEM_FIRMWARE_VERSION)
    parser.add_argument("--connect-rate", type=_positive_float, default=CONNECTS_PER_SECOND,
                        metavar="N", help="new connections per second at most (default: 200)")
    parser.add_argument("--claim-code", type=_claim_code, default=None, metavar="CODE",
                        help="a customer's claim code, presented in every hello: the first"
                             " device of the customer's product to present it becomes the"
                             " customer's (use with a one-device CSV)")


def run_from_args(args: argparse.Namespace) -> None:
    """`devicecloud simulate`: run until the duration ends or Ctrl-C, then print the counts.
    Exits with status 1 if any device was refused, or none was welcomed."""
    try:
        devices = load_devices_csv(args.devices)
    except SimulatorError as error:
        sys.exit(f"simulate: {error}")
    raise_open_file_limit(len(devices) + 256)
    display = ProgressDisplay()

    async def run() -> SimulationReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        return await simulate(
            args.url,
            devices,
            product_id=args.product_id,
            rate=len(devices) / DEFAULT_ACTIVITY_INTERVAL if args.rate is None else args.rate,
            duration=args.duration,
            firmware_version=args.firmware_version,
            system_firmware_version=args.system_firmware_version,
            progress=display,
            connects_per_second=getattr(args, "connect_rate", CONNECTS_PER_SECOND),
            stop=stop,
            event_rate=args.event_rate,
            event_burst=args.event_burst,
            claim_code=getattr(args, "claim_code", None),
        )

    try:
        report = asyncio.run(run())
    except (SimulatorError, InvalidURI) as error:
        display.finish()
        sys.exit(f"simulate: {error}")
    display.finish()
    print(report.summary())
    for device_id, reason in _first(report.refusals.items(), 20):
        print(f"  {device_id}: {reason}", file=sys.stderr)
    if len(report.refusals) > 20:
        print(f"  … and {len(report.refusals) - 20} more", file=sys.stderr)
    if report.refused:
        sys.exit(1)
    if not report.ever_welcomed:
        sys.exit(f"simulate: no device was welcomed by {args.url}.")


def _first(items: Iterable[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    return [item for _, item in zip(range(count), items, strict=False)]


def main(argv: list[str] | None = None) -> None:
    """`python -m api.simulator`, the same as `devicecloud simulate`."""
    parser = argparse.ArgumentParser(prog="devicecloud simulate", description=__doc__.split(
        "\n\n")[0])
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()
