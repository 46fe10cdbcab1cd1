"""The ledger: data operations counted into `UsageCounter` rows, in the transaction of what they
count.

`Ledger` is billing's `core.metering.Meter`. `record` prices each `Metered` with
`operations.data_operations`, sums them per counter row (organization, period, day, product,
device, kind) and adds the sums with one upsert per batch (`INSERT … ON CONFLICT DO UPDATE SET
operations = operations + excluded.operations`): never a read-modify-write of a counter, and no
row every device of an organization writes. Rows are written in key order, so two transactions
adding to the same rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from billing.operations import Operation, data_operations
from billing.periods import Period
from core.metering import Metered
from models.products import Product

# (organization, period, day, product, device, kind)
Key = tuple[int, str, date, int, str, str]
_SQLITE_ROWS = 4000  # 7 values a row, within SQLite's 32766 bound values a statement
_COLUMNS = "organization_id, period, day, product_id, device_id, kind, operations"
_CONFLICT = (
    " ON CONFLICT (organization_id, day, product_id, device_id, kind)"
    " DO UPDATE SET operations = usage_counters.operations + excluded.operations"
)


def price(usage: Metered) -> int:
    return data_operations(Operation(usage.kind, size=usage.size, name=usage.name))


class Ledger:
    """Counts what the fleet reports; `paused_until` is answered by `pauses` (billing.pauses:
    `Pauses.paused_until`)."""

    def __init__(self, pauses: Callable[[int | None], datetime | None]) -> None:
        self._pauses = pauses
        # A product never changes organization, so what is read once holds.
        self._organization_of: dict[int, int] = {}

    def paused_until(self, product_id: int | None) -> datetime | None:
        return self._pauses(product_id)

    async def record(
        self, usages: Sequence[Metered], connection: BaseDBAsyncClient | None = None
    ) -> None:
        priced = [(usage, cost) for usage in usages if (cost := price(usage))]
        if not priced:
            return
        if connection is None:
            async with in_transaction() as own:
                await self._add(priced, own)
        else:
            await self._add(priced, connection)

    async def _add(self, priced: list[tuple[Metered, int]],
                   connection: BaseDBAsyncClient) -> None:
        organizations = await self._organizations({u.product_id for u, _ in priced}, connection)
        sums: Counter[Key] = Counter()
        for usage, cost in priced:
            organization = organizations.get(usage.product_id)
            if organization is None:  # the product was deleted meanwhile: nobody to bill
                continue
            day = usage.at.date()
            sums[(organization, str(Period.of(usage.at)), day, usage.product_id,
                  usage.device_id, usage.kind.value)] += cost
        rows = sorted(sums.items())
        if not rows:
            return
        if connections.get("default").capabilities.dialect == "postgres":
            await connection.execute_query(
                f"INSERT INTO usage_counters ({_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
                "$1::bigint[], $2::varchar[], $3::date[], $4::bigint[], $5::varchar[],"
                f" $6::varchar[], $7::bigint[]){_CONFLICT}",
                [list(column) for column in zip(*((*key, n) for key, n in rows), strict=True)],
            )
            return
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start:start + _SQLITE_ROWS]
            values: list[object] = []
            for (org, period, day, product, device, kind), n in chunk:
                values += [org, period, day.isoformat(), product, device, kind, n]
            placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            await connection.execute_query(
                f"INSERT INTO usage_counters ({_COLUMNS}) VALUES {placeholders}{_CONFLICT}",  # noqa: S608
                values,
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
