"""Connected devices one app process holds: for each N in BENCH_CONNECTIONS (default
"1000,10000"; "0" skips the scenario), a fresh database with N provisioned devices imported
into a product, one uvicorn process, and N simulated devices (simulator/) connected to
it from a separate process, so that the server's memory is measured alone.

Reported: the time until all N devices are welcomed (connections are opened at most
BENCH_CONNECT_RATE a second, default 1000), and the server's resident memory (VmRSS) before
the devices connect and after they have been held for a while, per connection.

`python -m bench.connections` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError
from bench.database import BENCH_EMAIL, create_fixtures, temporary_database
from bench.server import PROJECT_ROOT, running_server
from models import db
from simulator.report import SimulationReport
from simulator.runner import load_devices_csv, raise_open_file_limit, simulate

DEFAULT_COUNTS = "1000,10000"
DEFAULT_CONNECT_RATE = 1000.0
MAX_COUNT = 100_000
HOLD_SECONDS = 10.0  # devices held after all are welcomed, before the memory is read again
FILES_MARGIN = 256  # open files a process needs besides one per connection
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class ConnectionFigures:
    count: int
    seed_seconds: float  # provisioning and importing the devices
    welcomed: int  # devices connected and welcomed when the memory was read
    welcomed_seconds: float | None  # from the first connection until every device was
    # welcomed; None if they were not all welcomed within the time allowed
    waited_seconds: float
    connect_rate: float
    rss_before: int  # bytes
    rss_welcomed: int
    rss_held: int
    online_in_database: int
    reconnects: int
    failed_attempts: int

    @property
    def per_connection(self) -> float:
        return (max(self.rss_held, self.rss_welcomed) - self.rss_before) / max(1, self.welcomed)


def counts() -> list[int]:
    raw = os.environ.get("BENCH_CONNECTIONS", "").strip() or DEFAULT_COUNTS
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        values = [-1]
    if values == [0]:
        return []
    if not values or any(not 1 <= value <= MAX_COUNT for value in values):
        raise BenchError(
            f"BENCH_CONNECTIONS must be device counts (1 to {MAX_COUNT}) separated by commas,"
            f" or 0 to skip, not {raw!r}."
        )
    return values


def connect_rate() -> float:
    raw = os.environ.get("BENCH_CONNECT_RATE", "").strip()
    if not raw:
        return DEFAULT_CONNECT_RATE
    try:
        rate = float(raw)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 100_000:
        raise BenchError(f"BENCH_CONNECT_RATE must be connections per second, not {raw!r}.")
    return rate


def rss(pid: int) -> int:
    """The resident set size of process `pid`, in bytes (VmRSS from /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as error:
        raise BenchError(f"cannot read the server's memory: {error}") from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no VmRSS line.")


def _raise_file_limit(count: int) -> None:
    needed = count + FILES_MARGIN
    if raise_open_file_limit(needed) < needed:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        raise BenchError(
            f"{count} connections need {needed} open files per process; the hard limit is"
            f" {hard} (raise it with `ulimit -Hn` as root, or lower BENCH_CONNECTIONS)."
        )


async def _seed(database_url: str, csv_path: Path, count: int) -> tuple[int, float]:
    from fleet.demo import seed_demo_fleet

    await db.connect(database_url)
    try:
        started = time.perf_counter()
        fleet = await seed_demo_fleet(BENCH_EMAIL, csv_path, count,
                                      organization_name="Bench Org",
                                      product_name="Bench Thermostat")
        return fleet.product.id, time.perf_counter() - started
    finally:
        await db.disconnect()


async def _online_count(database_url: str, product_id: int) -> int:
    from models.devices import Device

    await db.connect(database_url)
    try:
        return await Device.filter(product_id=product_id, online=True).count()
    finally:
        await db.disconnect()


async def _warm_up(url: str, device: tuple[str, str], product_id: int) -> None:
    """One device connects and leaves, so that the server's code paths are loaded before its
    memory is first read."""
    report = await simulate(url, [device], product_id=product_id, duration=1.0)
    if report.ever_welcomed != 1:
        raise BenchError(f"the warm-up device was not welcomed: {report.summary()}")


def _tail(log_path: Path) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])


async def _read_event(
    process: asyncio.subprocess.Process, within: float, log_path: Path
) -> dict[str, object]:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), within)
    except TimeoutError:
        raise BenchError(
            f"the simulator gave no answer within {within:.0f} s; its log: {log_path}"
        ) from None
    if not line:
        raise BenchError("the simulator stopped early. The end of its log:\n" + _tail(log_path))
    return json.loads(line)


async def _until_settled(
    process: asyncio.subprocess.Process, within: float, log_path: Path
) -> tuple[dict[str, object], bool]:
    """The simulator's counts once every device is welcomed (True), or the latest counts
    when `within` seconds have passed first (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    latest: dict[str, object] = {}
    while (left := deadline - loop.time()) > 0:
        try:
            event = await _read_event(process, left, log_path)
        except BenchError:
            if latest and process.returncode is None:
                break
            raise
        latest = event
        if event["event"] == "settled":
            return event, True
    if not latest:
        raise BenchError(f"the simulator said nothing within {within:.0f} s; its log: {log_path}")
    return latest, False


async def _hold(
    url: str, csv_path: Path, product_id: int, count: int, rate: float, server_pid: int,
    database_url: str, workdir: Path, seed_seconds: float,
) -> ConnectionFigures:
    devices = load_devices_csv(csv_path)
    await _warm_up(url, devices[0], product_id)
    rss_before = rss(server_pid)
    log_path = workdir / f"simulator-{count}.log"
    timeout = 120 + count / 20  # a server that welcomes 20 devices a second or more
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.connections", "--client", url, str(csv_path),
            str(product_id), str(rate),
            cwd=PROJECT_ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        try:
            started = time.monotonic()
            settled, complete = await _until_settled(process, timeout, log_path)
            waited = time.monotonic() - started
            rss_welcomed = rss(server_pid)
            if complete and settled["ever_welcomed"] != count:
                raise BenchError(f"{settled['ever_welcomed']} of {count} devices were welcomed"
                                 f" ({settled['refused']} refused); the log: {log_path}")
            if complete:
                await asyncio.sleep(HOLD_SECONDS)
            rss_held = rss(server_pid)
            online = await _online_count(database_url, product_id)
            assert process.stdin is not None
            process.stdin.close()
            final = settled
            while final["event"] != "done":
                final = await _read_event(process, STOP_SECONDS, log_path)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), STOP_SECONDS)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    return ConnectionFigures(
        count=count,
        seed_seconds=seed_seconds,
        welcomed=int(settled["welcomed"]),
        welcomed_seconds=float(settled["all_welcomed_after"]) if complete else None,
        waited_seconds=waited,
        connect_rate=rate,
        rss_before=rss_before,
        rss_welcomed=rss_welcomed,
        rss_held=rss_held,
        online_in_database=online,
        reconnects=int(final["reconnects"]),
        failed_attempts=int(final["failed_attempts"]),
    )


def measure(count: int, rate: float) -> ConnectionFigures:
    """One run: fresh database and server, `count` devices connected and held."""
    _raise_file_limit(count)
    with (
        tempfile.TemporaryDirectory(prefix="devicecloud-bench-connections-") as tmp,
        temporary_database(Path(tmp)) as database,
    ):
        workdir = Path(tmp)
        csv_path = workdir / "devices.csv"
        asyncio.run(create_fixtures(database.url))
        product_id, seed_seconds = asyncio.run(_seed(database.url, csv_path, count))
        pids: list[int] = []
        with running_server(database.url, workdir / "server.log", started=pids.append) as base:
            url = base.replace("http://", "ws://", 1) + "/device/v1"
            return asyncio.run(_hold(url, csv_path, product_id, count, rate, pids[0],
                                     database.url, workdir, seed_seconds))


def run() -> list[ConnectionFigures]:
    """Every configured count, one after the other; progress on stderr."""
    rate = connect_rate()
    figures = []
    for count in counts():
        print(f"  connecting {count} simulated devices", file=sys.stderr, flush=True)
        figures.append(measure(count, rate))
    return figures


def table(figures: list[ConnectionFigures]) -> str:
    header = (
        f"{'connections':>11}  {'all welcomed':>12}  {'conn/s':>7}  {'RSS before':>10}"
        f"  {'RSS held':>9}  {'per connection':>14}  {'online (DB)':>11}  {'reconnects':>10}"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        if f.welcomed_seconds is None:
            lines.append(f"{f.count:>11}  only {f.welcomed} welcomed after {f.waited_seconds:.0f} s"
                         " (the time allowed); memory per welcomed connection:")
        welcomed = f"{f.welcomed_seconds:>10.1f} s" if f.welcomed_seconds else f"{'-':>12}"
        rate = f"{f.count / f.welcomed_seconds:>7.0f}" if f.welcomed_seconds else f"{'-':>7}"
        lines.append(
            f"{f.count:>11}  {welcomed}  {rate}"
            f"  {f.rss_before / 2**20:>7.1f} MB  {f.rss_held / 2**20:>6.1f} MB"
            f"  {f.per_connection / 1024:>11.1f} kB  {f.online_in_database:>11}"
            f"  {f.reconnects:>10}"
        )
    return "\n".join(lines)


def notes(figures: list[ConnectionFigures]) -> str:
    if not figures:
        return ""
    seeds = ", ".join(f"{f.count}: {f.seed_seconds:.1f} s" for f in figures)
    return (
        f"Each run: a fresh database and one uvicorn process; the devices connect from a"
        f" separate process at most {figures[0].connect_rate:g} connections/s (BENCH_CONNECT_RATE)"
        f"\nand are held {HOLD_SECONDS:g} s. per connection = (RSS held - RSS before) / N, where"
        " RSS before is read after one warm-up device came and went.\n"
        f"Provisioning and importing the devices took {seeds}."
    )


def section() -> str:
    """The scenario's table and notes for `python -m bench` (empty if skipped)."""
    figures = run()
    if not figures:
        return ""
    return "Connected devices held by one server process\n" + table(figures) + "\n" + notes(
        figures
    )


# --- the simulator process ----------------------------------------------------------------


def _client(url: str, csv_path: str, product_id: str, rate: str) -> None:
    """Connect the devices; print one JSON line when all are welcomed and another when stdin
    closes (or on SIGTERM) and the connections are closed."""
    devices = load_devices_csv(csv_path)
    raise_open_file_limit(len(devices) + FILES_MARGIN)

    def emit(event: str, report: SimulationReport) -> None:
        fields = {key: value for key, value in vars(report).items() if key != "refusals"}
        print(json.dumps({"event": event, **fields}), flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def stdin_readable() -> None:
            if not os.read(sys.stdin.fileno(), 4096):
                loop.remove_reader(sys.stdin.fileno())
                stop.set()

        loop.add_reader(sys.stdin.fileno(), stdin_readable)
        settled = False

        def progress(report: SimulationReport) -> None:
            nonlocal settled
            print(report.summary(), file=sys.stderr, flush=True)
            if not settled and report.all_welcomed_after is not None:
                settled = True
                emit("settled", report)
            elif not settled:
                emit("progress", report)

        report = await simulate(url, devices, product_id=int(product_id), duration=None,
                                connects_per_second=float(rate), progress=progress, stop=stop)
        emit("done", report)

    asyncio.run(main())


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        _client(*sys.argv[2:6])
        return
    try:
        text = section()
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(text or "BENCH_CONNECTIONS=0: nothing measured.")


if __name__ == "__main__":
    main()
