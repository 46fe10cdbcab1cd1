"""Fleet questions: which devices, how many online, on which firmware, producing which errors.

Every answer is one SQL query (aggregates with filtered counts and GROUP BY), never a loop
over devices, and each filters by product first so the `devices` indexes serve it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from auth.principals import AnyPrincipal
from core.errors import CoreCode, InvalidInput
from fleet import access
from fleet.device_ids import parse_device_id
from fleet.permissions import Permission
from models.devices import Device, DeviceError, Quarantine

SEARCH_MAX = 100
_HEX = re.compile(r"[0-9a-f]+")


class DeviceOrder(StrEnum):
    """How to sort a product's devices."""

    LAST_HEARD_DESC = "LAST_HEARD_DESC"  # most recently heard first, never heard last
    DEVICE_ID = "DEVICE_ID"


@dataclass(frozen=True)
class DeviceFilter:
    """Narrow a product's devices; None leaves a criterion out. `quarantined` True lists the
    product's quarantine instead of its devices."""

    online: bool | None = None
    firmware_version: str | None = None
    development: bool | None = None
    quarantined: bool | None = None
    never_online: bool | None = None
    search: str | None = None


@dataclass(frozen=True)
class VersionCount:
    version: str | None  # None: devices that never reported one
    devices: int
    online: int


@dataclass(frozen=True)
class DeviceStats:
    """`total` = `online` + `offline` + `never_online`: `offline` devices have been online and
    are not now; `never_online` ones never were."""

    total: int
    online: int
    offline: int
    never_online: int
    development: int
    quarantined: int
    by_firmware_version: list[VersionCount]
    by_system_firmware_version: list[VersionCount]


@dataclass(frozen=True)
class ErrorCount:
    code: str
    count: int
    devices: int  # distinct devices that reported it


async def _viewable(principal: AnyPrincipal, product_id: int) -> None:
    await access.product_member(principal, product_id, Permission.DEVICE_VIEW)


def _search(text: str) -> Q:
    """A device ID prefix or a name substring, ignoring case."""
    text = text.strip()
    if len(text) > SEARCH_MAX:
        raise InvalidInput(
            f"Search for at most {SEARCH_MAX} characters.", field="search", code=CoreCode.TOO_LONG
        )
    by_name = Q(name__icontains=text)
    prefix = text.lower()
    return by_name | Q(id__startswith=prefix) if _HEX.fullmatch(prefix) else by_name


async def product_devices(
    principal: AnyPrincipal, product_id: int, criteria: DeviceFilter
) -> QuerySet[Device]:
    """The product's devices (or its quarantine) matching `criteria`, unordered."""
    await _viewable(principal, product_id)
    quarantine = Quarantine.QUARANTINED if criteria.quarantined else Quarantine.NONE
    devices = Device.filter(product_id=product_id, quarantine=quarantine.value)
    if criteria.online is not None:
        devices = devices.filter(online=criteria.online)
    if criteria.firmware_version is not None:
        devices = devices.filter(firmware_version=criteria.firmware_version)
    if criteria.development is not None:
        devices = devices.filter(development=criteria.development)
    if criteria.never_online is not None:
        devices = devices.filter(first_online_at__isnull=criteria.never_online)
    if criteria.search:
        devices = devices.filter(_search(criteria.search))
    return devices


async def device_stats(principal: AnyPrincipal, product_id: int) -> DeviceStats:
    """Counts over the product's devices (quarantine apart), in one aggregate query: a scan of
    the product's devices grouped by quarantine state and versions. The few groups it returns
    (one per distinct pair of versions) are added up here."""
    await _viewable(principal, product_id)
    groups = await (
        Device.filter(
            product_id=product_id,
            quarantine__in=[Quarantine.NONE.value, Quarantine.QUARANTINED.value],
        )
        .annotate(
            total=Count("id"),
            online_count=Count("id", _filter=Q(online=True)),
            offline_count=Count(
                "id", _filter=Q(online=False, first_online_at__isnull=False)
            ),
            never_count=Count("id", _filter=Q(online=False, first_online_at__isnull=True)),
            development_count=Count("id", _filter=Q(development=True)),
        )
        .group_by("quarantine", "firmware_version", "system_firmware_version")
        .values(
            "quarantine",
            "firmware_version",
            "system_firmware_version",
            "total",
            "online_count",
            "offline_count",
            "never_count",
            "development_count",
        )
    )
    own = [g for g in groups if g["quarantine"] == Quarantine.NONE.value]
    return DeviceStats(
        total=sum(g["total"] for g in own),
        online=sum(g["online_count"] for g in own),
        offline=sum(g["offline_count"] for g in own),
        never_online=sum(g["never_count"] for g in own),
        development=sum(g["development_count"] for g in own),
        quarantined=sum(
            g["total"] for g in groups if g["quarantine"] == Quarantine.QUARANTINED.value
        ),
        by_firmware_version=_by_version(own, "firmware_version"),
        by_system_firmware_version=_by_version(own, "system_firmware_version"),
    )


def _by_version(groups: list[dict[str, Any]], field: str) -> list[VersionCount]:
    """Devices and online devices per version, most devices first."""
    devices: Counter[str | None] = Counter()
    online: Counter[str | None] = Counter()
    for group in groups:
        devices[group[field]] += group["total"]
        online[group[field]] += group["online_count"]
    counts = [VersionCount(version, devices[version], online[version]) for version in devices]
    return sorted(counts, key=lambda c: (-c.devices, c.version is None, c.version or ""))


async def product_device_errors(
    principal: AnyPrincipal,
    product_id: int,
    *,
    device_id: str | None = None,
    code: str | None = None,
    since: datetime | None = None,
) -> QuerySet[DeviceError]:
    """The errors the product's devices reported, optionally of one device, one code, or since
    a moment; unordered."""
    await _viewable(principal, product_id)
    errors = DeviceError.filter(product_id=product_id)
    if device_id is not None:
        errors = errors.filter(device_id=parse_device_id(device_id))
    if code is not None:
        errors = errors.filter(code=code)
    if since is not None:
        errors = errors.filter(occurred_at__gte=since)
    return errors


async def error_summary(
    principal: AnyPrincipal, product_id: int, since: datetime | None = None
) -> list[ErrorCount]:
    """Errors per code, with the number of distinct devices reporting each; most frequent
    first."""
    errors = await product_device_errors(principal, product_id, since=since)
    rows = await (
        errors.annotate(total=Count("id"), affected=Count("device_id", distinct=True))
        .group_by("code")
        .values("code", "total", "affected")
    )
    counts = [ErrorCount(row["code"], row["total"], row["affected"]) for row in rows]
    return sorted(counts, key=lambda c: (-c.count, c.code))
