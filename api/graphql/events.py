"""GraphQL for events: the type, history connections, publishing, functions and variables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from tortoise.queryset import QuerySet

from api.graphql.context import Context, Info
from api.graphql.devices import Device, _integer_cursor
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate
from core.errors import DomainError, NotFound
from core.text import parse_key
from fleet import devices, events, products, rpc
from models.devices import Device as DeviceModel
from models.devices import Event as EventModel
from models.products import Product as ProductModel

if TYPE_CHECKING:
    from api.graphql.products import Product


def _loader(context: Context, name: str, load: Callable[[Sequence[Any]], Awaitable[list[Any]]]
            ) -> DataLoader[Any, Any]:
    """The request's DataLoader `name` for an event relation, created on first use."""
    if name not in context.loaders:
        context.loaders[name] = DataLoader(load_fn=load)
    return context.loaders[name]


def _devices(info: Info) -> DataLoader[str, DeviceModel | None]:
    """Devices by ID in one query per request (whether the caller may see one is decided by
    `Event.device`)."""

    async def load(ids: Sequence[str]) -> list[DeviceModel | None]:
        found = {d.id: d for d in await DeviceModel.filter(id__in=list(ids))}
        return [found.get(i) for i in ids]

    return _loader(info.context, "event_devices", load)


def visible_products(info: Info) -> DataLoader[int, ProductModel | None]:
    """Products by ID, None where the caller may not see the product (only its team may: its
    SERVER client reads the log but not the product, customers see their devices but not the
    product). A page names one product (or few), so this is an access check or a few per
    request."""
    principal = info.context.principal

    async def load(ids: Sequence[int]) -> list[ProductModel | None]:
        found: list[ProductModel | None] = []
        for product_id in ids:
            try:
                found.append(await products.get_product(principal, str(product_id)))
            except DomainError:
                found.append(None)
        return found

    return _loader(info.context, "event_products", load)


def _visible_devices(info: Info) -> DataLoader[str, bool]:
    """Whether the caller may see each device (its customer may, without seeing its product):
    an access check per distinct device of a page."""
    principal = info.context.principal

    async def load(ids: Sequence[str]) -> list[bool]:
        return [await _allowed(devices.get_device(principal, device_id)) for device_id in ids]

    return _loader(info.context, "event_visible_devices", load)


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Event | None]:
        return [await _visible_event(info, node_id) for node_id in node_ids]

    @strawberry.field(description="The product whose log holds it, if you can see the product.")
    async def product(self, info: Info) -> Annotated[
        Product, strawberry.lazy("api.graphql.products")
    ] | None:
        from api.graphql.products import Product

        if self.product_pk is None:
            return None
        product = await visible_products(info).load(self.product_pk)
        return None if product is None else Product.from_model(product)

    @strawberry.field(description="The device that published it, while it is still in the "
                                  "event's product and you can see that product or the "
                                  "device.")
    async def device(self, info: Info) -> Device | None:
        if self.device_id is None:
            return None
        device = await _devices(info).load(self.device_id)
        if device is None or device.product_id != self.product_pk:
            return None  # it has moved on: no business of the old product's team
        if self.product_pk is None:  # reached through the device itself, by its claimer
            return Device.from_model(device)
        if (await visible_products(info).load(self.product_pk) is not None
                or await _visible_devices(info).load(device.id)):
            return Device.from_model(device)
        return None


async def _allowed(check: Awaitable[object]) -> bool:
    try:
        await check
    except DomainError:
        return False
    return True


async def _visible_event(info: Info, node_id: str) -> Event | None:
    """The event if the caller may watch its product's log, or its device's events while the
    device is still in the event's product."""
    key = parse_key(node_id)
    event = None if key is None else await EventModel.get_or_none(id=key)
    if event is None:
        return None
    principal = info.context.principal
    if event.product_id is not None and await _allowed(
        events.watchable_product(principal, event.product_id)
    ):
        return Event.from_model(event)
    if event.device_id is not None:
        try:
            device = await events.watchable_device(principal, event.device_id)
        except DomainError:
            return None
        if events.sees_event_of(principal, device, event):  # as `Device.events`
            return Event.from_model(event)
    return None


# --- history -----------------------------------------------------------------------------


@strawberry.input(description="Narrow a device's events; absent criteria are left out.")
class DeviceEventFilter:
    prefix: str | None = strawberry.field(
        default=None, description="Only events whose name starts with this.")
    since: datetime | None = strawberry.field(
        default=None, description="Only events published at or after this moment.")
    until: datetime | None = strawberry.field(
        default=None, description="Only events published before this moment.")


@strawberry.input(description="Narrow a product's events; absent criteria are left out.")
class EventFilter(DeviceEventFilter):
    device_id: str | None = strawberry.field(
        default=None, description="Only events this device published.")


def _where(criteria: DeviceEventFilter | None) -> events.EventFilter:
    criteria = criteria or DeviceEventFilter()
    return events.EventFilter(
        prefix=events.check_prefix(criteria.prefix),
        device_id=criteria.device_id if isinstance(criteria, EventFilter) else None,
        since=criteria.since, until=criteria.until,
    )


async def _page(queryset: QuerySet[EventModel], first: int, after: str | None
                ) -> relay.Connection[Event]:
    """Newest first, by ID: a keyset that stays put while new events arrive."""
    return await paginate(queryset, order=("-id",), first=first, after=after,
                          to_node=Event.from_model, parse=_integer_cursor)


async def product_events(info: Info, product_id: int, first: int, after: str | None,
                         criteria: EventFilter | None) -> relay.Connection[Event]:
    """`Product.events` and `Query.productEvents`: every team role and the product's SERVER
    client; anyone else gets `NotFound`."""
    product = await events.watchable_product(info.context.principal, product_id)
    return await _page(events.product_history(product.id, _where(criteria)), first, after)


async def device_events(info: Info, device_id: str, first: int, after: str | None,
                        criteria: DeviceEventFilter | None) -> relay.Connection[Event]:
    """`Device.events`: whoever may watch the device, as `events.watched_device_history`
    (and `fleet.live.device_stream`)."""
    principal = info.context.principal
    device = await events.watchable_device(principal, device_id)
    return await _page(
        events.watched_device_history(principal, device, _where(criteria)), first, after
    )


# --- functions and variables ---------------------------------------------------------------


@strawberry.type(description="A variable's value as the device reported it, or why it could "
                             "not be read.")
class VariableReading:
    name: str
    value: JSON | None = strawberry.field(
        default=None, description="A boolean, a number or a string; null on failure.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


async def read_variable(info: Info, device_id: str, name: str) -> VariableReading:
    """`Device.variable`: support and up, and the product's SERVER client."""
    try:
        value = await rpc.read_variable(info.context.principal, device_id, name)
    except DomainError as error:
        return VariableReading(name=name, user_errors=[UserError.from_domain(error)])
    return VariableReading(name=name, value=value)


@strawberry.input
class CallFunctionInput:
    device_id: str
    name: str
    argument: str = strawberry.field(default="", description="At most 1024 characters.")


@strawberry.type
class CallFunctionPayload:
    return_value: int | None = strawberry.field(
        default=None, description="What the function returned.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- publishing ----------------------------------------------------------------------------


@strawberry.input
class PublishEventInput:
    product_id: relay.GlobalID
    name: str = strawberry.field(
        description="1 to 64 letters, digits, '_', '-', '/' or '.'; not starting with "
                    "'spark'.")
    data: str = strawberry.field(
        default="", description="At most the product's eventDataLimit bytes (UTF-8).")
    private: bool = True


@strawberry.type
class PublishEventPayload:
    event: Event | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EventQueries:
    @strawberry.field(description="A product's log, newest first: for its team and its SERVER "
                                  "client (which cannot see the product itself).")
    async def product_events(
        self,
        info: Info,
        product_id: relay.GlobalID,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: EventFilter | None = None,
    ) -> relay.Connection[Event] | None:
        try:
            return await product_events(
                info, decode_id(product_id, "Product", "productId"), first, after, filter)
        except NotFound:
            return None


@strawberry.type
class EventMutations:
    @strawberry.mutation(description="Publish an event into a product's log as the product "
                                     "(developers and up, and the product's SERVER client).")
    async def publish_event(self, info: Info, input: PublishEventInput) -> PublishEventPayload:
        async def work() -> dict[str, object]:
            event = await events.publish_from_server(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                name=input.name, data=input.data, private=input.private)
            return {"event": Event.from_live(event)}

        return await mutate(PublishEventPayload, work)

    @strawberry.mutation(description="Call a function of an online device and return its "
                                     "result (support and up, and the product's SERVER "
                                     "client).")
    async def call_function(self, info: Info, input: CallFunctionInput) -> CallFunctionPayload:
        async def work() -> dict[str, object]:
            return {"return_value": await rpc.call_function(
                info.context.principal, input.device_id, input.name, input.argument)}

        return await mutate(CallFunctionPayload, work)
