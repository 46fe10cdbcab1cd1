"""Reading what the ledger counted (`UsageCounter` rows), and pausing an organization the way
the scheduler does, for tests of metering and of the pause."""

from __future__ import annotations

from datetime import datetime

from billing import pauses, publishes
from core import clock, metering
from fleet import events
from models.products import Product
from models.usage import BillingAccount, UsageCounter
from tests.support.polling import eventually


async def counted(*device_ids: str) -> list[tuple[str, str, int]]:
    """The counters of these devices (of every device if none is named), summed over days:
    (kind, device, operations), sorted. The publishes stored so far are counted first, as the
    app's readers do (the app may run in another process, or have been killed)."""
    await publishes.count_stored()
    rows = UsageCounter.filter(device_id__in=device_ids) if device_ids else UsageCounter.all()
    sums: dict[tuple[str, str], int] = {}
    for kind, device_id, operations in await rows.values_list("kind", "device_id",
                                                               "operations"):
        sums[kind, device_id] = sums.get((kind, device_id), 0) + operations
    return sorted((kind, device_id, n) for (kind, device_id), n in sums.items() if n)


async def operations(device_id: str, kind: str = "DEVICE_PUBLISH") -> int:
    """The operations of one kind counted for a device."""
    return sum(n for k, _, n in await counted(device_id) if k == kind)


async def pause(product: Product, until: datetime) -> None:
    """Pause the organization of `product` from now until `until`, as the scheduler does
    (the account's `paused_from`/`paused_until`, then `billing.pauses.changed`), and wait until
    the live app's meter says so."""
    await BillingAccount.update_or_create(
        organization_id=product.organization_id,
        defaults={"paused_from": clock.now(), "paused_until": until, "updated_at": clock.now()},
    )
    # The live app's broker is its event log's: the pauses of that app listen on it.
    await pauses.changed(events.event_log().broker)

    async def paused() -> bool:
        return metering.meter().paused_until(product.id) == until

    await eventually(paused)
