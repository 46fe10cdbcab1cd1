"""Device types: the device, its errors, fleet counts and variable readings, and the filters
of a product's devices."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from tortoise.queryset import QuerySet

from api.graphql import loaders
from api.graphql.context import Info
from api.graphql.errors import UserError
from api.graphql.pagination import (
    DEFAULT_PAGE_SIZE,
    created_cursor,
    heard_cursor,
    paginate,
    paginate_nulls_last,
    text_cursor,
)
from auth.principals import CustomerPrincipal
from core.errors import DomainError
from fleet import access, events, fleet_queries, locations, rpc, sims
from fleet.fleet_queries import DeviceOrder
from models.devices import Device as DeviceModel
from models.devices import DeviceError as DeviceErrorModel
from models.devices import LocationPoint as LocationPointModel
from models.devices import Quarantine
from models.usage import SimChange as SimChangeModel

if TYPE_CHECKING:
    from api.graphql.events.types import DeviceEventFilter, Event
    from api.graphql.products.types import Product

_EVENTS = "api.graphql.events.types"
_PRODUCTS = "api.graphql.products.types"
_Event: strawberry.LazyType[Any, Any] = strawberry.LazyType("Event", _EVENTS)
_Product: strawberry.LazyType[Any, Any] = strawberry.LazyType("Product", _PRODUCTS)

strawberry.enum(Quarantine, name="DeviceQuarantine",
                description="Where a device stands with its product: NONE (one of its devices), "
                            "QUARANTINED (awaits approval) or DENIED (refused).")
strawberry.enum(DeviceOrder, description="How to sort a product's devices.")

_T = TypeVar("_T")


def _team_only(info: Info, value: _T) -> _T | None:
    """`value`, or None for a customer token: the device's customer sees its state, not what
    its product's team keeps about it."""
    return None if isinstance(info.context.principal, CustomerPrincipal) else value


@strawberry.type(description="A variable's value as the device reported it, or why it could "
                             "not be read.")
class VariableReading:
    name: str
    value: JSON | None = strawberry.field(
        default=None, description="A boolean, a number or a string; null on failure.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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
    team_quarantine: strawberry.Private[Quarantine]
    team_rate_limited_events: strawberry.Private[int]
    team_iccid: strawberry.Private[str | None]

    @strawberry.field(description="Connects over a cellular network: it has a SIM (an ICCID).")
    def cellular(self) -> bool:
        return self.team_iccid is not None

    @strawberry.field(description="Its SIM's ICCID; null if it is not cellular, and for the "
                                  "device's customer.")
    def iccid(self, info: Info) -> str | None:
        return _team_only(info, self.team_iccid)

    @strawberry.field(description="Whether its SIM is active (`setSimActive`); null if it is "
                                  "not cellular, and for the device's customer.")
    async def sim_active(self, info: Info) -> bool | None:
        if self.team_iccid is None or isinstance(info.context.principal, CustomerPrincipal):
            return None
        return await loaders.sim_states(info.context).load(self.device_id)

    @strawberry.field(description="Its SIM's activations and deactivations, newest first; "
                                  "null for the device's customer.")
    async def sim_changes(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> relay.Connection[SimChange] | None:  # type: ignore[type-var]  # changes are no nodes
        if isinstance(info.context.principal, CustomerPrincipal):
            return None
        return await paginate(  # type: ignore[type-var]  # changes are no nodes
            sims.sim_changes(self.device_id), order=("-changed_at", "-id"), first=first,
            after=after, to_node=SimChange.from_model, parse=created_cursor)

    @strawberry.field(description="The team's notes; null for the device's customer.")
    def notes(self, info: Info) -> str | None:
        return _team_only(info, self.team_notes)

    @strawberry.field(description="Marked for development; null for the device's customer.")
    def development(self, info: Info) -> bool | None:
        return _team_only(info, self.team_development)

    @strawberry.field(description="Awaits approval in its product's quarantine; null for the "
                                  "device's customer.")
    def quarantined(self, info: Info) -> bool | None:
        return _team_only(info, self.team_quarantine is Quarantine.QUARANTINED)

    @strawberry.field(description="Where it stands with its product; null for the device's "
                                  "customer.")
    def quarantine(self, info: Info) -> Quarantine | None:
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
            team_quarantine=Quarantine(device.quarantine),
            team_rate_limited_events=device.rate_limited_events, team_iccid=device.iccid,
        )

    @classmethod
    async def page(cls, queryset: QuerySet[DeviceModel], *, first: int, after: str | None,
                   order: DeviceOrder = DeviceOrder.DEVICE_ID) -> relay.Connection[Device]:
        """A page of devices in `order` (never heard last)."""
        if order is DeviceOrder.DEVICE_ID:
            return await paginate(queryset, order=("id",), first=first, after=after,
                                  to_node=cls.from_model, parse=text_cursor)
        return await paginate_nulls_last(queryset, order=("-last_heard_at", "id"), first=first,
                                         after=after, to_node=cls.from_model,
                                         parse=heard_cursor)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Device | None]:
        wanted = list(node_ids)
        found = await access.visible_devices(info.context.principal, wanted)
        return [cls.from_model(found[i]) if i in found else None for i in wanted]

    @strawberry.field(description="The product it belongs to, or whose quarantine it is in, "
                                  "if you can see the product (its team can; its customers "
                                  "cannot).")
    async def product(self, info: Info
                      ) -> Annotated[Product, strawberry.lazy(_PRODUCTS)] | None:
        node: Product | None = await _Product.resolve_type().visible(info, self.product_pk)
        return node

    @strawberry.field(description="The events it published, newest first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[DeviceEventFilter, strawberry.lazy(_EVENTS)] | None = None,
    ) -> relay.Connection[Annotated[Event, strawberry.lazy(_EVENTS)]]:
        device = await loaders.watchable_devices(info.context).load(self.device_id)
        history = events.watched_device_log(
            info.context.principal, device,
            filter.to_domain() if filter else events.EventFilter())
        connection: relay.Connection[Event] = await _Event.resolve_type().page(
            history, first=first, after=after)
        return connection

    @strawberry.field(description="The location points it reported, newest first (by when "
                                  "the cloud received them). Its customer sees those received "
                                  "since the claim.")
    async def locations(
        self,
        info: Info,
        since: Annotated[datetime | None, strawberry.argument(
            description="Only points received at or after this moment.")] = None,
        until: Annotated[datetime | None, strawberry.argument(
            description="Only points received before this moment.")] = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> relay.Connection[LocationPoint]:  # type: ignore[type-var]  # points are no nodes
        device = await loaders.watchable_devices(info.context).load(self.device_id)
        points = locations.watched_device_points(
            info.context.principal, device, locations.LocationFilter(since=since, until=until))
        return await paginate(  # type: ignore[type-var]  # points are no nodes
            points, order=("-received_at", "-id"), first=first, after=after,
            to_node=LocationPoint.from_model, parse=created_cursor)

    @strawberry.field(description="Read one of its variables (support and up): the device "
                                  "answers, so it must be online.")
    async def variable(self, info: Info, name: str) -> VariableReading:
        try:
            device = await loaders.callable_devices(info.context).load(self.device_id)
            value = await rpc.read_variable_of(device, name)
        except DomainError as error:
            return VariableReading(name=name, user_errors=[UserError.from_domain(error)])
        return VariableReading(name=name, value=JSON(value))


@strawberry.type(description="A cellular device's SIM activated or deactivated.")
class SimChange:
    active: bool = strawberry.field(description="true: activated; false: deactivated.")
    changed_at: datetime
    changed_by: str | None = strawberry.field(
        description="The email of the team member who changed it; null once their account "
                    "is gone.")

    @classmethod
    def from_model(cls, change: SimChangeModel) -> SimChange:
        return cls(active=change.active, changed_at=change.changed_at,
                   changed_by=change.changed_by.email if change.changed_by else None)


@strawberry.type(description="Where a device was, as it reported in a `location` frame.")
class LocationPoint:
    lat: float = strawberry.field(description="Latitude, degrees from -90 to 90.")
    lon: float = strawberry.field(description="Longitude, degrees from -180 to 180.")
    alt: float | None = strawberry.field(description="Altitude, metres.")
    accuracy: float | None = strawberry.field(description="Metres.")
    heading: float | None = strawberry.field(description="Degrees from north, 0 to 360.")
    speed: float | None = strawberry.field(description="Metres a second.")
    device_time: datetime | None = strawberry.field(
        description="When the device says it was there, by its own clock; null if it did not "
                    "say.")
    received_at: datetime = strawberry.field(description="When the cloud stored it.")

    @classmethod
    def from_model(cls, point: LocationPointModel) -> LocationPoint:
        return cls(lat=point.lat, lon=point.lon, alt=point.alt, accuracy=point.accuracy,
                   heading=point.heading, speed=point.speed, device_time=point.device_time,
                   received_at=point.received_at)


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

    @classmethod
    def from_domain(cls, count: fleet_queries.VersionCount) -> VersionCount:
        return cls(version=count.version, devices=count.devices, online=count.online)


@strawberry.type(description="Counts over a product's devices (its quarantine apart).")
class DeviceStats:
    total: int = strawberry.field(
        description="Devices in the product: online + offline + neverOnline."
    )
    online: int = strawberry.field(description="Devices connected now.")
    offline: int = strawberry.field(
        description="Devices that have been online and are not connected now."
    )
    never_online: int = strawberry.field(description="Devices that have never been online.")
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
            by_firmware_version=[VersionCount.from_domain(c) for c in stats.by_firmware_version],
            by_system_firmware_version=[
                VersionCount.from_domain(c) for c in stats.by_system_firmware_version
            ],
        )


@strawberry.type(description="How often devices reported one error code.")
class ErrorCount:
    code: str
    count: int
    devices: int = strawberry.field(description="Distinct devices that reported it.")

    @classmethod
    def from_domain(cls, count: fleet_queries.ErrorCount) -> ErrorCount:
        return cls(code=count.code, count=count.count, devices=count.devices)
