"""`devicecloud simulate`: the reference device client of the device protocol v1
(docs/device-protocol.md) and a load generator.

Each device runs one coroutine (`DeviceClient.run`): connect, `auth`, `hello`, then a frame
dispatcher reads what the cloud sends while a ticker sends `ping` frames every keepAlive / 2
seconds and, with a rate, the device's own activity (today: an `error` report now and then).
A dropped connection is retried with exponential backoff; a refused one (close code 4401 or
4403) is reported and not retried. New connections are opened at a bounded pace so that
thousands of devices do not stampede the server.

Adding a message type: a frame the cloud sends on its own (a function call, a variable read)
gets a handler in `DeviceClient.requests`; a frame the device sends on its own (an event) gets
a builder in `ACTIVITIES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from fleet.device_ids import normalize_device_id

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
    `reconnects` counts connection attempts after the first, per device."""

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
    acks: int = 0
    cloud_errors: int = 0
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
        if self.failed_attempts:
            line += f", {self.failed_attempts} failed attempts"
        if self.errors_reported:
            line += f", {self.errors_reported} errors reported"
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


def _error_frame(rng: random.Random) -> dict[str, Any]:
    code, message, reset_reason = rng.choice(ERROR_SAMPLES)
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reset_reason:
        frame["resetReason"] = reset_reason
    return frame


# What a device does on its own when the simulation has a rate: (weight, frame builder).
# Issue 5 adds `publish` (events) here.
ACTIVITIES: list[tuple[float, Callable[[random.Random], dict[str, Any]]]] = [
    (1.0, _error_frame),
]


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
    ) -> None:
        self.url = url
        self.product_id = product_id
        self.firmware_version = firmware_version
        self.system_firmware_version = system_firmware_version
        # Fleet-wide activity rate split evenly: each device acts every device_count / rate s.
        self.activity_interval = device_count / rate if rate > 0 else None
        self.pacer = _Pacer(connects_per_second)
        self.handshakes = asyncio.Semaphore(max_handshakes)
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.stopping = asyncio.Event()
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
        }

    def settled(self) -> bool:
        """Every device is welcomed at least once or stopped for good."""
        report = self.report
        return report.ever_welcomed + report.refused + report.replaced >= report.devices

    def note_settled(self) -> None:
        if self.report.all_welcomed_after is None and self.settled():
            self.report.all_welcomed_after = time.monotonic() - self.started

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the simulation stops first; True if it is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()


class DeviceClient:
    """One simulated device: its connection loop and, while connected, its frame dispatcher."""

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
        # Frames the cloud sends on its own (with an `id`), by type: the handler's answer is
        # sent back with `replyTo`. Function calls and variable reads arrive with issue 5.
        self.requests: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]] = {}

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
        stop = asyncio.create_task(sim.stopping.wait())
        try:
            await asyncio.wait({reader, ticker, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ticker, stop):
                task.cancel()
            for task in (ticker, stop):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if sim.stopping.is_set():
            with contextlib.suppress(Exception):
                await ws.close()
        elif ticker.done() and not ticker.cancelled() and ticker.exception() is not None:
            raise ticker.exception()  # _Drop, or _Refused if the cloud closed with 4401/4403

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
                weights = [weight for weight, _ in ACTIVITIES]
                build = rng.choices([builder for _, builder in ACTIVITIES], weights)[0]
                frame = build(rng)
                reply = await self._request(ws, reader, frame)
                if frame["type"] == "error":
                    sim.report.errors_reported += 1
                if reply.get("type") == "ack":
                    sim.report.acks += 1

    def _next_activity(self, now: float) -> float | None:
        if self.sim.activity_interval is None:
            return None
        return now + self.sim.rng.expovariate(1 / self.sim.activity_interval)


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
) -> SimulationReport:
    """Connect every device and keep it online for `duration` seconds (None: until `stop` is
    set or the task is cancelled), then close the connections and return the counts.

    `rate` is the fleet-wide number of frames per second the devices send on their own
    (today: error reports), spread evenly over the devices. New connections are opened at most
    `connects_per_second` a second, with at most `max_handshakes` devices waiting for their
    welcome at once. `progress` is called with a
    snapshot of the counts about once a second, and once at the end."""
    if not devices:
        raise SimulatorError("no devices to simulate.")
    if rate < 0:
        raise SimulatorError("the rate must be zero or more frames per second.")
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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `devicecloud simulate`."""
    parser.add_argument("--devices", required=True, type=Path, metavar="FILE.csv",
                        help="device_id,secret rows (as `devices provision` writes them)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the device gateway (default: {DEFAULT_URL})")
    parser.add_argument("--product-id", type=int, default=None, metavar="N",
                        help="the product ID the firmware reports (default: none)")
    parser.add_argument("--rate", type=_rate, default=0.0, metavar="R",
                        help="frames per second the whole fleet sends on its own, such as"
                             " error reports (default: 0)")
    parser.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")
    parser.add_argument("--firmware-version", default=DEFAULT_FIRMWARE_VERSION)
    parser.add_argument("--system-firmware-version", default=DEFAULT_SYSTEM_FIRMWARE_VERSION)
    parser.add_argument("--connect-rate", type=_positive_float, default=CONNECTS_PER_SECOND,
                        metavar="N", help="new connections per second at most (default: 200)")


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
            rate=args.rate,
            duration=args.duration,
            firmware_version=args.firmware_version,
            system_firmware_version=args.system_firmware_version,
            progress=display,
            connects_per_second=getattr(args, "connect_rate", CONNECTS_PER_SECOND),
            stop=stop,
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
