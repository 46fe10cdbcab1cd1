"""What an organization (or one of its products) used in a period, as its owner and
administrators see it: data operations by product, kind, day and device, billable devices,
the thresholds crossed, the pause, and every counter row for a download.

Everything here is an aggregate query over `UsageCounter` (a sum grouped by what is asked),
never a query per product or device. A view starts from `view_scope`, which first has the meter
count the device publishes stored but not yet counted (`Meter.settle`: one query when there are
none), once a request, so a view shows every publish stored before it was asked. Who may see
it is the caller's to check (`api/` asks `fleet.access`): nothing here looks at principals.

Which periods there are: from the later of the organization's (or product's) first period and
the period `MONTHS_BACK` before the current one, up to the current one. Anything else is
`InvalidInput` naming `period`, never an empty answer: a future period has no usage yet, and
one before the organization existed never had any.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Sum

from billing.billable import billable_devices
from billing.operations import EVENT_KINDS, UNIT_KINDS
from billing.periods import Period
from billing.plans import PlanKind, Subscription, grace_end
from core import clock
from core.errors import InvalidInput
from core.metering import OperationKind, meter
from models.devices import Device
from models.products import Product
from models.usage import Metric, UsageCounter, UsagePause, UsageThreshold

MONTHS_BACK = 24
# The kinds that can cost data operations, in the order the views list them.
COUNTED_KINDS = tuple(kind for kind in OperationKind if kind in EVENT_KINDS | UNIT_KINDS)
CSV_PAGE = 1000  # counter rows read per query of a download


def usage_period(text: str | None, *, since: datetime, now: datetime) -> Period:
    """The period `text` (`YYYY-MM`; None: the current one) names, if it is one whose usage can
    be shown for something that exists since `since`; otherwise `InvalidInput` saying which
    periods there are."""
    current = Period.of(now)
    if text is None:
        return current
    period = Period.parse(text)
    first = max(Period.of(since), current.shift(-MONTHS_BACK))
    if period > current:
        raise InvalidInput(
            f"{period} has not begun: the current period is {current}.", field="period")
    if period < first:
        why = (f"usage goes back {MONTHS_BACK} months" if first == current.shift(-MONTHS_BACK)
               else "there was nothing to count before")
        raise InvalidInput(
            f"There is no usage for {period}: the earliest period is {first} ({why}).",
            field="period")
    return period


@dataclass(frozen=True, slots=True)
class Scope:
    """An organization's usage in a period, or one product's (`product_id`), seen at `now`."""

    organization_id: int
    period: Period
    now: datetime
    product_id: int | None = None

    @property
    def current(self) -> bool:
        return Period.of(self.now) == self.period

    @property
    def until(self) -> datetime:
        """Where the period stands: now for the current one, its end for a past one."""
        return min(self.now, self.period.end)

    def counters(self) -> Q:
        scope = Q(organization_id=self.organization_id, period=str(self.period))
        return scope & Q(product_id=self.product_id) if self.product_id is not None else scope


async def view_scope(organization_id: int, period: str | None, *, since: datetime,
                     product_id: int | None = None) -> Scope:
    """The scope a view of `period` (`usage_period`) reads, seen now, once the meter has
    counted what is stored (`Meter.settle`)."""
    now = clock.now()
    scope = Scope(organization_id, usage_period(period, since=since, now=now), now,
                  product_id=product_id)
    await meter().settle()
    return scope


def percent_tenths(used: int, limit: int) -> int:
    """`used` as a share of `limit` in tenths of a percent, halves rounded up, in integers (so
    69.95 % is 700 and never 699 through a binary fraction); the API shows it as 70.0."""
    return (used * 2000 + limit) // (2 * limit)


def _sums(rows: Iterable[tuple[Any, Any]]) -> dict[Any, int]:
    # PostgreSQL sums a bigint as a numeric (Decimal); SQLite as an integer.
    return {key: int(total) for key, total in rows}


async def operations_used(scope: Scope) -> int:
    total = (await UsageCounter.filter(scope.counters()).annotate(
        total=Sum("operations")).first().values("total"))
    return int(total["total"] or 0) if total else 0


@dataclass(frozen=True, slots=True)
class ProductOperations:
    product_id: int
    product: Product | None  # None: deleted since
    operations: int


async def operations_by_product(scope: Scope) -> list[ProductOperations]:
    """The products that used data operations in the period, most first (then by ID)."""
    sums = _sums(await UsageCounter.filter(scope.counters()).annotate(
        total=Sum("operations")).group_by("product_id").values_list("product_id", "total"))
    products = {p.id: p for p in await Product.filter(id__in=list(sums))} if sums else {}
    return [ProductOperations(product_id, products.get(product_id), total)
            for product_id, total in sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))]


async def operations_by_kind(scope: Scope) -> list[tuple[OperationKind, int]]:
    """Every kind that costs data operations (`COUNTED_KINDS`), zeros included."""
    sums = _sums(await UsageCounter.filter(scope.counters()).annotate(
        total=Sum("operations")).group_by("kind").values_list("kind", "total"))
    return [(kind, sums.get(kind.value, 0)) for kind in COUNTED_KINDS]


def days(scope: Scope) -> list[date]:
    """The days of the period so far: every day of a past period, up to today in the current
    one."""
    first = scope.period.start.date()
    last = (scope.until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def operations_by_day(scope: Scope) -> list[tuple[date, int]]:
    """Each day of the period so far (`days`), zeros included."""
    sums = _sums(await UsageCounter.filter(scope.counters()).annotate(
        total=Sum("operations")).group_by("day").values_list("day", "total"))
    by_day = {_as_date(day): total for day, total in sums.items()}
    return [(day, by_day.get(day, 0)) for day in days(scope)]


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class DeviceOperations:
    device_id: str
    # The device's name, while it is still one of the organization's devices (None otherwise).
    name: str | None
    product_id: int
    product: Product | None  # None: deleted since
    operations: int


async def top_devices(scope: Scope, first: int) -> list[DeviceOperations]:
    """The `first` devices that used the most data operations in the period (then by device
    ID): one entry per device and product it was counted in."""
    if first == 0:
        return []
    rows = await UsageCounter.filter(scope.counters()).annotate(
        total=Sum("operations")).group_by("device_id", "product_id").order_by(
        "-total", "device_id", "product_id").limit(first).values_list(
        "device_id", "product_id", "total")
    if not rows:
        return []
    products = {p.id: p for p in await Product.filter(
        id__in=list({row[1] for row in rows}), organization_id=scope.organization_id)}
    names = dict(await Device.filter(
        id__in=[row[0] for row in rows], product__organization_id=scope.organization_id,
    ).values_list("id", "name"))
    return [DeviceOperations(device, names.get(device), int(product), products.get(int(product)),
                             int(total))
            for device, product, total in rows]


async def billable(scope: Scope, subscription: Subscription) -> dict[int, list[str]]:
    """The billable devices by product (`billing.billable`), as the period stands (so far, for
    the current one); only the scope's product's, for a product."""
    return await billable_devices(
        scope.organization_id, scope.period, manufacturing_grace=subscription.manufacturing_grace,
        until=scope.until, product_id=scope.product_id)


async def thresholds_crossed(scope: Scope) -> list[UsageThreshold]:
    """The warning thresholds the organization crossed in the period, in the order crossed."""
    return await UsageThreshold.filter(
        organization_id=scope.organization_id, period=str(scope.period)
    ).order_by("crossed_at", "metric", "threshold")


@dataclass(frozen=True, slots=True)
class Pause:
    """The organization's pause in the period (its latest `UsagePause` there, ending when it
    was lifted if it was), even once over; otherwise, on FREE, when the grace after reaching
    100 % of the data operations ends (or ended), if it ends before the period does
    (`plans.grace_end`: otherwise the next period comes first, and no pause)."""

    paused_from: datetime | None = None
    paused_until: datetime | None = None
    grace_ends_at: datetime | None = None


async def pause(scope: Scope, subscription: Subscription,
                crossed: list[UsageThreshold]) -> Pause:
    stored = await UsagePause.filter(
        organization_id=scope.organization_id, period=str(scope.period)
    ).order_by("-paused_from", "-id").first()
    if stored is not None:
        return Pause(paused_from=stored.paused_from,
                     paused_until=stored.lifted_at or stored.paused_until)
    full = next((t for t in crossed
                 if t.metric == Metric.DATA_OPERATIONS and t.threshold == 100), None)
    if full is None or subscription.plan is not PlanKind.FREE:
        return Pause()
    return Pause(grace_ends_at=grace_end(full.crossed_at, scope.period))


@dataclass(frozen=True, slots=True)
class CounterRow:
    day: date
    product_id: int
    device_id: str
    kind: str
    operations: int


async def counter_rows(scope: Scope, page: int | None = None) -> AsyncIterator[CounterRow]:
    """Every counter row of the period with operations, by day, then device, then kind (then
    product: a device moved between products on a day), read `page` rows at a time by keyset
    within each day (`CSV_PAGE` unless given), so a period is never held in memory whole."""
    page = page or CSV_PAGE
    for day in days(scope):
        after: tuple[str, str, int] | None = None
        while True:
            query = UsageCounter.filter(scope.counters(), day=day, operations__gt=0)
            if after is not None:
                device, kind, product = after
                query = query.filter(
                    Q(device_id__gt=device) | Q(device_id=device, kind__gt=kind)
                    | Q(device_id=device, kind=kind, product_id__gt=product))
            rows = await query.order_by("device_id", "kind", "product_id").limit(
                page).values_list("product_id", "device_id", "kind", "operations")
            for product_id, device_id, kind, operations in rows:
                yield CounterRow(day, product_id, device_id, kind, operations)
            if len(rows) < page:
                break
            last = rows[-1]
            after = (last[1], last[2], last[0])
