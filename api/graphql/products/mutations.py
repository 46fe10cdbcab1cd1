"""Product mutations: creating and updating products, their OAuth clients and secrets."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.products.types import OAuthClient, Product
from fleet import products
from models.oauth import ClientType
from models.oauth import OAuthClient as OAuthClientModel
from models.products import CustomerAuth


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
    type: ClientType
    redirect_uris: list[str] = strawberry.field(default_factory=list)
    max_token_lifetime: int | None = strawberry.field(
        default=None, description="SERVER clients only: the longest lifetime, in seconds (60 "
                                  "to 7776000, 90 days), of the customer tokens it mints "
                                  "(two-legged auth). Default: the access token lifetime.")
    public: bool = strawberry.field(
        default=False, description="WEB and MOBILE clients only: an app that cannot keep a "
                                   "secret (on a phone, a desktop or in a browser) gets none "
                                   "and proves itself by PKCE alone; it cannot use "
                                   "client_credentials.")


@strawberry.input
class OAuthClientInput:
    client_id: str


@strawberry.type
class OAuthClientSecretPayload:
    oauth_client: OAuthClient | None = None
    client_secret: str | None = strawberry.field(
        default=None, description="Shown only in this response: store it now. Null for a "
                                  "public client, which has none.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, created: tuple[OAuthClientModel, str | None]) -> OAuthClientSecretPayload:
        client, secret = created
        return cls(oauth_client=OAuthClient.from_model(client), client_secret=secret)


@strawberry.type
class DeleteOAuthClientPayload:
    oauth_client: OAuthClient | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _product_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Product", "productId")


@strawberry.type
class ProductMutations:
    @strawberry.mutation(description="Create a product (developers and up).")
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductPayload:
        async def work() -> ProductPayload:
            product = await products.create_product(
                info.context.principal,
                decode_id(input.organization_id, "Organization", "organizationId"),
                name=input.name, slug=input.slug, description=input.description,
                platform=input.platform, customer_auth=input.customer_auth,
            )
            return ProductPayload(product=Product.from_model(product))

        return await mutate(ProductPayload, work)

    @strawberry.mutation(description="Change a product's name, description, platform or event "
                                     "data limit (administrators and up).")
    async def update_product(self, info: Info, input: UpdateProductInput) -> ProductPayload:
        async def work() -> ProductPayload:
            product = await products.update_product(
                info.context.principal, _product_id(input.product_id),
                name=input.name, description=input.description, platform=input.platform,
                event_data_limit=input.event_data_limit,
            )
            return ProductPayload(product=Product.from_model(product))

        return await mutate(ProductPayload, work)

    @strawberry.mutation(name="createOAuthClient",
                         description="Register an OAuth client; its secret (a public client "
                                     "has none) is shown only once.")
    async def create_oauth_client(self, info: Info, input: CreateOAuthClientInput
                                  ) -> OAuthClientSecretPayload:
        async def work() -> OAuthClientSecretPayload:
            return OAuthClientSecretPayload.of(await products.create_oauth_client(
                info.context.principal, _product_id(input.product_id),
                name=input.name, client_type=input.type,
                redirect_uris=input.redirect_uris, max_token_lifetime=input.max_token_lifetime,
                public=input.public,
            ))

        return await mutate(OAuthClientSecretPayload, work)

    @strawberry.mutation(name="rotateOAuthClientSecret",
                         description="Replace a confidential client's secret; the old one "
                                     "stops working. A public client has none to rotate.")
    async def rotate_oauth_client_secret(self, info: Info, input: OAuthClientInput
                                         ) -> OAuthClientSecretPayload:
        async def work() -> OAuthClientSecretPayload:
            return OAuthClientSecretPayload.of(await products.rotate_oauth_client_secret(
                info.context.principal, input.client_id))

        return await mutate(OAuthClientSecretPayload, work)

    @strawberry.mutation(name="deleteOAuthClient",
                         description="Delete a client and revoke every token it holds.")
    async def delete_oauth_client(self, info: Info, input: OAuthClientInput
                                  ) -> DeleteOAuthClientPayload:
        async def work() -> DeleteOAuthClientPayload:
            client = await products.delete_oauth_client(info.context.principal,
                                                        input.client_id)
            return DeleteOAuthClientPayload(oauth_client=OAuthClient.from_model(client))

        return await mutate(DeleteOAuthClientPayload, work)
