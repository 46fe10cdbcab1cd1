"""Many simulated devices at once: read their credentials, connect them at a bounded pace,
spread a fleet-wide rate of activity over them, stop them together and report the counts.

New connections are opened at most `connects_per_second` a second, with at most
`max_handshakes` devices waiting for their welcome at once, so that thousands of devices do not
stampede the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidURI

from core.device_ids import normalize_device_id
from simulator.activities import (
    ACTIVITIES,
    DEFAULT_FIRMWARE_VERSION,
    DEFAULT_SYSTEM_FIRMWARE_VERSION,
    Activity,
)
from simulator.client import DeviceClient, Simulation
from simulator.protocol import (
    DEVICE_EVENT_BURST,
    DEVICE_EVENT_RATE,
    MAX_SUBSCRIPTIONS,
    PREFIX,
)
from simulator.report import SimulationReport

CONNECTS_PER_SECOND = 200.0
MAX_HANDSHAKES = 100  # devices between connecting and welcomed at once
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
PROGRESS_SECONDS = 1.0
MAX_CSV_ROWS = 1_000_000


class SimulatorError(Exception):
    """The simulation cannot start; the message says why."""


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
    location_rate: float = 0.0,
    subscribe: Sequence[str] = (),
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
    presents `claim_code` in its hello, if given (a code claims one device, once).
    `location_rate` is the fleet-wide number of `location` frames a second (1 to 5 points
    each), spread evenly over the devices, within the same pace as their events. Every device
    subscribes to each prefix of `subscribe` after every welcome, acknowledging each event
    delivered to it."""
    if not devices:
        raise SimulatorError("no devices to simulate.")
    if not rate >= 0:
        raise SimulatorError("the rate must be zero or more frames per second.")
    if rate > 0 and not activities:
        raise SimulatorError("a rate needs at least one activity.")
    if math.isinf(rate) and not any(activity.publishes for activity in activities):
        raise SimulatorError("flooding needs an activity that publishes events.")
    if not 0 <= location_rate < math.inf:
        raise SimulatorError("the location rate must be zero or more frames per second.")
    if event_rate is not None and not (event_rate > 0 and event_burst >= 1):
        raise SimulatorError("the event rate must be more than 0, with bursts of 1 or more.")
    if len(subscribe) > MAX_SUBSCRIPTIONS or not all(
        PREFIX.fullmatch(prefix) for prefix in subscribe
    ):
        raise SimulatorError(
            f"a device subscribes to at most {MAX_SUBSCRIPTIONS} prefixes of at most 64"
            " letters, digits, '_', '-', '/' or '.'."
        )
    if not server_url.startswith(("ws://", "wss://")):
        raise SimulatorError(f"the server URL must start with ws:// or wss://, not {server_url!r}")
    sim = Simulation(
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
        location_rate=location_rate,
        subscribe=subscribe,
    )
    clients = [DeviceClient(sim, device_id, secret) for device_id, secret in devices]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    everything = asyncio.gather(*tasks, return_exceptions=True)

    async def watch() -> None:
        if stop is not None:
            waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
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
        ending: set[asyncio.Future[Any]] = {watcher, everything}
        await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
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


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards `wanted` (up to the hard limit); returns
    the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft
