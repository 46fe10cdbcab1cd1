"""The ledger: data operations counted into `UsageCounter` rows, in the transaction of what they
count, and the device publishes counted from the stored events.

`Ledger` is billing's `core.metering.Meter`. `record` prices each `Metered` with
`operations.operations_of` (`data_operations` without building an `Operation`), sums them per
counter row (organization, period, day, product, device, kind) and adds the sums with one
upsert per batch (`billing.counters.add`). A device's publishes are not recorded: the events
table is their record, counted after it commits (`billing.publishes`), and `settle` catches up
with it for a reader of the counters.

What is recorded without a transaction (a delivery to a subscribed device, a function call:
nothing else is stored with them) joins one queue: one writer task adds whatever has queued
since its last write in one transaction of its own, and each caller returns once its usages are
committed. So many feeds delivering at once make one upsert, not one each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import chain

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from billing import counters, publishes
from billing.operations import operations_of
from core.batching import BatchWriter
from core.metering import Metered

log = logging.getLogger("devicecloud.ledger")


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

    async def settle(self) -> None:
        """Count the device publishes stored but not yet counted."""
        await publishes.count_stored()

    async def close(self) -> None:
        """Write what is queued, then stop; and count the publishes the event log stored as
        it closed (a failure is logged: the next start counts them)."""
        await self._batches.close()
        try:
            await publishes.count_stored()
        except Exception:  # the database is down: counted from the table at the next start
            log.exception("counting stored publishes failed")

    async def _write(self, batch: list[list[tuple[Metered, int]]]) -> list[None]:
        """Add the usages of a batch of callers in one transaction."""
        async with in_transaction() as connection:
            await self._add(list(chain.from_iterable(batch)), connection)
        return [None] * len(batch)

    async def _add(self, priced: list[tuple[Metered, int]],
                   connection: BaseDBAsyncClient) -> None:
        sums: counters.Sums = {}
        for usage, cost in priced:
            at = usage.at
            if at.tzinfo is not UTC:
                at = _utc(at)
            key = (usage.device_id, at.date(), usage.kind, usage.product_id)
            sums[key] = sums.get(key, 0) + cost
        await counters.add(sums, connection, self._organization_of)
