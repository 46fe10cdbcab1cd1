"""Product types: the product, with its devices, customers and log, and its OAuth clients."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.graphql import loaders
from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from api.graphql.pagination import DEFAULT_PAGE_SIZE, created_cursor, integer_cursor, paginate
from api.graphql.usage import resolvers as usage
from fleet import access, customers, events, fleet_queries
from fleet.fleet_queries import DeviceOrder
from models.oauth import ClientType
from models.oauth import OAuthClient as OAuthClientModel
from models.products import CustomerAuth
from models.products import Product as ProductModel

if TYPE_CHECKING:
    from api.graphql.customers.types import Customer, CustomerFilter
    from api.graphql.devices.types import (
        Device,
        DeviceErrorFilter,
        DeviceErrorReport,
        DeviceFilter,
        DeviceStats,
        ErrorCount,
    )
    from api.graphql.events.types import Event, EventFilter
    from api.graphql.organizations.types import Organization
    from api.graphql.usage.types import ProductUsage

_CUSTOMERS = "api.graphql.customers.types"
_DEVICES = "api.graphql.devices.types"
_EVENTS = "api.graphql.events.types"
_ORGANIZATIONS = "api.graphql.organizations.types"
_USAGE = "api.graphql.usage.types"
_Customer: strawberry.LazyType[Any, Any] = strawberry.LazyType("Customer", _CUSTOMERS)
_Device: strawberry.LazyType[Any, Any] = strawberry.LazyType("Device", _DEVICES)
_DeviceErrorReport: strawberry.LazyType[Any, Any] = strawberry.LazyType(
    "DeviceErrorReport", _DEVICES)
_DeviceStats: strawberry.LazyType[Any, Any] = strawberry.LazyType("DeviceStats", _DEVICES)
_ErrorCount: strawberry.LazyType[Any, Any] = strawberry.LazyType("ErrorCount", _DEVICES)
_Event: strawberry.LazyType[Any, Any] = strawberry.LazyType("Event", _EVENTS)
_Organization: strawberry.LazyType[Any, Any] = strawberry.LazyType("Organization", _ORGANIZATIONS)

strawberry.enum(CustomerAuth, description="How the product's end customers sign in.")
strawberry.enum(ClientType, name="OAuthClientType",
                description="WEB: a web app (code flow); MOBILE: an app that only creates and "
                            "signs in customers; SERVER: the creator's backend (two-legged).")


@strawberry.type(name="OAuthClient", description="An OAuth client of a product.")
class OAuthClient:
    client_id: str
    name: str
    type: ClientType
    redirect_uris: list[str]
    max_token_lifetime: int | None = strawberry.field(
        description="SERVER clients: the longest lifetime, in seconds, of the customer tokens "
                    "it mints; null: the access token lifetime (1 hour unless configured).")
    public: bool = strawberry.field(
        description="A public client has no secret: it authenticates at the token endpoint "
                    "with `none` and proves itself by PKCE (an app on a device or in a "
                    "browser). Otherwise it is confidential and sends its secret.")
    created_at: datetime

    @classmethod
    def from_model(cls, client: OAuthClientModel) -> OAuthClient:
        return cls(client_id=client.client_id, name=client.name,
                   type=ClientType(client.kind), redirect_uris=client.redirect_uris,
                   max_token_lifetime=client.max_token_lifetime,
                   public=client.public, created_at=client.created_at)


@strawberry.type(description="A fleet of devices, with its customers and apps.")
class Product(relay.Node):
    id: relay.NodeID[int]
    product_id: int = strawberry.field(description="The numeric product ID devices report.")
    name: str
    slug: str
    description: str
    platform: str
    customer_auth: CustomerAuth
    created_at: datetime
    event_data_limit: int = strawberry.field(
        description="Bytes (UTF-8) of data an event may carry: 1 to 16384.")
    organization_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, product: ProductModel) -> Product:
        return cls(id=product.id, product_id=product.id, name=product.name, slug=product.slug,
                   description=product.description, platform=product.platform,
                   customer_auth=CustomerAuth(product.customer_auth),
                   created_at=product.created_at, event_data_limit=product.event_data_limit,
                   organization_pk=product.organization_id)

    @classmethod
    async def visible(cls, info: Info, product_id: int | None) -> Product | None:
        """The product `product_id` of a device or an event, if the caller may see it (only its
        team may: its SERVER client reads the log but not the product, customers see their
        devices but not the product)."""
        if product_id is None:
            return None
        product = await loaders.visible_products(info.context).load(product_id)
        return None if product is None else cls.from_model(product)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Product | None]:
        return await visible_nodes(info, node_ids, access.visible_products, cls.from_model)

    @strawberry.field
    async def organization(self, info: Info
                           ) -> Annotated[Organization, strawberry.lazy(_ORGANIZATIONS)]:
        organization: Organization = _Organization.resolve_type().from_model(
            await loaders.organizations(info.context).load(self.organization_pk))
        return organization

    @strawberry.field(description="What the product used in a period (YYYY-MM; the current "
                                  "one by default) (owner and administrators).")
    async def usage(self, info: Info, period: str | None = None
                    ) -> Annotated[ProductUsage, strawberry.lazy(_USAGE)] | None:
        return await usage.product_usage(info.context.principal, self.organization_pk, self.id,
                                         self.created_at, period)

    @strawberry.field(description="The product's OAuth clients (their secrets are never shown "
                                  "again after creation or rotation).")
    async def oauth_clients(self, info: Info) -> list[OAuthClient]:
        clients = await loaders.product_clients(info.context).load(self.id)
        return [OAuthClient.from_model(c) for c in clients]

    @strawberry.field(description="The product's devices (or, with `quarantined: true`, its "
                                  "quarantine), most recently heard first or by device ID.")
    async def devices(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[DeviceFilter, strawberry.lazy(_DEVICES)] | None = None,
        order_by: DeviceOrder = DeviceOrder.LAST_HEARD_DESC,
    ) -> relay.Connection[Annotated[Device, strawberry.lazy(_DEVICES)]]:
        queryset = await fleet_queries.product_devices(
            info.context.principal, self.id,
            filter.to_domain() if filter else fleet_queries.DeviceFilter())
        connection: relay.Connection[Device] = await _Device.resolve_type().page(
            queryset, first=first, after=after, order=order_by)
        return connection

    @strawberry.field(description="How many devices, online, never online, per firmware "
                                  "version: counted by the database.")
    async def device_stats(self, info: Info
                           ) -> Annotated[DeviceStats, strawberry.lazy(_DEVICES)]:
        stats: DeviceStats = _DeviceStats.resolve_type().from_domain(
            await fleet_queries.device_stats(info.context.principal, self.id))
        return stats

    @strawberry.field(description="The errors its devices reported, newest first.")
    async def device_errors(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[DeviceErrorFilter, strawberry.lazy(_DEVICES)] | None = None,
        # A device error is no Node: Strawberry connects any type, its typing only Nodes.
    ) -> relay.Connection[Annotated[DeviceErrorReport, strawberry.lazy(_DEVICES)]]:  # type: ignore[type-var]
        queryset = await fleet_queries.product_device_errors(
            info.context.principal, self.id,
            device_id=filter.device_id if filter else None,
            code=filter.code if filter else None,
            since=filter.since if filter else None)
        return await paginate(queryset, order=("-id",), first=first, after=after,
                              to_node=_DeviceErrorReport.resolve_type().from_model,
                              parse=integer_cursor)

    @strawberry.field(description="Errors per code with the devices affected, most frequent "
                                  "first.")
    async def error_summary(self, info: Info, since: datetime | None = None
                            ) -> list[Annotated[ErrorCount, strawberry.lazy(_DEVICES)]]:
        to_node = _ErrorCount.resolve_type().from_domain
        counts = await fleet_queries.error_summary(info.context.principal, self.id, since)
        return [to_node(count) for count in counts]

    @strawberry.field(description="Its customers with the devices they claimed, newest first.")
    async def customers(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[CustomerFilter, strawberry.lazy(_CUSTOMERS)] | None = None,
    ) -> relay.Connection[Annotated[Customer, strawberry.lazy(_CUSTOMERS)]]:
        queryset = await customers.list_customers(
            info.context.principal, self.id,
            filter.to_domain() if filter else customers.CustomerFilter())
        return await paginate(queryset, order=("-created_at", "-id"), first=first, after=after,
                              to_node=_Customer.resolve_type().from_model, parse=created_cursor)

    @strawberry.field(description="Its log: events from its devices and its server, newest "
                                  "first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: Annotated[EventFilter, strawberry.lazy(_EVENTS)] | None = None,
    ) -> relay.Connection[Annotated[Event, strawberry.lazy(_EVENTS)]]:
        _product, history = await events.product_log(
            info.context.principal, self.id,
            filter.to_domain() if filter else events.EventFilter())
        connection: relay.Connection[Event] = await _Event.resolve_type().page(
            history, first=first, after=after)
        return connection
