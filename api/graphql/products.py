"""GraphQL for products and their OAuth clients."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from api.graphql import customers, devices, events
from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.loaders import loader
from api.graphql.pagination import DEFAULT_PAGE_SIZE
from core.errors import NotFound
from core.text import parse_key
from fleet import products
from models.oauth import OAuthClient as OAuthClientModel
from models.products import Product as ProductModel

if TYPE_CHECKING:
    from api.graphql.organizations import Organization


@strawberry.enum(description="How the product's end customers sign in.")
class CustomerAuth(Enum):
    SIMPLE = "SIMPLE"
    TWO_LEGGED = "TWO_LEGGED"
    LOGIN_WITH_PLATFORM = "LOGIN_WITH_PLATFORM"


@strawberry.enum(description="WEB: a web app (code flow); MOBILE: an app that only creates and "
                             "signs in customers; SERVER: the creator's backend (two-legged).")
class OAuthClientType(Enum):
    WEB = "WEB"
    MOBILE = "MOBILE"
    SERVER = "SERVER"


@strawberry.type(name="OAuthClient", description="An OAuth client of a product.")
class OAuthClient:
    client_id: str
    name: str
    type: OAuthClientType
    redirect_uris: list[str]
    max_token_lifetime: int | None = strawberry.field(
        description="SERVER clients: the longest lifetime, in seconds, of the customer tokens "
                    "it mints; null: the access token lifetime (1 hour unless configured).")
    created_at: datetime

    @classmethod
    def from_model(cls, client: OAuthClientModel) -> OAuthClient:
        return cls(client_id=client.client_id, name=client.name,
                   type=OAuthClientType(client.kind), redirect_uris=client.redirect_uris,
                   max_token_lifetime=client.max_token_lifetime,
                   created_at=client.created_at)


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Product | None]:
        results: list[Product | None] = []
        for node_id in node_ids:
            if parse_key(node_id) is None:  # not a product ID (get_product also takes slugs)
                results.append(None)
                continue
            try:
                product = await products.get_product(info.context.principal, node_id)
            except NotFound:
                results.append(None)
            else:
                results.append(cls.from_model(product))
        return results

    @strawberry.field
    async def organization(self, info: Info) -> Annotated[
        Organization, strawberry.lazy("api.graphql.organizations")
    ]:
        from api.graphql.organizations import Organization

        return Organization.from_model(await loader(info.context, "organization").load(
            self.organization_pk))

    @strawberry.field(description="The product's OAuth clients (their secrets are never shown "
                                  "again after creation or rotation).")
    async def oauth_clients(self, info: Info) -> list[OAuthClient]:
        clients = await loader(info.context, "product_clients").load(self.id)
        return [OAuthClient.from_model(c) for c in clients]

    @strawberry.field(description="The product's devices (or, with `quarantined: true`, its "
                                  "quarantine), most recently heard first or by device ID.")
    async def devices(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: devices.DeviceFilter | None = None,
        order_by: devices.DeviceOrder = devices.DeviceOrder.LAST_HEARD_DESC,
    ) -> relay.Connection[devices.Device]:
        return await devices.product_devices(info, self.id, first, after, filter, order_by)

    @strawberry.field(description="How many devices, online, never online, per firmware "
                                  "version: counted by the database.")
    async def device_stats(self, info: Info) -> devices.DeviceStats:
        return await devices.product_device_stats(info, self.id)

    @strawberry.field(description="The errors its devices reported, newest first.")
    async def device_errors(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: devices.DeviceErrorFilter | None = None,
    ) -> relay.Connection[devices.DeviceErrorReport]:
        return await devices.product_device_errors(info, self.id, first, after, filter)

    @strawberry.field(description="Errors per code with the devices affected, most frequent "
                                  "first.")
    async def error_summary(self, info: Info, since: datetime | None = None
                            ) -> list[devices.ErrorCount]:
        return await devices.product_error_summary(info, self.id, since)

    @strawberry.field(description="Its customers with the devices they claimed, newest first.")
    async def customers(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: customers.CustomerFilter | None = None,
    ) -> relay.Connection[customers.Customer]:
        return await customers.product_customers(info, self.id, first, after, filter)

    @strawberry.field(description="Its log: events from its devices and its server, newest "
                                  "first.")
    async def events(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: events.EventFilter | None = None,
    ) -> relay.Connection[events.Event]:
        return await events.product_events(info, self.id, first, after, filter)


@strawberry.input
class CreateProductInput:
    organization_id: relay.GlobalID
    name: str
    slug: str | None = strawberry.field(
        default=None, description="Derived from the name when absent.")
    description: str = ""
    platform: str
    customer_auth: CustomerAuth


@strawberry.input
class UpdateProductInput:
    product_id: relay.GlobalID
    name: str | None = None
    description: str | None = None
    platform: str | None = None
    event_data_limit: int | None = strawberry.field(
        default=None, description="Bytes of data an event may carry: 1 to 16384.")


@strawberry.type
class ProductPayload:
    product: Product | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateOAuthClientInput:
    product_id: relay.GlobalID
    name: str
    type: OAuthClientType
    redirect_uris: list[str] = strawberry.field(default_factory=list)
    max_token_lifetime: int | None = strawberry.field(
        default=None, description="SERVER clients only: the longest lifetime, in seconds (60 "
                                  "to 7776000, 90 days), of the customer tokens it mints "
                                  "(two-legged auth). Default: the access token lifetime.")


@strawberry.input
class OAuthClientInput:
    client_id: str


@strawberry.type
class OAuthClientSecretPayload:
    oauth_client: OAuthClient | None = None
    client_secret: str | None = strawberry.field(
        default=None, description="Shown only in this response: store it now.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteOAuthClientPayload:
    oauth_client: OAuthClient | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _with_secret(created: tuple[OAuthClientModel, str]) -> dict[str, object]:
    client, secret = created
    return {"oauth_client": OAuthClient.from_model(client), "client_secret": secret}


@strawberry.type
class ProductQueries:
    @strawberry.field(description="A product of your organization, by numeric ID or slug.")
    async def product(self, info: Info, id_or_slug: str) -> Product | None:
        try:
            return Product.from_model(
                await products.get_product(info.context.principal, id_or_slug))
        except NotFound:
            return None


@strawberry.type
class ProductMutations:
    @strawberry.mutation(description="Create a product (developers and up).")
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductPayload:
        async def work() -> dict[str, object]:
            product = await products.create_product(
                info.context.principal,
                decode_id(input.organization_id, "Organization", "organizationId"),
                name=input.name, slug=input.slug, description=input.description,
                platform=input.platform, customer_auth=input.customer_auth.value,
            )
            return {"product": Product.from_model(product)}

        return await mutate(ProductPayload, work)

    @strawberry.mutation(description="Change a product's name, description, platform or event "
                                     "data limit (administrators and up).")
    async def update_product(self, info: Info, input: UpdateProductInput) -> ProductPayload:
        async def work() -> dict[str, object]:
            product = await products.update_product(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                name=input.name, description=input.description, platform=input.platform,
                event_data_limit=input.event_data_limit,
            )
            return {"product": Product.from_model(product)}

        return await mutate(ProductPayload, work)

    @strawberry.mutation(name="createOAuthClient",
                         description="Register an OAuth client; its secret is shown only once.")
    async def create_oauth_client(self, info: Info, input: CreateOAuthClientInput
                                  ) -> OAuthClientSecretPayload:
        async def work() -> dict[str, object]:
            return _with_secret(await products.create_oauth_client(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                name=input.name, client_type=input.type.value,
                redirect_uris=input.redirect_uris, max_token_lifetime=input.max_token_lifetime,
            ))

        return await mutate(OAuthClientSecretPayload, work)

    @strawberry.mutation(name="rotateOAuthClientSecret",
                         description="Replace a client's secret; the old one stops working.")
    async def rotate_oauth_client_secret(self, info: Info, input: OAuthClientInput
                                         ) -> OAuthClientSecretPayload:
        async def work() -> dict[str, object]:
            return _with_secret(await products.rotate_oauth_client_secret(
                info.context.principal, input.client_id))

        return await mutate(OAuthClientSecretPayload, work)

    @strawberry.mutation(name="deleteOAuthClient",
                         description="Delete a client and revoke every token it holds.")
    async def delete_oauth_client(self, info: Info, input: OAuthClientInput
                                  ) -> DeleteOAuthClientPayload:
        async def work() -> dict[str, object]:
            client = await products.delete_oauth_client(info.context.principal,
                                                        input.client_id)
            return {"oauth_client": OAuthClient.from_model(client)}

        return await mutate(DeleteOAuthClientPayload, work)
