"""Adding to the usage counters (`UsageCounter`): the one statement that writes them, for the
ledger's recorded usages and for the device publishes counted from the stored events
(`billing.publishes`).

Sums are added with one upsert (`INSERT … ON CONFLICT DO UPDATE SET operations = operations +
excluded.operations`): never a read-modify-write of a counter, and no row every device of an
organization writes. Rows are written in one order (device, day, kind, product), so two
transactions adding to the same rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

from datetime import date
from itertools import chain

from tortoise.backends.base.client import BaseDBAsyncClient

from billing.periods import Period
from models.products import Product

# Data operations by (device, UTC day, kind, product): a counter row but for what follows from
# its product (the organization) and its day (the period).
Sums = dict[tuple[str, date, str, int], int]

_SQLITE_ROWS = 4000  # 7 values a row, within SQLite's 32766 bound values a statement
_COLUMNS = "organization_id, period, day, product_id, device_id, kind, operations"
_CONFLICT = (
    " ON CONFLICT (organization_id, day, product_id, device_id, kind)"
    " DO UPDATE SET operations = usage_counters.operations + excluded.operations"
)


async def add(sums: Sums, connection: BaseDBAsyncClient,
              organization_of: dict[int, int] | None = None) -> None:
    """Add `sums` to their counter rows in `connection`'s transaction. `organization_of` caches
    each product's organization (a product never changes organization); a product deleted
    meanwhile has nobody to bill, and its sums are dropped."""
    known = {} if organization_of is None else organization_of
    missing = [p for p in {key[3] for key in sums} if p not in known]
    if missing:
        known.update(await Product.filter(id__in=missing).using_db(connection)
                     .values_list("id", "organization_id"))
    postgres = connection.capabilities.dialect == "postgres"
    days: dict[date, tuple[str, date | str]] = {}  # its period, and the day as bound
    rows: list[tuple[int, str, date | str, int, str, str, int]] = []
    for (device, day, kind, product), n in sorted(sums.items()):
        organization = known.get(product)
        if organization is None or not n:
            continue
        if (seen := days.get(day)) is None:
            seen = days[day] = (str(Period(day.year, day.month)),
                                day if postgres else day.isoformat())
        rows.append((organization, seen[0], seen[1], product, device, kind, n))
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
