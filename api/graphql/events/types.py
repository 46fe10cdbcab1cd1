"""Event types: the event and the filters of event history."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from tortoise.queryset import QuerySet

from api.graphql import loaders
from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from api.graphql.pagination import integer_cursor, paginate
from fleet import access, events
from models.devices import Event as EventModel

if TYPE_CHECKING:
    from api.graphql.devices.types import Device
    from api.graphql.products.types import Product

_DEVICES = "api.graphql.devices.types"
_PRODUCTS = "api.graphql.products.types"
_Device: strawberry.LazyType[Any, Any] = strawberry.LazyType("Device", _DEVICES)
_Product: strawberry.LazyType[Any, Any] = strawberry.LazyType("Product", _PRODUCTS)


@strawberry.type(description="An event in a product's log: published by one of its devices or "
                             "by the product's server.")
class Event(relay.Node):
    id: relay.NodeID[int]
    name: str
    data: str = strawberry.field(description="Empty when the event carries no data.")
    published_at: datetime
    private: bool
    ttl: int = strawberry.field(description="Seconds, as Particle's streams report it.")
    device_id: str | None = strawberry.field(
        description="The publishing device's ID; null for events the product's server "
                    "published.")
    product_pk: strawberry.Private[int | None]

    @classmethod
    def from_live(cls, event: events.LiveEvent) -> Event:
        return cls(id=event.id, name=event.name, data=event.data,
                   published_at=event.published_at, private=event.private, ttl=events.TTL,
                   device_id=event.device_id, product_pk=event.product_id)

    @classmethod
    def from_model(cls, event: EventModel) -> Event:
        return cls.from_live(events.LiveEvent.of(event))

    @classmethod
    async def page(cls, history: QuerySet[EventModel], *, first: int, after: str | None
                   ) -> relay.Connection[Event]:
        """Newest first, by ID: a keyset that stays put while new events arrive."""
        return await paginate(history, order=("-id",), first=first, after=after,
                              to_node=cls.from_model, parse=integer_cursor)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Event | None]:
        return await visible_nodes(info, node_ids, access.visible_events, cls.from_model)

    @strawberry.field(description="The product whose log holds it, if you can see the product.")
    async def product(self, info: Info
                      ) -> Annotated[Product, strawberry.lazy(_PRODUCTS)] | None:
        node: Product | None = await _Product.resolve_type().visible(info, self.product_pk)
        return node

    @strawberry.field(description="The device that published it, while it is still in the "
                                  "event's product and you can see that product or the "
                                  "device.")
    async def device(self, info: Info) -> Annotated[Device, strawberry.lazy(_DEVICES)] | None:
        if self.device_id is None:
            return None
        device = await loaders.devices_by_id(info.context).load(self.device_id)
        if device is None or device.product_id != self.product_pk:
            return None  # it has moved on: no business of the old product's team
        if not (self.product_pk is None  # reached through the device itself, by its claimer
                or await loaders.visible_products(info.context).load(self.product_pk)
                is not None
                or await loaders.visible_devices(info.context).load(device.id)):
            return None
        node: Device = _Device.resolve_type().from_model(device)
        return node


@strawberry.input(description="Narrow a device's events; absent criteria are left out.")
class DeviceEventFilter:
    prefix: str | None = strawberry.field(
        default=None, description="Only events whose name starts with this.")
    since: datetime | None = strawberry.field(
        default=None, description="Only events published at or after this moment.")
    until: datetime | None = strawberry.field(
        default=None, description="Only events published before this moment.")

    def to_domain(self) -> events.EventFilter:
        return events.EventFilter(prefix=self.prefix, since=self.since, until=self.until)


@strawberry.input(description="Narrow a product's events; absent criteria are left out.")
class EventFilter(DeviceEventFilter):
    device_id: str | None = strawberry.field(
        default=None, description="Only events this device published.")

    def to_domain(self) -> events.EventFilter:
        return events.EventFilter(prefix=self.prefix, device_id=self.device_id,
                                  since=self.since, until=self.until)
