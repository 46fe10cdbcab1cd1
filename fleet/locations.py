"""Location points: the rules of a device's `location` frame, storing a frame's points,
reading a device's points, and their retention (the events').

A frame's points are stored in one transaction, all or none, and keyed by the frame's
`messageId` and each point's index in it: a device that did not get its `ack` sends the frame
again, and its points are stored once. Each stored point of a device in a product is metered
(`core.metering`, one `LOCATION_POINT`) in that transaction; a retransmission stores and
meters nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal, CustomerPrincipal
from core import clock
from core.metering import Metered, OperationKind, meter
from models import db
from models.devices import Device, LocationPoint

MIN_POINTS = 1
MAX_POINTS = 100
# How far ahead of the cloud's clock a device's own `time` may be (a clock a little fast).
MAX_CLOCK_AHEAD = timedelta(minutes=10)
PRUNE_BATCH = 10_000

# The optional number fields: their range (None: unbounded) and what they mean.
_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "lat": (-90.0, 90.0, "a number from -90 to 90"),
    "lon": (-180.0, 180.0, "a number from -180 to 180"),
    "alt": (None, None, "a number (metres)"),
    "accuracy": (0.0, None, "a number of at least 0 (metres)"),
    "heading": (0.0, 360.0, "a number from 0 to 360 (degrees)"),
    "speed": (0.0, None, "a number of at least 0 (metres a second)"),
}
_REQUIRED = ("lat", "lon")


class InvalidPoint(ValueError):
    """A point the rules refuse: `index` (None when it is the list itself that is wrong) and
    the `field` at fault, so that the device can tell which."""

    def __init__(self, index: int | None, field: str, message: str):
        super().__init__(message)
        self.index = index
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class NewPoint:
    lat: float
    lon: float
    alt: float | None = None
    accuracy: float | None = None
    heading: float | None = None
    speed: float | None = None
    device_time: datetime | None = None


def _number(index: int, point: dict[str, Any], field: str) -> float | None:
    value = point.get(field)
    low, high, meaning = _RANGES[field]
    if value is None and field not in _REQUIRED:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        required = "is required: " if field in _REQUIRED else "must be "
        raise InvalidPoint(index, field, f"Point {index}: `{field}` {required}{meaning}.")
    return float(value)


def _device_time(index: int, value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    moment = None
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None or moment > now + MAX_CLOCK_AHEAD:
        raise InvalidPoint(
            index, "time",
            f"Point {index}: `time` must be an ISO 8601 moment with its UTC offset "
            f"(2026-01-31T12:00:00Z), at most {MAX_CLOCK_AHEAD.seconds // 60} minutes ahead "
            "of the cloud's clock.",
        )
    return moment


def check_points(points: Any, now: datetime) -> list[NewPoint]:
    """The frame's `points` as the rules accept them, or `InvalidPoint` for the first wrong one
    (then none is stored)."""
    if not isinstance(points, list) or not MIN_POINTS <= len(points) <= MAX_POINTS:
        raise InvalidPoint(
            None, "points",
            f"`points` is required: a list of {MIN_POINTS} to {MAX_POINTS} points.",
        )
    checked = []
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            raise InvalidPoint(index, "point", f"Point {index} must be an object.")
        numbers = {field: _number(index, point, field) for field in _RANGES}
        lat, lon = numbers.pop("lat"), numbers.pop("lon")
        assert lat is not None and lon is not None  # required: `_number` raised otherwise
        checked.append(NewPoint(lat=lat, lon=lon, **numbers,
                                device_time=_device_time(index, point.get("time"), now)))
    return checked


async def store(
    device_id: str, product_id: int | None, message_id: str, points: Sequence[NewPoint],
    received_at: datetime,
) -> bool:
    """Store a frame's points in one transaction, with their data operations (a device in
    no product: none). False when the frame was stored before (a retransmission: `message_id`
    already has its points), and nothing is written."""
    try:
        async with in_transaction() as connection:
            if await LocationPoint.filter(device_id=device_id, message_id=message_id).using_db(
                connection
            ).exists():
                return False
            await LocationPoint.bulk_create(
            [
                    LocationPoint(
                        device_id=device_id, product_id=product_id, lat=point.lat,
                        lon=point.lon, alt=point.alt, accuracy=point.accuracy,
                        heading=point.heading, speed=point.speed,
                        device_time=point.device_time, received_at=received_at,
                        message_id=message_id, position=position,
                    )
                    for position, point in enumerate(points)
                ],
                using_db=connection,
            )
            if product_id is not None:
                await meter().record(
                    [Metered(OperationKind.LOCATION_POINT, product_id, device_id, received_at)]
                    * len(points),
                    connection,
                )
    except IntegrityError:
        # The same frame, stored at this moment by another connection of the device; anything
        # else the database refused is a failure.
        if await LocationPoint.filter(device_id=device_id, message_id=message_id).exists():
            return False
        raise
    return True


@dataclass(frozen=True)
class LocationFilter:
    since: datetime | None = None
    until: datetime | None = None


def watched_device_points(
    principal: AnyPrincipal, device: Device, where: LocationFilter
) -> QuerySet[LocationPoint]:
    """The points of a device already checked (`access.watchable_devices`) that `principal`
    sees, as with its events (`access.sees_event_of`): only those stored while it was in its
    current product (or in none), and for its customer only those received since the claim."""
    points = LocationPoint.filter(device_id=device.id, product_id=device.product_id)
    if isinstance(principal, CustomerPrincipal):
        points = points.filter(received_at__gte=device.claimed_at or clock.now())
    if where.since is not None:
        points = points.filter(received_at__gte=where.since)
    if where.until is not None:
        points = points.filter(received_at__lt=where.until)
    return points


async def prune(retention_days: int) -> int:
    """Delete points received before the events' retention, `PRUNE_BATCH` at a time."""
    return await db.delete_before(LocationPoint, "received_at",
                                  clock.now() - timedelta(days=retention_days), PRUNE_BATCH)
