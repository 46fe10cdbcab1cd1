"""Sustained event ingestion: BENCH_EVENT_DEVICES (default 1,000; 0 skips) simulated devices
publish continuously, each its next event as soon as the cloud acknowledges the last, and the
figure is events acknowledged (that is, stored) per second. The server runs with a publish
limit high enough not to be what is measured.

Four runs, each on a fresh database of the same kind with the same number of devices for the
same time: with usage metering off (`USAGE_METERING=false`: the app installs no meter), on
(billing counts the stored publishes from the events table after they commit, every second and
once more as the server stops), on, off (ORDER), so a drift of the machine's load weighs on
both settings alike. The ratio on/off of the events a second over each setting's two runs is
what metering costs; beside each run's rate, the CPUs other processes kept busy meanwhile say
how far the machine was its own. After each metered run (the bench first counts what the server
has not counted yet, as every reader of the counters does), the data operations the ledger
counted for the product must equal what its stored
events cost by the counting rules (`billing.operations`, priced here from each stored event's
name and data), and after each unmetered run the ledger must hold nothing: either
mismatch is a bench error (the figures are printed with it). No timing is asserted.

After the first metered run, in its database: plain batched inserts of rows of the same
shape into the same table (executemany, one transaction per batch of BATCH rows, the most
events one of the server's writes can hold with this many devices), one batch after another
from one connection: the ratio says what publishing costs over the bare writes.

`python -m bench.ingestion` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tortoise import Tortoise
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from bench import BenchError, measured_seconds
from bench.fleet import (
    Fleet,
    Simulation,
    connected,
    count_setting,
    machine_busy_seconds,
    process_cpu_seconds,
    served_fleet,
)
from billing import publishes
from billing.operations import Operation, data_operations, payload_size
from core import clock
from core.metering import OperationKind
from models.devices import Event
from models.usage import UsageCounter
from simulator.activities import ACTIVITIES

DEFAULT_DEVICES = 1000
MAX_DEVICES = 20_000
WARMUP_SNAPSHOTS = 2  # progress snapshots (about a second each) after all are welcomed
# High enough that no device is rate limited: the bench measures storing, not refusing.
SERVER_SETTINGS = {"DEVICE_EVENT_RATE": "1000000", "DEVICE_EVENT_BURST": "1000000"}
METERING_TARGET = 0.95  # metering may cost at most 5 % of the unmetered rate
# Metering off, on, on, off: a drift of the machine's load over the runs weighs on both alike.
ORDER = (False, True, True, False)
PLAIN_INSERT = (
    "INSERT INTO events (product_id, device_id, name, data, published_at, private, message_id)"
    " VALUES ({})"
)
PUBLISHING = [activity for activity in ACTIVITIES if activity.publishes]


@dataclass(frozen=True)
class Run:
    """One server's publishing, metered or not, on a fresh database."""

    metered: bool
    database: str
    seconds: float
    acknowledged: int  # in the measured window
    client_cpu: float  # this process (the simulator) over wall time
    server_cpu: float  # the server process over wall time
    total_acknowledged: int
    stored: int  # the devices' events in the database after the run
    stored_operations: int  # what those events cost by the counting rules
    counted_operations: int  # what the ledger counted for the product (usage_counters)
    rate_limited: int
    refused: int
    reconnects: int
    others_cpu: float  # CPUs other processes kept busy over the window, on average

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds

    @property
    def server_cpu_per_event(self) -> float:
        """Server CPU seconds an acknowledged event in the window."""
        return self.server_cpu * self.seconds / self.acknowledged if self.acknowledged else 0.0

    @property
    def ledger_agrees(self) -> bool:
        """Metered: the ledger counted what the stored events cost; unmetered: nothing."""
        return self.counted_operations == (self.stored_operations if self.metered else 0)

    @property
    def all_stored(self) -> bool:
        return self.stored == self.total_acknowledged


def combined(runs: Sequence[Run]) -> Run:
    """Runs of one setting as one: counts and times summed, CPU shares weighted by time."""
    seconds = sum(run.seconds for run in runs)
    return Run(
        metered=runs[0].metered,
        database=runs[0].database,
        seconds=seconds,
        acknowledged=sum(run.acknowledged for run in runs),
        client_cpu=sum(run.client_cpu * run.seconds for run in runs) / seconds,
        server_cpu=sum(run.server_cpu * run.seconds for run in runs) / seconds,
        total_acknowledged=sum(run.total_acknowledged for run in runs),
        stored=sum(run.stored for run in runs),
        stored_operations=sum(run.stored_operations for run in runs),
        counted_operations=sum(run.counted_operations for run in runs),
        rate_limited=sum(run.rate_limited for run in runs),
        refused=sum(run.refused for run in runs),
        reconnects=sum(run.reconnects for run in runs),
        others_cpu=sum(run.others_cpu * run.seconds for run in runs) / seconds,
    )


@dataclass(frozen=True)
class IngestionFigure:
    devices: int
    runs: list[Run]  # in the order they ran (ORDER)
    plain_rows: int
    plain_seconds: float
    batch: int

    def of(self, metered: bool) -> list[Run]:
        return [run for run in self.runs if run.metered == metered]

    @property
    def metering_ratio(self) -> float:
        """Events a second with metering on over those with it off, over all their runs."""
        off = combined(self.of(False)).rate
        return combined(self.of(True)).rate / off if off else math.nan

    @property
    def plain_rate(self) -> float:
        return self.plain_rows / self.plain_seconds


async def _publish(fleet: Fleet, seconds: float) -> tuple[int, float, float, float, float,
                                                         Simulation]:
    """Events acknowledged in about `seconds`, the window's length, the client's and the
    server's CPU over it, and the CPUs other processes kept busy meanwhile."""
    async with Simulation(fleet, rate=math.inf, event_rate=None,
                          activities=PUBLISHING) as simulation:
        for _ in range(WARMUP_SNAPSHOTS):
            await simulation.next_snapshot()
        started, cpu_started, first = simulation.latest
        server_started = process_cpu_seconds(fleet.server_pid)
        machine_started = machine_busy_seconds()
        while (latest := await simulation.next_snapshot())[0] - started < seconds - 0.5:
            pass
        server_cpu = process_cpu_seconds(fleet.server_pid) - server_started
        machine = machine_busy_seconds() - machine_started
        ended, cpu_ended, last = latest
    window = ended - started
    client_cpu = cpu_ended - cpu_started
    others = max(0.0, machine - server_cpu - client_cpu)
    return (last.events_acknowledged - first.events_acknowledged, window, client_cpu / window,
            server_cpu / window, others / window, simulation)


def _rows(fleet: Fleet, start: int, count: int, postgres: bool) -> list[tuple[object, ...]]:
    """Rows as the server stores a device's `temperature` event."""
    published_at = Event._meta.fields_map["published_at"]
    now = clock.now()
    when = now if postgres else published_at.to_db_value(now, Event)
    devices = fleet.devices
    return [
        (fleet.product_id, devices[n % len(devices)][0], "temperature",
         f"{20 + n % 400 / 100:.2f}", when, True if postgres else 1, f"plain-{n}")
        for n in range(start, start + count)
    ]


async def _plain_inserts(fleet: Fleet, seconds: float, batch: int) -> tuple[int, float]:
    """Rows inserted in about `seconds` by executemany, a transaction per batch."""
    async with connected(fleet.database_url):
        postgres = Tortoise.get_connection("default").capabilities.dialect == "postgres"
        statement = PLAIN_INSERT.format(
            "$1, $2, $3, $4, $5, $6, $7" if postgres else "?, ?, ?, ?, ?, ?, ?"
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


async def _tally(fleet: Fleet, *, metered: bool) -> tuple[int, int, int]:
    """The devices' stored events, what they cost in data operations by the counting rules
    (`billing.operations`), and the data operations the ledger counted for the product. Metered,
    it first counts what the server has stored but not yet counted, as every reader of the
    counters does (`Meter.settle`): the server counts every second, the bench reads at once."""
    async with connected(fleet.database_url):
        if metered:
            await publishes.count_stored()
        events = Event.filter(product_id=fleet.product_id, message_id__isnull=False).exclude(
            message_id__startswith="plain-"
        )
        alike = await (
            events.annotate(n=Count("id")).group_by("name", "data").values_list("name", "data", "n")
        )
        counted = await (
            UsageCounter.filter(product_id=fleet.product_id)
            .annotate(total=Sum("operations"))
            .values("total")
        )
    cost = sum(
        n * data_operations(Operation(OperationKind.DEVICE_PUBLISH, payload_size(data), name))
        for name, data, n in alike
    )
    return sum(n for _, _, n in alike), cost, int(counted[0]["total"] or 0)


def _run(count: int, seconds: float, *, metered: bool, plain: bool
         ) -> tuple[Run, tuple[int, float]]:
    """A fresh database and server, metered or not, and `count` devices publishing; then, if
    `plain`, the plain inserts in the same database (else none: 0 rows in 0 s)."""
    settings = {**SERVER_SETTINGS, "USAGE_METERING": "true" if metered else "false"}
    with served_fleet(count, settings=settings) as fleet:
        acknowledged, window, client_cpu, server_cpu, others_cpu, simulation = asyncio.run(
            _publish(fleet, seconds))
        report = simulation.report
        assert report is not None
        stored, stored_operations, counted_operations = asyncio.run(_tally(fleet, metered=metered))
        inserted = asyncio.run(_plain_inserts(fleet, seconds, count)) if plain else (0, 0.0)
    run = Run(
        metered=metered, database=fleet.database, seconds=window, acknowledged=acknowledged,
        client_cpu=client_cpu, server_cpu=server_cpu,
        total_acknowledged=report.events_acknowledged, stored=stored,
        stored_operations=stored_operations, counted_operations=counted_operations,
        rate_limited=report.events_rate_limited, refused=report.events_refused,
        reconnects=report.reconnects,
        others_cpu=others_cpu,
    )
    return run, inserted


def measure(count: int, seconds: float) -> IngestionFigure:
    """`count` devices publishing in one run for each setting of ORDER, each on a fresh
    database; the first metered run's database then takes the plain inserts."""
    runs: list[Run] = []
    plain_rows, plain_seconds = 0, 0.0
    for metered in ORDER:
        first_metered = metered and not any(run.metered for run in runs)
        run, inserted = _run(count, seconds, metered=metered, plain=first_metered)
        runs.append(run)
        if first_metered:
            plain_rows, plain_seconds = inserted
    return IngestionFigure(
        devices=count,
        runs=runs,
        plain_rows=plain_rows,
        plain_seconds=plain_seconds,
        batch=count,
    )


LABEL = 38  # the width of the labels of the figures


def _line(label: str, figure: str) -> str:
    return f"  {label:<{LABEL}}{figure}"


def _each(runs: Sequence[Run], figure: str, spec: str = ",.0f") -> str:
    """A figure of each run, in the order they ran."""
    return " and ".join(format(getattr(run, figure), spec) for run in runs)


def _rate(runs: Sequence[Run]) -> str:
    run = combined(runs)
    return (
        f"{run.rate:>9,.0f} events/s  ({run.acknowledged:,} in {run.seconds:.1f} s over"
        f" {len(runs)} runs, {_each(runs, 'rate')} events/s; server CPU {run.server_cpu:.0%},"
        f" {run.server_cpu_per_event * 1e6:,.0f} µs an event; client CPU {run.client_cpu:.0%};"
        f" other processes {_each(runs, 'others_cpu', '.1f')} CPUs)"
    )


def _stored(runs: Sequence[Run]) -> str:
    run = combined(runs)
    lost = "" if all(run.all_stored for run in runs) else " MISMATCH"
    return (
        f"{run.stored:,} of {run.total_acknowledged:,} acknowledged{lost}; rate limited"
        f" {run.rate_limited}, refused {run.refused}, reconnects {run.reconnects}"
    )


def _disagreements(runs: Sequence[Run]) -> list[str]:
    return [
        f"in run {number} (metering on), the ledger counted {run.counted_operations:,} data"
        f" operations but the stored events cost {run.stored_operations:,}"
        if run.metered
        else f"in run {number} (metering off), the ledger counted {run.counted_operations:,}"
        " data operations"
        for number, run in enumerate(runs, start=1)
        if not run.ledger_agrees
    ]


def section(seconds: float) -> str:
    """The scenario's figures for `python -m bench` (empty if skipped). Raises BenchError,
    with the figures, if the ledger does not agree with the stored events."""
    count = count_setting("BENCH_EVENT_DEVICES", DEFAULT_DEVICES, MAX_DEVICES)
    if not count:
        return ""
    order = ", ".join("on" if metered else "off" for metered in ORDER)
    print(
        f"  {count} simulated devices publishing continuously, metering {order}",
        file=sys.stderr,
        flush=True,
    )
    f = measure(count, seconds)
    on, off = f.of(True), f.of(False)
    kind = f.runs[0].database.split(",")[0]
    plain_ratio = combined(on).rate / f.plain_rate if f.plain_rate else math.nan
    text = "\n".join([
        f"Event ingestion, {f.devices:,} simulated devices publishing continuously ({kind};"
        f" {len(f.runs)} runs, metering {order}, each on a fresh database and server)",
        _line("metering off (USAGE_METERING=false):", _rate(off)),
        _line("metering on:", _rate(on)),
        _line("ratio on/off:", f"{f.metering_ratio:>9.3f}  (metering may cost at most"
              f" {1 - METERING_TARGET:.0%}: {METERING_TARGET:.2f} or more)"),
        _line("plain batched inserts:", f"{f.plain_rate:>9,.0f} rows/s    ({f.plain_rows:,} in"
              f" {f.plain_seconds:.1f} s; executemany, {f.batch:,} rows a transaction; in the"
              " first metered run's database)"),
        _line("ratio on/plain inserts:", f"{plain_ratio:>9.2f}"),
        _line("stored events, metering off:", _stored(off)),
        _line("stored events, metering on:", _stored(on)),
        _line("data operations, metering on:",
              f"the ledger counted {_each(on, 'counted_operations')}; the stored events"
              f" ({_each(on, 'stored')}) cost {_each(on, 'stored_operations')}"),
        _line("data operations, metering off:",
              f"the ledger counted {_each(off, 'counted_operations')} (it must count nothing)"),
    ])
    disagreements = _disagreements(f.runs)
    if disagreements:
        raise BenchError("; ".join(disagreements) + ". The figures:\n" + text)
    return text


def main() -> None:
    try:
        text = section(measured_seconds())
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(text or "BENCH_EVENT_DEVICES=0: nothing measured.")


if __name__ == "__main__":
    main()
