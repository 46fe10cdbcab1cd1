"""What the event scenarios (bench.ingestion, bench.live_events, bench.function_calls) share:
a fresh database (SQLite, or PostgreSQL with BENCH_DATABASE_URL) holding the bench user's
product with N provisioned devices, an access token for that user, one uvicorn process serving
it, and the simulator (simulator/) running those devices in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auth import tokens
from bench import BenchError
from bench.database import BENCH_EMAIL, create_fixtures, temporary_database
from bench.server import running_server
from core.settings import get_settings
from models import db
from models.accounts import User
from models.oauth import OAuthClient
from simulator.report import SimulationReport
from simulator.runner import load_devices_csv, raise_open_file_limit, simulate

FIRST_PARTY_CLIENT_ID = "devicecloud"
FILES_MARGIN = 256
SETTLE_SECONDS = 120.0  # for every simulated device to be welcomed
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Fleet:
    """A served product of provisioned devices, and a token for its owner."""

    database_url: str
    database: str  # what and where the database is
    base_url: str
    device_url: str
    server_pid: int
    product_id: int
    devices: list[tuple[str, str]]
    token: str
    seed_seconds: float


def count_setting(name: str, default: int, maximum: int) -> int:
    """A count from the environment variable `name` (0 skips the scenario)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= maximum:
        raise BenchError(f"{name} must be a number from 0 (skip) to {maximum}, not {raw!r}.")
    return value


async def _seed(database_url: str, csv_path: Path, count: int) -> tuple[int, str, float]:
    from fleet.demo import seed_demo_fleet

    await db.connect(database_url)
    try:
        started = time.perf_counter()
        fleet = await seed_demo_fleet(BENCH_EMAIL, csv_path, count,
                                      organization_name="Bench Org",
                                      product_name="Bench Thermostat")
        seed_seconds = time.perf_counter() - started
        issued = await tokens.issue(
            client=await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID),
            user=await User.get(email=BENCH_EMAIL), scope="", grant_type="password",
            access_lifetime=get_settings().access_token_lifetime, refresh_lifetime=None,
        )
        return fleet.product.id, issued.access_token, seed_seconds
    finally:
        await db.disconnect()


@contextlib.contextmanager
def served_fleet(count: int, *, settings: Mapping[str, str] | None = None) -> Iterator[Fleet]:
    """A fresh database with `count` devices in the bench user's product, served by one
    uvicorn process with `settings` (environment variables); all removed on exit."""
    if raise_open_file_limit(count + FILES_MARGIN) < count + FILES_MARGIN:
        raise BenchError(f"{count} devices need {count + FILES_MARGIN} open files; raise the"
                         " limit (`ulimit -n`).")
    with (
        tempfile.TemporaryDirectory(prefix="devicecloud-bench-events-") as tmp,
        temporary_database(Path(tmp)) as database,
    ):
        workdir = Path(tmp)
        csv_path = workdir / "devices.csv"
        asyncio.run(create_fixtures(database.url))
        product_id, token, seed_seconds = asyncio.run(_seed(database.url, csv_path, count))
        pids: list[int] = []
        with running_server(database.url, workdir / "server.log", started=pids.append,
                            settings=settings) as base_url:
            yield Fleet(
                database_url=database.url,
                database=database.description,
                base_url=base_url,
                device_url=base_url.replace("http://", "ws://", 1) + "/device/v1",
                server_pid=pids[0],
                product_id=product_id,
                devices=load_devices_csv(csv_path),
                token=token,
                seed_seconds=seed_seconds,
            )


class Simulation:
    """The fleet's devices in the simulator, in this process, while the block runs: entering
    waits until every device is welcomed; `latest` is the newest progress snapshot (about one
    a second) and `report` the final counts, after the block."""

    def __init__(self, fleet: Fleet, **options: Any) -> None:
        self.fleet = fleet
        self.options = options
        self.snapshots: list[tuple[float, float, SimulationReport]] = []  # (wall, CPU, counts)
        self.settled = asyncio.Event()
        self.snapshot_taken = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[SimulationReport] | None = None
        self.report: SimulationReport | None = None

    def _progress(self, report: SimulationReport) -> None:
        self.snapshots.append((time.monotonic(), time.process_time(), report))
        self.snapshot_taken.set()
        if report.all_welcomed_after is not None:
            self.settled.set()

    @property
    def latest(self) -> tuple[float, float, SimulationReport]:
        return self.snapshots[-1]

    async def __aenter__(self) -> Simulation:
        self.task = asyncio.create_task(simulate(
            self.fleet.device_url, self.fleet.devices, product_id=self.fleet.product_id,
            progress=self._progress, stop=self.stop, connects_per_second=1000.0,
            **self.options,
        ))
        settled = asyncio.create_task(self.settled.wait())
        done, _ = await asyncio.wait({settled, self.task}, timeout=SETTLE_SECONDS,
                                     return_when=asyncio.FIRST_COMPLETED)
        settled.cancel()
        if self.task in done:
            self.task.result()  # raises what stopped the simulation
            raise BenchError("the simulation ended before every device was welcomed.")
        if not self.settled.is_set():
            await self._end()
            raise BenchError(f"not every device was welcomed within {SETTLE_SECONDS:.0f} s.")
        report = self.latest[2]
        if report.refused or report.ever_welcomed != len(self.fleet.devices):
            await self._end()
            raise BenchError(f"devices were refused: {report.summary()}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._end()

    async def _end(self) -> None:
        self.stop.set()
        assert self.task is not None
        try:
            self.report = await asyncio.wait_for(self.task, STOP_SECONDS)
        except TimeoutError:
            raise BenchError("the simulation did not stop in time.") from None

    async def next_snapshot(self) -> tuple[float, float, SimulationReport]:
        """Wait for the next progress snapshot."""
        assert self.task is not None
        self.snapshot_taken.clear()
        taken = asyncio.create_task(self.snapshot_taken.wait())
        await asyncio.wait({taken, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not taken.done():
            taken.cancel()
            raise BenchError("the simulation stopped early.")
        return self.snapshots[-1]


@contextlib.asynccontextmanager
async def connected(database_url: str) -> AsyncIterator[None]:
    """The ORM connected to the bench's database from this process."""
    await db.connect(database_url)
    try:
        yield
    finally:
        await db.disconnect()


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError as error:
        raise BenchError(f"cannot read the server's CPU time: {error}") from None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all the machine's CPUs have spent busy (not idle nor waiting), from /proc/stat."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError as error:
        raise BenchError(f"cannot read the machine's CPU time: {error}") from None
    # cpu user nice system idle iowait irq softirq steal …, in clock ticks
    ticks = [int(field) for field in line.split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Percentiles:
    p50_ms: float
    p99_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        if len(seconds) < 2:
            raise BenchError("too few samples for percentiles.")
        cuts = statistics.quantiles(seconds, n=100, method="inclusive")
        return cls(cuts[49] * 1000, cuts[98] * 1000, len(seconds))

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"
