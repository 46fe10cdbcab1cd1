"""GraphQL for third-party apps (Login with Device Cloud): the viewer's own apps, and the apps
the viewer allowed to act for them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from auth import apps
from core.errors import PermissionDenied
from models.oauth import Consent
from models.oauth import OAuthClient as OAuthClientModel


@strawberry.type(description="A third-party app you registered: an OAuth client that signs "
                             "users in with their platform account (authorization code flow "
                             "with PKCE) and asks them for scopes.")
class App:
    client_id: str
    name: str
    redirect_uris: list[str] = strawberry.field(
        description="Matched exactly against the redirect_uri of authorization requests.")
    scopes: list[str] = strawberry.field(
        description="The scopes it may ask users for: devices:read, events:read, devices:call.")
    created_at: datetime

    @classmethod
    def from_model(cls, client: OAuthClientModel) -> App:
        return cls(client_id=client.client_id, name=client.name,
                   redirect_uris=client.redirect_uris, scopes=client.scope.split(),
                   created_at=client.created_at)


@strawberry.type(description="An app you allowed to act for you: a third-party app, or a "
                             "product's web app you signed in to as its customer.")
class AuthorizedApp:
    client_id: str
    name: str
    product_name: str | None = strawberry.field(
        description="The product whose app this is (you are its customer); null for a "
                    "third-party app.")
    scopes: list[str] = strawberry.field(description="The scopes you granted it.")
    consented_at: datetime = strawberry.field(description="When you first allowed it.")
    updated_at: datetime = strawberry.field(description="When you last granted it scopes.")

    @classmethod
    def from_model(cls, consent: Consent) -> AuthorizedApp:
        client = consent.client
        return cls(client_id=client.client_id, name=client.name,
                   product_name=client.product.name if client.product else None,
                   scopes=consent.scope.split(), consented_at=consent.created_at,
                   updated_at=consent.updated_at)


@strawberry.type
class ViewerApps:
    """The `User` fields for the viewer's apps (the account holder only)."""

    @strawberry.field(description="The third-party apps you registered, oldest first.")
    async def apps(self, info: Info) -> list[App]:
        _require_viewer(self, info)
        return [App.from_model(c) for c in await apps.apps_of(info.context.principal)
                .order_by("id")]

    @strawberry.field(description="The apps you allowed to act for you, most recent first.")
    async def authorized_apps(self, info: Info) -> list[AuthorizedApp]:
        _require_viewer(self, info)
        return [AuthorizedApp.from_model(c)
                for c in await apps.authorized_apps(info.context.principal)]


def _require_viewer(user: object, info: Info) -> None:
    viewer = info.context.user
    if viewer is None or viewer.id != getattr(user, "id", None):
        raise PermissionDenied("Only the account holder sees this.")


@strawberry.input
class CreateAppInput:
    name: str
    redirect_uris: list[str] = strawberry.field(
        description="https URIs (http only to 127.0.0.1, [::1] or localhost), at most 10.")
    scopes: list[str] = strawberry.field(
        default_factory=list,
        description="What the app may ask users for: devices:read, events:read, devices:call.")


@strawberry.input
class AppInput:
    client_id: str


@strawberry.type
class CreateAppPayload:
    app: App | None = None
    client_secret: str | None = strawberry.field(
        default=None, description="Shown only in this response: store it now.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteAppPayload:
    app: App | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RevokeAuthorizedAppPayload:
    authorized_app: AuthorizedApp | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AppMutations:
    @strawberry.mutation(description="Register a third-party app; its secret is shown only "
                                     "once.")
    async def create_app(self, info: Info, input: CreateAppInput) -> CreateAppPayload:
        async def work() -> dict[str, object]:
            client, secret = await apps.create_app(
                info.context.principal, name=input.name, redirect_uris=input.redirect_uris,
                scopes=input.scopes,
            )
            return {"app": App.from_model(client), "client_secret": secret}

        return await mutate(CreateAppPayload, work)

    @strawberry.mutation(description="Delete one of your apps: every token it holds stops "
                                     "working.")
    async def delete_app(self, info: Info, input: AppInput) -> DeleteAppPayload:
        async def work() -> dict[str, object]:
            client = await apps.delete_app(info.context.principal, input.client_id)
            return {"app": App.from_model(client)}

        return await mutate(DeleteAppPayload, work)

    @strawberry.mutation(description="Withdraw your consent to an app: its tokens for you stop "
                                     "working at once, and it must ask again.")
    async def revoke_authorized_app(self, info: Info, input: AppInput
                                    ) -> RevokeAuthorizedAppPayload:
        async def work() -> dict[str, object]:
            consent = await apps.revoke_authorized_app(info.context.principal, input.client_id)
            return {"authorized_app": AuthorizedApp.from_model(consent)}

        return await mutate(RevokeAuthorizedAppPayload, work)
