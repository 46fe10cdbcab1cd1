"""Sustained event ingestion: BENCH_EVENT_DEVICES (default 1,000; 0 skips) simulated devices
publish continuously, each its next event as soon as the cloud acknowledges the last, and the
figure is events acknowledged (that is, stored) per second. The server runs with a publish
limit high enough not to be what is measured.

Beside it, in the same run and the same database: plain batched inserts of rows of the same
shape into the same table (executemany, one transaction per batch of BATCH rows, the most
events one of the server's writes can hold with this many devices), one batch after another
from one connection: the ratio says what publishing costs over the bare writes.

`python -m bench.ingestion` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from bench import BenchError, measured_seconds
from bench.fleet import (
    Fleet,
    Simulation,
    connected,
    count_setting,
    process_cpu_seconds,
    served_fleet,
)
from core import clock
from models.devices import Event
from simulator.activities import ACTIVITIES

DEFAULT_DEVICES = 1000
MAX_DEVICES = 20_000
WARMUP_SNAPSHOTS = 2  # progress snapshots (about a second each) after all are welcomed
# High enough that no device is rate limited: the bench measures storing, not refusing.
SERVER_SETTINGS = {"DEVICE_EVENT_RATE": "1000000", "DEVICE_EVENT_BURST": "1000000"}
PLAIN_INSERT = (
    "INSERT INTO events (product_id, device_id, name, data, published_at, private, message_id,"
    " data_operations) VALUES ({})"
)
PUBLISHING = [activity for activity in ACTIVITIES if activity.publishes]


@dataclass(frozen=True)
class IngestionFigure:
    database: str
    devices: int
    seconds: float
    acknowledged: int  # in the measured window
    client_cpu: float  # this process (the simulator) over wall time
    server_cpu: float  # the server process over wall time
    total_acknowledged: int
    stored: int  # the devices' events in the database after the run
    rate_limited: int
    refused: int
    reconnects: int
    plain_rows: int
    plain_seconds: float
    batch: int

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds

    @property
    def plain_rate(self) -> float:
        return self.plain_rows / self.plain_seconds


async def _publish(fleet: Fleet, seconds: float) -> tuple[int, float, float, float, Simulation]:
    """Events acknowledged in about `seconds`, the window's length, and the client's and the
    server's CPU over it."""
    async with Simulation(fleet, rate=math.inf, event_rate=None,
                          activities=PUBLISHING) as simulation:
        for _ in range(WARMUP_SNAPSHOTS):
            await simulation.next_snapshot()
        started, cpu_started, first = simulation.latest
        server_started = process_cpu_seconds(fleet.server_pid)
        while (latest := await simulation.next_snapshot())[0] - started < seconds - 0.5:
            pass
        server_cpu = process_cpu_seconds(fleet.server_pid) - server_started
        ended, cpu_ended, last = latest
    window = ended - started
    return (last.events_acknowledged - first.events_acknowledged, window,
            (cpu_ended - cpu_started) / window, server_cpu / window, simulation)


def _rows(fleet: Fleet, start: int, count: int, postgres: bool) -> list[tuple[object, ...]]:
    """Rows as the server stores a device's `temperature` event."""
    published_at = Event._meta.fields_map["published_at"]
    now = clock.now()
    when = now if postgres else published_at.to_db_value(now, Event)
    devices = fleet.devices
    return [
        (fleet.product_id, devices[n % len(devices)][0], "temperature",
         f"{20 + n % 400 / 100:.2f}", when, True if postgres else 1, f"plain-{n}", 1)
        for n in range(start, start + count)
    ]


async def _plain_inserts(fleet: Fleet, seconds: float, batch: int) -> tuple[int, float]:
    """Rows inserted in about `seconds` by executemany, a transaction per batch."""
    async with connected(fleet.database_url):
        postgres = Tortoise.get_connection("default").capabilities.dialect == "postgres"
        statement = PLAIN_INSERT.format(
            "$1, $2, $3, $4, $5, $6, $7, $8" if postgres else "?, ?, ?, ?, ?, ?, ?, ?"
        )
        inserted = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < seconds:
            rows = _rows(fleet, inserted, batch, postgres)
            async with in_transaction() as connection:
                await connection.execute_many(statement, rows)
            inserted += batch
        return inserted, loop.time() - started


async def _stored(fleet: Fleet) -> int:
    async with connected(fleet.database_url):
        return await (
            Event.filter(product_id=fleet.product_id, message_id__isnull=False)
            .exclude(message_id__startswith="plain-")
            .count()
        )


def measure(count: int, seconds: float) -> IngestionFigure:
    """One run: a fresh database and server, `count` devices publishing, then the plain
    inserts."""
    with served_fleet(count, settings=SERVER_SETTINGS) as fleet:
        acknowledged, window, client_cpu, server_cpu, simulation = asyncio.run(
            _publish(fleet, seconds))
        report = simulation.report
        assert report is not None
        stored = asyncio.run(_stored(fleet))
        plain_rows, plain_seconds = asyncio.run(_plain_inserts(fleet, seconds, count))
    return IngestionFigure(
        database=fleet.database, devices=count, seconds=window, acknowledged=acknowledged,
        client_cpu=client_cpu, server_cpu=server_cpu,
        total_acknowledged=report.events_acknowledged, stored=stored,
        rate_limited=report.events_rate_limited, refused=report.events_refused,
        reconnects=report.reconnects, plain_rows=plain_rows, plain_seconds=plain_seconds,
        batch=count,
    )


def section(seconds: float) -> str:
    """The scenario's figures for `python -m bench` (empty if skipped)."""
    count = count_setting("BENCH_EVENT_DEVICES", DEFAULT_DEVICES, MAX_DEVICES)
    if not count:
        return ""
    print(f"  {count} simulated devices publishing continuously", file=sys.stderr, flush=True)
    f = measure(count, seconds)
    ratio = f.rate / f.plain_rate if f.plain_rate else math.nan
    lost = "" if f.stored == f.total_acknowledged else (
        f" MISMATCH: {f.stored} stored, {f.total_acknowledged} acknowledged")
    return (
        f"Event ingestion, {f.devices:,} simulated devices publishing continuously"
        f" ({f.database})\n"
        f"  acknowledged (stored) events: {f.rate:>9,.0f} /s  ({f.acknowledged:,} in"
        f" {f.seconds:.1f} s; client CPU {f.client_cpu:.0%}, server CPU {f.server_cpu:.0%})\n"
        f"  plain batched inserts:        {f.plain_rate:>9,.0f} rows/s  ({f.plain_rows:,} in"
        f" {f.plain_seconds:.1f} s; executemany, {f.batch:,} rows a transaction)\n"
        f"  ratio: {ratio:.2f} of the plain insert rate\n"
        f"  every acknowledged event stored: {f.stored:,} of {f.total_acknowledged:,}{lost};"
        f" rate limited {f.rate_limited}, refused {f.refused}, reconnects {f.reconnects}"
    )


def main() -> None:
    try:
        text = section(measured_seconds())
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(text or "BENCH_EVENT_DEVICES=0: nothing measured.")


if __name__ == "__main__":
    main()
