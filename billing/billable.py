"""Which devices an organization is billed for in a period, from what is stored: the devices of
its products, their first online, the days they were online (`DeviceOnlineDay`, written with
presence) and their SIM changes; the rule itself is `billing.devices.is_billable`.

A device counts where it is now: among the own devices (not quarantined, not denied) of one of
the organization's products. A cellular device's SIM is active until a `SimChange` says
otherwise; it was deactivated for the whole period when it was inactive at the period's start
and not activated before its end.

Three queries whatever the number of devices (the devices, their online days in the period,
the SIM changes up to its end), each selecting by organization (and product, for one
product's), never by a list of IDs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Count

from billing.devices import DeviceActivity, is_billable
from billing.periods import Period
from models.devices import Device, Quarantine
from models.usage import DeviceOnlineDay, SimChange


def _countable(until: datetime) -> Q:
    """The devices that can count as billable by `until`: one of a product's own devices (not
    quarantined, not denied), first online before `until`."""
    return Q(product_id__isnull=False, quarantine=Quarantine.NONE, first_online_at__lt=until)


async def online_by_organization(until: datetime) -> dict[int, int]:
    """How many devices can count by `until` (`_countable`), by organization ID, in one query:
    at most that many of an organization's devices are billable."""
    return {int(org): int(count) for org, count in await Device.filter(_countable(until))
            .annotate(count=Count("id")).group_by("product__organization_id")
            .values_list("product__organization_id", "count")}


async def billable_devices(organization_id: int, period: Period, *,
                           manufacturing_grace: bool, until: datetime | None = None,
                           product_id: int | None = None) -> dict[int, list[str]]:
    """The organization's billable devices in `period`, by product ID (each list sorted); only
    `product_id`'s if given. `until` (within the period) judges the period as it stands at that
    moment rather than at its end: what the current period's device count is so far."""
    end = period.end if until is None else min(until, period.end)
    scope = Q(product__organization_id=organization_id)
    if product_id is not None:
        scope &= Q(product_id=product_id)
    devices = await Device.filter(_countable(end), scope).values_list(
        "id", "product_id", "first_online_at")
    if not devices:
        return {}
    counted = Q(device__product__organization_id=organization_id,
                device__quarantine=Quarantine.NONE)
    if product_id is not None:
        counted &= Q(device__product_id=product_id)
    online = set(await DeviceOnlineDay.filter(
        counted, day__gte=period.start.date(), day__lte=(end - timedelta(microseconds=1)).date(),
    ).distinct().values_list("device_id", flat=True))
    sim_off = await _sim_off_whole_period(counted, period, end)
    billable: dict[int, list[str]] = defaultdict(list)
    for device_id, found_in, first_online_at in devices:
        first = Period.of(first_online_at)
        activity = DeviceActivity(period, came_online=device_id in online or first == period,
                                  sim_deactivated_whole_period=device_id in sim_off)
        if is_billable(activity, first, manufacturing_grace=manufacturing_grace):
            billable[found_in].append(device_id)
    return {product: sorted(found) for product, found in billable.items()}


def count(billable: dict[int, list[str]]) -> int:
    """How many devices `billable_devices` found, over all its products."""
    return sum(len(devices) for devices in billable.values())


async def _sim_off_whole_period(counted: Q, period: Period, end: datetime) -> set[str]:
    """The cellular devices (among `counted`) whose SIM was inactive at the period's start and
    not activated before `end`."""
    changes = await SimChange.filter(
        counted, device__iccid__isnull=False, changed_at__lt=end
    ).order_by("changed_at", "id").values_list("device_id", "active", "changed_at")
    active_at_start: dict[str, bool] = {}
    activated_within: set[str] = set()
    for device_id, active, changed_at in changes:
        if changed_at <= period.start:
            active_at_start[device_id] = active
        elif active:
            activated_within.add(device_id)
    return {device for device, active in active_at_start.items()
            if not active and device not in activated_within}
