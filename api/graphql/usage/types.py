"""Usage types: an organization's or a product's usage in a period. Each field asks
`billing.usage` for one aggregate when it is selected."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.graphql.pagination import check_first
from billing import billable, usage
from billing.plans import PlanKind, Subscription, grace_text
from core.metering import OperationKind
from models.products import Product as ProductModel
from models.usage import Metric

if TYPE_CHECKING:
    from api.graphql.products.types import Product

_PRODUCTS = "api.graphql.products.types"
_Product: strawberry.LazyType[Any, Any] = strawberry.LazyType("Product", _PRODUCTS)

strawberry.enum(PlanKind, name="Plan", description="The plans of the catalog.")
strawberry.enum(OperationKind, description="What a device did or had done to it; only "
                                           "FUNCTION_CALL, VARIABLE_READ, DEVICE_PUBLISH, "
                                           "SUBSCRIPTION_DELIVERY and LOCATION_POINT cost "
                                           "data operations.")
strawberry.enum(Metric, name="UsageMetric", description="What a limit limits.")

TOP_DEVICES = 10


def _product(model: ProductModel | None) -> Product | None:
    if model is None:
        return None
    product: Product = _Product.resolve_type().from_model(model)
    return product


@strawberry.type(description="A product's data operations in a period.")
class ProductOperations:
    product_id: int = strawberry.field(description="The numeric product ID.")
    product: Annotated[Product, strawberry.lazy(_PRODUCTS)] | None = strawberry.field(
        description="The product; null once it is deleted (its usage stays).")
    operations: int


@strawberry.type(description="Data operations of one kind in a period.")
class KindOperations:
    kind: OperationKind
    operations: int


@strawberry.type(description="Data operations on one UTC day.")
class DayOperations:
    date: date
    operations: int


@strawberry.type(description="A product's billable devices in a period.")
class ProductDevices:
    product_id: int = strawberry.field(description="The numeric product ID.")
    product: Annotated[Product, strawberry.lazy(_PRODUCTS)] | None
    count: int


@strawberry.type(description="A device's data operations in a period, in one product.")
class DeviceOperations:
    device_id: str
    name: str | None = strawberry.field(
        description="The device's name; null once it is no longer the organization's.")
    product_id: int
    product: Annotated[Product, strawberry.lazy(_PRODUCTS)] | None
    operations: int

    @classmethod
    def from_domain(cls, found: usage.DeviceOperations) -> DeviceOperations:
        return cls(device_id=found.device_id, name=found.name, product_id=found.product_id,
                   product=_product(found.product), operations=found.operations)


@strawberry.type(description="A warning threshold the organization's usage crossed.")
class ThresholdCrossed:
    metric: Metric
    threshold: int = strawberry.field(description="70, 90 or 100 (percent of the limit).")
    used: int = strawberry.field(description="The usage that crossed it.")
    limit: int = strawberry.field(description="The limit it was a share of.")
    crossed_at: datetime


@strawberry.type(description="An organization's pause in a period.")
class UsagePause:
    paused_from: datetime | None = strawberry.field(
        description="When its devices were paused in the period (FREE, its data operations "
                    "used up and the grace over), even once the pause is over; null if they "
                    "were not.")
    paused_until: datetime | None = strawberry.field(
        description="When that pause ends or ended: the next period's start, or when a plan "
                    "change lifted it; null if not paused.")
    grace_ends_at: datetime | None = strawberry.field(
        description="On FREE, once the period's data operations reached 100 % and while not "
                    f"paused: when the {grace_text()} grace before the pause ends (or ended); null "
                    "otherwise, and when the period ends before the grace does (no pause).")


async def _top(scope: usage.Scope, first: int) -> list[DeviceOperations]:
    check_first(first)
    return [DeviceOperations.from_domain(d) for d in await usage.top_devices(scope, first)]


@strawberry.type(description="A product's data operations in a period.")
class ProductDataOperations:
    scope: strawberry.Private[usage.Scope]
    used: int = strawberry.field(description="Data operations used in the period so far.")

    @strawberry.field(description="Each kind that costs data operations, zeros included.")
    async def by_kind(self) -> list[KindOperations]:
        return [KindOperations(kind=kind, operations=n)
                for kind, n in await usage.operations_by_kind(self.scope)]

    @strawberry.field(description="Every day of the period so far (up to today in the "
                                  "current one), zeros included.")
    async def by_day(self) -> list[DayOperations]:
        return [DayOperations(date=day, operations=n)
                for day, n in await usage.operations_by_day(self.scope)]


@strawberry.type(description="Data operations in a period, against the plan's limit.")
class DataOperationUsage(ProductDataOperations):
    limit: int = strawberry.field(description="What the plan allows in a period.")

    @strawberry.field(description="`used` as a percentage of `limit`, one decimal.")
    def percent(self) -> float:
        return usage.percent_tenths(self.used, self.limit) / 10

    @strawberry.field(description="The products that used some, most first.")
    async def by_product(self) -> list[ProductOperations]:
        return [ProductOperations(product_id=p.product_id, product=_product(p.product),
                                  operations=p.operations)
                for p in await usage.operations_by_product(self.scope)]


@strawberry.type(description="Billable devices in a period, against the plan's limit.")
class DeviceUsage:
    billable: int = strawberry.field(
        description="Devices billable in the period (so far, in the current one).")
    limit: int = strawberry.field(description="How many devices the plan allows.")
    by_product: list[ProductDevices] = strawberry.field(
        description="The products with billable devices, most first.")

    @strawberry.field(description="`billable` as a percentage of `limit`, one decimal.")
    def percent(self) -> float:
        return usage.percent_tenths(self.billable, self.limit) / 10


@strawberry.type(description="What was used in a period: its scope, the plan in force and "
                             "its bounds.")
class PeriodUsage:
    scope: strawberry.Private[usage.Scope]
    subscription: strawberry.Private[Subscription]
    period: str = strawberry.field(description="YYYY-MM.")
    start: datetime = strawberry.field(description="The period's first instant.")
    end: datetime = strawberry.field(description="The first instant after it.")


@strawberry.type(description="What an organization used in a period (a calendar month in "
                             "UTC), its plan's limits and its pause.")
class OrganizationUsage(PeriodUsage):
    plan: PlanKind = strawberry.field(
        description="The plan in force at the period's end (now, for the current period): "
                    "the limits below are its.")
    blocks: int = strawberry.field(description="That plan's blocks (1 but on BASIC).")

    @strawberry.field(description="Data operations used, against the plan's limit.")
    async def data_operations(self) -> DataOperationUsage:
        return DataOperationUsage(scope=self.scope, used=await usage.operations_used(self.scope),
                                  limit=self.subscription.limits.data_operations)

    @strawberry.field(description="Billable devices, against the plan's limit.")
    async def devices(self) -> DeviceUsage:
        found = await usage.billable(self.scope, self.subscription)
        products = {p.id: p for p in await ProductModel.filter(id__in=list(found))}
        ranked = sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return DeviceUsage(
            billable=billable.count(found),
            limit=self.subscription.limits.devices,
            by_product=[ProductDevices(product_id=p, product=_product(products.get(p)),
                                       count=len(d)) for p, d in ranked])

    @strawberry.field(description="The 70, 90 and 100 % warnings of the period, in the order "
                                  "they were crossed.")
    async def thresholds_crossed(self) -> list[ThresholdCrossed]:
        return [ThresholdCrossed(metric=Metric(t.metric), threshold=t.threshold, used=t.used,
                                 limit=t.limit, crossed_at=t.crossed_at)
                for t in await usage.thresholds_crossed(self.scope)]

    @strawberry.field(description="Whether the organization's devices were paused in the "
                                  "period, or when the grace before a pause ends.")
    async def pause(self) -> UsagePause:
        found = await usage.pause(self.scope, self.subscription,
                                  await usage.thresholds_crossed(self.scope))
        return UsagePause(paused_from=found.paused_from, paused_until=found.paused_until,
                          grace_ends_at=found.grace_ends_at)

    @strawberry.field(description="The devices that used the most data operations in the "
                                  "period (one entry per device and product), most first.")
    async def top_devices(self, first: int = TOP_DEVICES) -> list[DeviceOperations]:
        return await _top(self.scope, first)


@strawberry.type(description="What a product used in a period (the organization's limits "
                             "are on `organization.usage`).")
class ProductUsage(PeriodUsage):

    @strawberry.field(description="The product's data operations.")
    async def data_operations(self) -> ProductDataOperations:
        return ProductDataOperations(scope=self.scope,
                                     used=await usage.operations_used(self.scope))

    @strawberry.field(description="The product's devices billable in the period (so far, in "
                                  "the current one).")
    async def billable_devices(self) -> int:
        return billable.count(await usage.billable(self.scope, self.subscription))

    @strawberry.field(description="The product's devices that used the most data operations "
                                  "in the period, most first.")
    async def top_devices(self, first: int = TOP_DEVICES) -> list[DeviceOperations]:
        return await _top(self.scope, first)
