"""Device publishes counted from the stored events: the events table is the record, and the
counters are derived from it with a committed watermark (`LedgerPosition`, `source='events'`).

The event writer's transaction stores events and nothing else. `count_stored` then reads the
events after the position, sums what they cost per counter row (grouped in SQL by device,
product, UTC day, name and size in bytes; priced by `operations.operations_of`, so the
counting rule stays in one place), adds the sums (`counters.add`) and moves the position, all
in one transaction holding the position row: each event is counted once, however many
processes count, and a crash between two counts loses nothing (the next one counts it).

Which events are final: every event ID up to the highest committed one. On PostgreSQL the event
writers take their IDs and commit under one advisory lock, in ID order (`fleet.events`); on
SQLite one writer holds the database. An event with a device and a product is that device's
publish (`fleet.events.NewEvent` refuses anything else but the platform's own names, which
are free); a server's publish names no device, and a device in no product is billed to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from billing import counters
from billing.operations import operations_of
from core.metering import OperationKind
from models.usage import LedgerPosition

log = logging.getLogger("devicecloud.publishes")

SOURCE = "events"
CHUNK = 20_000  # events read per transaction
_PUBLISH = OperationKind.DEVICE_PUBLISH

_BEHIND = (
    "SELECT (SELECT event_id FROM ledger_positions WHERE source = 'events') AS through,"
    " (SELECT MAX(id) FROM events) AS last"
)
_START = (
    "INSERT INTO ledger_positions (source, event_id) VALUES ('events', 0)"
    " ON CONFLICT (source) DO NOTHING"
)
_GROUPS = (
    "SELECT device_id, product_id, {day} AS day, name, {size} AS size, COUNT(*) AS n"
    " FROM events WHERE id > {after} AND id <= {upto}"
    " AND device_id IS NOT NULL AND product_id IS NOT NULL"
    " GROUP BY device_id, product_id, {day}, name, {size}"
)
_POSTGRES_GROUPS = _GROUPS.format(day="(published_at AT TIME ZONE 'UTC')::date",
                                  size="octet_length(data)", after="$1", upto="$2")
# Tortoise stores an aware datetime as ISO text with its offset; SQLite's date() takes the
# offset into account, so this is the UTC day.
_SQLITE_GROUPS = _GROUPS.format(day="date(published_at)", size="length(CAST(data AS BLOB))",
                                after="?", upto="?")


async def count_stored(chunk: int = CHUNK) -> int:
    """Count the device publishes stored after the position, `chunk` events a transaction,
    until caught up: how many events were counted."""
    counted = 0
    while True:
        done, behind = await _count_chunk(chunk)
        counted += done
        if not behind:
            return counted


async def _count_chunk(chunk: int) -> tuple[int, bool]:
    """Count the next `chunk` events: how many were counted, and whether more are stored."""
    client = connections.get("default")
    rows = await client.execute_query_dict(_BEHIND)
    if (rows[0]["last"] or 0) <= (rows[0]["through"] or 0):
        return 0, False  # caught up (or nothing stored yet), without taking a lock
    async with in_transaction() as connection:
        postgres = connection.capabilities.dialect == "postgres"
        through = await _hold_position(connection, postgres=postgres)
        last = (await connection.execute_query_dict("SELECT MAX(id) AS last FROM events")
                )[0]["last"] or 0
        if last <= through:
            return 0, False
        upto = min(last, through + chunk)
        groups = await connection.execute_query_dict(
            _POSTGRES_GROUPS if postgres else _SQLITE_GROUPS, [through, upto])
        sums: counters.Sums = {}
        counted = 0
        for group in groups:
            day = group["day"]
            key = (group["device_id"], day if isinstance(day, date) else date.fromisoformat(day),
                   _PUBLISH, group["product_id"])
            sums[key] = sums.get(key, 0) + operations_of(
                _PUBLISH, group["size"], group["name"]) * group["n"]
            counted += group["n"]
        await counters.add(sums, connection)
        await LedgerPosition.filter(source=SOURCE).using_db(connection).update(event_id=upto)
    return counted, upto < last


async def _hold_position(connection: BaseDBAsyncClient, *, postgres: bool) -> int:
    """The position, its row held until the transaction ends (PostgreSQL: locked for update;
    SQLite: a write first, so the transaction holds the write lock before it reads). Started
    at 0 if there is none."""
    position = LedgerPosition.filter(source=SOURCE).using_db(connection)
    if not postgres:
        await position.update(event_id=F("event_id"))
    found = await position.select_for_update().first()
    if found is None:
        await connection.execute_query(_START)
        found = await position.select_for_update().get()
    return found.event_id


@contextlib.asynccontextmanager
async def counting(interval: int) -> AsyncIterator[None]:
    """Count the stored publishes at once and then every `interval` seconds while the block (the
    app's lifespan) runs, and once more as it ends; a count that fails is logged, and the next
    one counts what it left. A count under way is let finish, never cancelled: its transaction
    ends as it would."""
    stop = asyncio.Event()

    async def rounds() -> None:
        while not stop.is_set():
            await _count_and_log()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(rounds(), name="publish-counter")
    try:
        yield
    finally:
        stop.set()
        await task
        await _count_and_log()


async def _count_and_log() -> None:
    try:
        await count_stored()
    except Exception:  # the database is down: the next count counts what is left
        log.exception("counting stored publishes failed")
