"""The ledger: data operations counted into `UsageCounter` rows, in the transaction of what they
count.

`Ledger` is billing's `core.metering.Meter`. `record` prices each `Metered` with
`operations.operations_of` (`data_operations` without building an `Operation`), sums them per
counter row (organization, period, day, product, device, kind) and adds the sums with one
upsert per batch (`INSERT … ON CONFLICT DO UPDATE SET operations = operations +
excluded.operations`): never a read-modify-write of a counter, and no row every device of an
organization writes. Rows are written in one order (device, day, kind, product), so two
transactions adding to the same rows wait for each other instead of deadlocking.

What is recorded without a transaction (a delivery to a subscribed device, a function call:
nothing else is stored with them) joins one queue: one writer task adds whatever has queued
since its last write in one transaction of its own, and each caller returns once its usages are
committed. So many feeds delivering at once make one upsert, not one each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from itertools import chain

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from billing.operations import operations_of
from billing.periods import Period
from core.batching import BatchWriter
from core.metering import Metered
from models.products import Product

log = logging.getLogger("devicecloud.ledger")

_SQLITE_ROWS = 4000  # 7 values a row, within SQLite's 32766 bound values a statement
_COLUMNS = "organization_id, period, day, product_id, device_id, kind, operations"
_CONFLICT = (
    " ON CONFLICT (organization_id, day, product_id, device_id, kind)"
    " DO UPDATE SET operations = usage_counters.operations + excluded.operations"
)


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC: a counter's day is a UTC day. A naive datetime names no instant."""
    if moment.utcoffset() is None:
        raise ValueError("A usage happens at an aware datetime; this one is naive.")
    return moment.astimezone(UTC)


def _not_recorded(_usages: list[tuple[Metered, int]], error: Exception) -> Exception:
    """What a caller whose usages the database refused is told: its error (logged)."""
    log.warning("recording data operations failed", extra={"error": repr(error)})
    return error


class Ledger:
    """Counts what the fleet reports; `paused_until` is answered by `pauses` (billing.pauses:
    `Pauses.paused_until`)."""

    def __init__(self, pauses: Callable[[int | None], datetime | None]) -> None:
        self._pauses = pauses
        # A product never changes organization, so what is read once holds.
        self._organization_of: dict[int, int] = {}
        # What waits for the writer (`record` without a connection), a caller's usages an item.
        self._batches = BatchWriter(self._write, failed=_not_recorded, name="ledger-writer")

    def paused_until(self, product_id: int | None) -> datetime | None:
        return self._pauses(product_id)

    async def record(
        self, usages: Sequence[Metered], connection: BaseDBAsyncClient | None = None
    ) -> None:
        """Without `connection`: queued for the writer, and returned once committed (raises
        what the database raised if it could not be)."""
        priced = [(usage, cost) for usage in usages
                  if (cost := operations_of(usage.kind, usage.size, usage.name))]
        if not priced:
            return
        if connection is not None:
            await self._add(priced, connection)
            return
        await self._batches.submit([priced])

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self._batches.close()

    async def _write(self, batch: list[list[tuple[Metered, int]]]) -> list[None]:
        """Add the usages of a batch of callers in one transaction."""
        async with in_transaction() as connection:
            await self._add(list(chain.from_iterable(batch)), connection)
        return [None] * len(batch)

    async def _add(self, priced: list[tuple[Metered, int]],
                   connection: BaseDBAsyncClient) -> None:
        # Summed per (device, UTC day, kind, product): the counter row but for what follows
        # from its product (the organization) and its day (the period).
        sums: dict[tuple[str, date, str, int], int] = {}
        for usage, cost in priced:
            at = usage.at
            if at.tzinfo is not UTC:
                at = _utc(at)
            key = (usage.device_id, at.date(), usage.kind, usage.product_id)
            sums[key] = sums.get(key, 0) + cost
        organizations = await self._organizations({key[3] for key in sums}, connection)
        postgres = connection.capabilities.dialect == "postgres"
        days: dict[date, tuple[str, date | str]] = {}  # its period, and the day as bound
        rows: list[tuple[int, str, date | str, int, str, str, int]] = []
        # In key order (device first), so two transactions adding to the same rows wait for
        # each other instead of deadlocking.
        for (device, day, kind, product), n in sorted(sums.items()):
            organization = organizations.get(product)
            if organization is None:  # the product was deleted meanwhile: nobody to bill
                continue
            if (known := days.get(day)) is None:
                known = days[day] = (str(Period(day.year, day.month)),
                                     day if postgres else day.isoformat())
            rows.append((organization, known[0], known[1], product, device, kind, n))
        if not rows:
            return
        if postgres:
            await connection.execute_query(
                f"INSERT INTO usage_counters ({_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
                "$1::bigint[], $2::varchar[], $3::date[], $4::bigint[], $5::varchar[],"
                f" $6::varchar[], $7::bigint[]){_CONFLICT}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start:start + _SQLITE_ROWS]
            placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            await connection.execute_query(
                f"INSERT INTO usage_counters ({_COLUMNS}) VALUES {placeholders}{_CONFLICT}",  # noqa: S608
                list(chain.from_iterable(chunk)),
            )

    async def _organizations(self, product_ids: set[int], connection: BaseDBAsyncClient
                             ) -> dict[int, int]:
        missing = [p for p in product_ids if p not in self._organization_of]
        if missing:
            self._organization_of.update(
                await Product.filter(id__in=missing).using_db(connection)
                .values_list("id", "organization_id")
            )
        return {p: self._organization_of[p] for p in product_ids if p in self._organization_of}
