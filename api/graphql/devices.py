"""GraphQL for devices: fleet queries, device settings and quarantine decisions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry import relay

from api.errors import ApiCode
from api.graphql.context import Info
from api.graphql.errors import UserError, client_error, mutate
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate, paginate_nulls_last
from auth.principals import CustomerPrincipal
from core.errors import InvalidInput, NotFound
from fleet import devices, fleet_queries
from models.devices import Device as DeviceModel
from models.devices import DeviceError as DeviceErrorModel

if TYPE_CHECKING:
    from api.graphql.events import DeviceEventFilter, Event, VariableReading
    from api.graphql.products import Product


@strawberry.enum(name="DeviceQuarantine",
                 description="Where a device stands with its product: NONE (one of its "
                             "devices), QUARANTINED (awaits approval) or DENIED (refused).")
class DeviceQuarantineEnum(Enum):
    NONE = "NONE"
    QUARANTINED = "QUARANTINED"
    DENIED = "DENIED"


@strawberry.type(description="A device: its ID never changes.")
class Device(relay.Node):
    id: relay.NodeID[str]
    device_id: str = strawberry.field(description="24 lower-case hexadecimal characters.")
    name: str
    platform: str
    online: bool = strawberry.field(description="Connected to the device gateway right now.")
    last_heard_at: datetime | None
    first_online_at: datetime | None
    firmware_version: str | None
    system_firmware_version: str | None
    functions: list[str] = strawberry.field(description="Names of the functions it exposes.")
    variables: list[str] = strawberry.field(description="Names of the variables it exposes.")
    claimed_at: datetime | None = strawberry.field(
        description="When its customer claimed it (or the team assigned it to them); null "
                    "while it has no customer.")
    product_pk: strawberry.Private[int | None]
    # The product team's own view of the device: `_team_only` hides it from its customer.
    team_notes: strawberry.Private[str]
    team_development: strawberry.Private[bool]
    team_quarantine: strawberry.Private[DeviceQuarantineEnum]
    team_rate_limited_events: strawberry.Private[int]

    @strawberry.field(description="The team's notes; null for the device's customer.")
    def notes(self, info: Info) -> str | None:
        return _team_only(info, self.team_notes)

    @strawberry.field(description="Marked for development; null for the device's customer.")
    def development(self, info: Info) -> bool | None:
        return _team_only(info, self.team_development)

    @strawberry.field(description="Awaits approval in its product's quarantine; null for the "
                                  "device's customer.")
    def quarantined(self, info: Info) -> bool | None:
        return _team_only(info, self.team_quarantine is DeviceQuarantineEnum.QUARANTINED)

    @strawberry.field(description="Where it stands with its product; null for the device's "
                                  "customer.")
    def quarantine(self, info: Info) -> DeviceQuarantineEnum | None:
        return _team_only(info, self.team_quarantine)

    @strawberry.field(description="Publishes refused for going over the rate limit; null for "
                                  "the device's customer.")
    def rate_limited_events(self, info: Info) -> int | None:
        return _team_only(info, self.team_rate_limited_events)

    @classmethod
    def from_model(cls, device: DeviceModel) -> Device:
        return cls(
            id=device.id, device_id=device.id, name=device.name,
            platform=device.platform, online=device.online, last_heard_at=device.last_heard_at,
            first_online_at=device.first_online_at, firmware_version=device.firmware_version,
            system_firmware_version=device.system_firmware_version,
            functions=[str(name) for name in device.functions or ()],
            variables=[str(name) for name in device.variables or ()],
            claimed_at=device.claimed_at if device.customer_id is not None else None,
            product_pk=device.product_id,
            team_notes=device.notes, team_development=device.development,
            team_quarantine=DeviceQuarantineEnum(device.quarantine),
            team_rate_limited_events=device.rate_limited_events,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Device | None]:
        return [await _visible_device(info, node_id) for node_id in node_ids]

    @strawberry.field(description="The product it belongs to, or whose quarantine it is in, "
                                  "if you can see the product (its team can; its customers "
                                  "cannot).")
    async def product(self, info: Info) -> Annotated[
        Product, strawberry.lazy("api.graphql.products")
    ] | None:
        from api.graphql.events import visible_products
        from api.graphql.products import Product

        if self.product_pk is None:
            return None
        product = await visible_products(info).load(self.product_pk)
        return None if product is None else Product.from_model(product)

    @strawberry.field(description="The events it published, newest first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[DeviceEventFilter, strawberry.lazy("api.graphql.events")] | None = None,
    ) -> relay.Connection[Annotated[Event, strawberry.lazy("api.graphql.events")]]:
        from api.graphql.events import device_events

        return await device_events(info, self.device_id, first, after, filter)

    @strawberry.field(description="Read one of its variables (support and up): the device "
                                  "answers, so it must be online.")
    async def variable(self, info: Info, name: str) -> Annotated[
        VariableReading, strawberry.lazy("api.graphql.events")
    ]:
        from api.graphql.events import read_variable

        return await read_variable(info, self.device_id, name)


_T = TypeVar("_T")


def _team_only(info: Info, value: _T) -> _T | None:
    """`value`, or None for a customer token: the device's customer sees its state, not what
    its product's team keeps about it."""
    return None if isinstance(info.context.principal, CustomerPrincipal) else value


async def _visible_device(info: Info, device_id: str) -> Device | None:
    try:
        return Device.from_model(await devices.get_device(info.context.principal, device_id))
    except (NotFound, InvalidInput):
        return None


@strawberry.type(name="DeviceError", description="An error a device reported.")
class DeviceErrorReport:
    device_id: str
    code: str
    message: str
    reset_reason: str = strawberry.field(description="Empty when the device gave none.")
    occurred_at: datetime

    @classmethod
    def from_model(cls, error: DeviceErrorModel) -> DeviceErrorReport:
        return cls(device_id=error.device_id, code=error.code, message=error.message,
                   reset_reason=error.reset_reason, occurred_at=error.occurred_at)


@strawberry.enum(description="How to sort a product's devices.")
class DeviceOrder(Enum):
    LAST_HEARD_DESC = "LAST_HEARD_DESC"
    DEVICE_ID = "DEVICE_ID"


@strawberry.input(description="Narrow a product's devices; absent criteria are left out.")
class DeviceFilter:
    online: bool | None = None
    firmware_version: str | None = None
    development: bool | None = None
    quarantined: bool | None = strawberry.field(
        default=None, description="true: the devices in the product's quarantine instead of "
                                  "its own devices.")
    never_online: bool | None = strawberry.field(
        default=None, description="true: devices that never came online.")
    search: str | None = strawberry.field(
        default=None, description="A device ID prefix or a part of the name, ignoring case.")

    def to_domain(self) -> fleet_queries.DeviceFilter:
        return fleet_queries.DeviceFilter(
            online=self.online, firmware_version=self.firmware_version,
            development=self.development, quarantined=self.quarantined,
            never_online=self.never_online, search=self.search,
        )


@strawberry.input
class DeviceErrorFilter:
    device_id: str | None = None
    code: str | None = None
    since: datetime | None = strawberry.field(
        default=None, description="Only errors that occurred at or after this moment.")


@strawberry.type(description="Devices running one version, and how many of them are online.")
class VersionCount:
    version: str | None = strawberry.field(description="null: never reported a version.")
    devices: int
    online: int


def _versions(counts: list[fleet_queries.VersionCount]) -> list[VersionCount]:
    return [VersionCount(version=c.version, devices=c.devices, online=c.online) for c in counts]


@strawberry.type(description="Counts over a product's devices (its quarantine apart).")
class DeviceStats:
    total: int
    online: int
    offline: int
    never_online: int
    development: int
    quarantined: int = strawberry.field(description="Devices in the product's quarantine.")
    by_firmware_version: list[VersionCount]
    by_system_firmware_version: list[VersionCount]

    @classmethod
    def from_domain(cls, stats: fleet_queries.DeviceStats) -> DeviceStats:
        return cls(
            total=stats.total, online=stats.online, offline=stats.offline,
            never_online=stats.never_online, development=stats.development,
            quarantined=stats.quarantined,
            by_firmware_version=_versions(stats.by_firmware_version),
            by_system_firmware_version=_versions(stats.by_system_firmware_version),
        )


@strawberry.type(description="How often devices reported one error code.")
class ErrorCount:
    code: str
    count: int
    devices: int = strawberry.field(description="Distinct devices that reported it.")


def _bad_cursor() -> Exception:
    return client_error("The `after` cursor is not one this API gave out.", ApiCode.INVALID_CURSOR)


def _heard_cursor(values: list[Any]) -> list[Any]:
    heard, device_id = values
    if not isinstance(device_id, str) or not (heard is None or isinstance(heard, str)):
        raise _bad_cursor()
    try:
        return [None if heard is None else datetime.fromisoformat(heard), device_id]
    except ValueError:
        raise _bad_cursor() from None


def _text_cursor(values: list[Any]) -> list[Any]:
    if not all(isinstance(value, str) for value in values):
        raise _bad_cursor()
    return values


def _integer_cursor(values: list[Any]) -> list[Any]:
    if not all(type(value) is int and -(2**63) <= value < 2**63 for value in values):
        raise _bad_cursor()
    return values


async def product_devices(info: Info, product_id: int, first: int, after: str | None,
                          criteria: DeviceFilter | None, order: DeviceOrder
                          ) -> relay.Connection[Device]:
    """`Product.devices`."""
    queryset = await fleet_queries.product_devices(
        info.context.principal, product_id, (criteria or DeviceFilter()).to_domain())
    if order is DeviceOrder.DEVICE_ID:
        return await paginate(queryset, order=("id",), first=first, after=after,
                              to_node=Device.from_model, parse=_text_cursor)
    return await paginate_nulls_last(queryset, order=("-last_heard_at", "id"), first=first,
                                     after=after, to_node=Device.from_model,
                                     parse=_heard_cursor)


async def product_device_errors(info: Info, product_id: int, first: int, after: str | None,
                                criteria: DeviceErrorFilter | None
                                ) -> relay.Connection[DeviceErrorReport]:
    """`Product.deviceErrors`: newest first."""
    criteria = criteria or DeviceErrorFilter()
    queryset = await fleet_queries.product_device_errors(
        info.context.principal, product_id, device_id=criteria.device_id, code=criteria.code,
        since=criteria.since)
    return await paginate(queryset, order=("-id",), first=first, after=after,
                          to_node=DeviceErrorReport.from_model, parse=_integer_cursor)


async def product_device_stats(info: Info, product_id: int) -> DeviceStats:
    """`Product.deviceStats`."""
    return DeviceStats.from_domain(
        await fleet_queries.device_stats(info.context.principal, product_id))


async def product_error_summary(info: Info, product_id: int, since: datetime | None
                                ) -> list[ErrorCount]:
    """`Product.errorSummary`."""
    counts = await fleet_queries.error_summary(info.context.principal, product_id, since)
    return [ErrorCount(code=c.code, count=c.count, devices=c.devices) for c in counts]


@strawberry.input
class UpdateDeviceInput:
    device_id: str
    name: str | None = strawberry.field(default=None, description="At most 100 characters; "
                                                                  "empty clears it.")
    notes: str | None = strawberry.field(default=None, description="At most 2000 characters.")
    development: bool | None = None


@strawberry.input
class DeviceInput:
    device_id: str


@strawberry.type
class DevicePayload:
    device: Device | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeviceQueries:
    @strawberry.field(description="A device you can see: one of your organization's products' "
                                  "(or in their quarantine), one you claimed, or, with a "
                                  "customer token, one of the customer's devices.")
    async def device(self, info: Info, device_id: str) -> Device | None:
        try:
            return Device.from_model(await devices.get_device(info.context.principal,
                                                              device_id))
        except NotFound:
            return None

    @strawberry.field(description="The signed-in customer's devices (claimed with a claim code "
                                  "or assigned by the team), by device ID; null unless you use "
                                  "a customer token.")
    async def customer_devices(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                               after: str | None = None) -> relay.Connection[Device] | None:
        try:
            queryset = devices.customer_devices(info.context.principal)
        except NotFound:
            return None
        return await paginate(queryset, order=("id",), first=first, after=after,
                              to_node=Device.from_model, parse=_text_cursor)


@strawberry.type
class DeviceMutations:
    @strawberry.mutation(description="Change a device's name, notes or development flag "
                                     "(developers and up).")
    async def update_device(self, info: Info, input: UpdateDeviceInput) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.update_device(
                info.context.principal, input.device_id, name=input.name, notes=input.notes,
                development=input.development)
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)

    @strawberry.mutation(description="Take a device out of its product (or its quarantine); "
                                     "its import flags are reset.")
    async def remove_device_from_product(self, info: Info, input: DeviceInput) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.remove_device_from_product(info.context.principal,
                                                              input.device_id)
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)

    @strawberry.mutation(description="Make a quarantined device one of the product's devices.")
    async def approve_quarantined_device(self, info: Info, input: DeviceInput) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.approve_quarantined_device(info.context.principal,
                                                              input.device_id)
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)

    @strawberry.mutation(description="Refuse a quarantined device: it may not connect again.")
    async def deny_quarantined_device(self, info: Info, input: DeviceInput) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.deny_quarantined_device(info.context.principal,
                                                           input.device_id)
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)
