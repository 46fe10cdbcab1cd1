"""Account types: the viewer, their sessions, their apps and the apps they authorized."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate
from auth import accounts, apps
from auth.principals import UserPrincipal
from core.errors import PermissionDenied
from fleet import access, organizations, team
from models.accounts import User as UserModel
from models.oauth import Consent, TokenFamily
from models.oauth import OAuthClient as OAuthClientModel

if TYPE_CHECKING:
    from api.graphql.organizations.types import Invitation, Organization

_ORGANIZATIONS = "api.graphql.organizations.types"
_Organization: strawberry.LazyType[Any, Any] = strawberry.LazyType("Organization", _ORGANIZATIONS)
_Invitation: strawberry.LazyType[Any, Any] = strawberry.LazyType("Invitation", _ORGANIZATIONS)


@strawberry.type(description="A sign-in of the viewer: the tokens one client holds for them.")
class Session(relay.Node):
    id: relay.NodeID[int]
    client_name: str
    client_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str
    ip_address: str
    current: bool = strawberry.field(description="Whether this request uses this session.")

    @classmethod
    def from_model(cls, family: TokenFamily, current_family_id: int | None) -> Session:
        return cls(
            id=family.id,
            client_name=family.client.name,
            client_id=family.client.client_id,
            created_at=family.created_at,
            last_used_at=family.last_used_at,
            expires_at=family.expires_at,
            user_agent=family.user_agent,
            ip_address=family.ip_address,
            current=family.id == current_family_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Session | None]:
        principal = info.context.principal
        current = principal.family_id if isinstance(principal, UserPrincipal) else None
        return await visible_nodes(info, node_ids, access.visible_sessions,
                                   lambda f: cls.from_model(f, current))


@strawberry.type(description="A third-party app you registered: an OAuth client that signs "
                             "users in with their platform account (authorization code flow "
                             "with PKCE) and asks them for scopes.")
class App:
    client_id: str
    name: str
    redirect_uris: list[str] = strawberry.field(
        description="Matched exactly against the redirect_uri of authorization requests; "
                    "http://127.0.0.1 and http://[::1] ones on any port (RFC 8252).")
    scopes: list[str] = strawberry.field(
        description="The scopes it may ask users for: devices:read, events:read, devices:call.")
    public: bool = strawberry.field(
        description="A public app (native, CLI or single-page) has no secret and proves "
                    "itself by PKCE alone; a confidential one sends its secret.")
    created_at: datetime

    @classmethod
    def from_model(cls, client: OAuthClientModel) -> App:
        return cls(client_id=client.client_id, name=client.name,
                   redirect_uris=client.redirect_uris, scopes=client.scope.split(),
                   public=client.public, created_at=client.created_at)


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


def _require_viewer(user: object, info: Info) -> None:
    viewer = info.context.user
    if viewer is None or viewer.id != getattr(user, "id", None):
        raise PermissionDenied("Only the account holder sees this.")


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


@strawberry.type(description="A platform account.")
class User(relay.Node, ViewerApps):
    id: relay.NodeID[int]
    email: str
    email_verified: bool = strawberry.field(
        description="Whether the account opened the link emailed to verify its address. "
                    "Until then it can sign in, but not join or create a team or link a "
                    "customer (EMAIL_NOT_VERIFIED); resendVerificationEmail sends a new link.")
    created_at: datetime

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(id=user.id, email=user.email, created_at=user.created_at,
                   email_verified=user.email_verified_at is not None)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        viewer = info.context.user
        return [
            cls.from_model(viewer) if viewer is not None and i == str(viewer.id) else None
            for i in node_ids
        ]

    @strawberry.field(description="The viewer's live sessions, newest first. Only on `me`.")
    async def sessions(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> relay.Connection[Session]:
        principal = self._require_account_holder(info)
        return await paginate(
            accounts.live_sessions(principal),
            order=("-id",),
            first=first,
            after=after,
            to_node=lambda f: Session.from_model(f, principal.family_id),
        )

    @strawberry.field(description="The viewer's organization, if they belong to one.")
    async def organization(self, info: Info) -> Annotated[
        Organization, strawberry.lazy(_ORGANIZATIONS)
    ] | None:
        self._require_account_holder(info)
        membership = await organizations.viewer_membership(info.context.principal)
        if membership is None:
            return None
        organization: Organization = _Organization.resolve_type().from_model(
            membership.organization)
        return organization

    @strawberry.field(description="Invitations waiting for the viewer's answer, newest first.")
    async def invitations(self, info: Info) -> list[Annotated[
        Invitation, strawberry.lazy(_ORGANIZATIONS)
    ]]:
        self._require_account_holder(info)
        pending = await team.pending_invitations(info.context.principal).order_by("-id")
        to_node = _Invitation.resolve_type().from_model
        return [to_node(i) for i in pending]

    def _require_account_holder(self, info: Info) -> UserPrincipal:
        """The viewer's principal, if they look at themself and not through a third-party
        app."""
        _require_viewer(self, info)
        return info.context.require_user()
