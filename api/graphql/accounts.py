"""GraphQL for accounts: `me`, sign-up and sessions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from api.graphql.apps import ViewerApps
from api.graphql.context import Info
from api.graphql.errors import UserError
from api.graphql.ids import decode_id
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate
from auth import accounts
from core.errors import DomainError, PermissionDenied
from core.text import parse_key
from fleet import organizations, team
from models.accounts import User as UserModel
from models.oauth import TokenFamily

if TYPE_CHECKING:
    from api.graphql.organizations import Invitation, Organization


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
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Session | None]:
        principal = info.context.principal
        wanted = [key for i in node_ids if (key := parse_key(i)) is not None]
        found = {}
        if info.context.account_holder is not None and wanted:
            rows = await accounts.live_sessions(principal).filter(id__in=wanted)
            found = {str(r.id): cls.from_model(r, principal.family_id) for r in rows}
        return [found.get(i) for i in node_ids]


@strawberry.type(description="A platform account.")
class User(relay.Node, ViewerApps):
    id: relay.NodeID[int]
    email: str
    created_at: datetime

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(id=user.id, email=user.email, created_at=user.created_at)

    @classmethod
    async def resolve_nodes(
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
        principal = info.context.principal
        self._require_viewer(info)
        return await paginate(
            accounts.live_sessions(principal),
            order=("-id",),
            first=first,
            after=after,
            to_node=lambda f: Session.from_model(f, principal.family_id),
        )


    @strawberry.field(description="The viewer's organization, if they belong to one.")
    async def organization(self, info: Info) -> Annotated[
        Organization, strawberry.lazy("api.graphql.organizations")
    ] | None:
        from api.graphql.organizations import Organization

        self._require_viewer(info)
        membership = await organizations.viewer_membership(info.context.principal)
        return Organization.from_model(membership.organization) if membership else None

    @strawberry.field(description="Invitations waiting for the viewer's answer, newest first.")
    async def invitations(self, info: Info) -> list[Annotated[
        Invitation, strawberry.lazy("api.graphql.organizations")
    ]]:
        from api.graphql.organizations import Invitation

        self._require_viewer(info)
        pending = await team.pending_invitations(info.context.principal).order_by("-id")
        return [Invitation.from_model(i) for i in pending]

    def _require_viewer(self, info: Info) -> None:
        if info.context.user is None or info.context.user.id != self.id:
            raise PermissionDenied("Only the account holder sees this.")
        info.context.require_user()  # and not through a third-party app


@strawberry.input
class SignUpInput:
    email: str
    password: str = strawberry.field(description="At least 8 characters.")


@strawberry.type
class SignUpPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeSessionInput:
    session_id: relay.GlobalID


@strawberry.type
class RevokeSessionPayload:
    session: Session | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeAllSessionsInput:
    keep_current: bool = strawberry.field(
        default=False, description="Keep the session making this request signed in."
    )


@strawberry.type
class RevokeAllSessionsPayload:
    revoked_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user; null for anonymous callers and clients.")
    def me(self, info: Info) -> User | None:
        user = info.context.user
        return User.from_model(user) if user is not None else None


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create a platform account, then sign in at /oauth/token.")
    async def sign_up(self, input: SignUpInput) -> SignUpPayload:
        try:
            user = await accounts.sign_up(input.email, input.password)
        except DomainError as error:
            return SignUpPayload(user_errors=[UserError.from_domain(error)])
        return SignUpPayload(user=User.from_model(user))

    @strawberry.mutation(description="Sign out one of the viewer's sessions.")
    async def revoke_session(self, info: Info, input: RevokeSessionInput) -> RevokeSessionPayload:
        try:
            principal = info.context.require_user()
            family_id = decode_id(input.session_id, "Session", "sessionId")
            family = await accounts.revoke_session(principal, family_id)
        except DomainError as error:
            return RevokeSessionPayload(user_errors=[UserError.from_domain(error)])
        return RevokeSessionPayload(session=Session.from_model(family, principal.family_id))

    @strawberry.mutation(description="Sign out every session of the viewer.")
    async def revoke_all_sessions(
        self, info: Info, input: RevokeAllSessionsInput
    ) -> RevokeAllSessionsPayload:
        try:
            principal = info.context.require_user()
            count = await accounts.revoke_all_sessions(principal, keep_current=input.keep_current)
        except DomainError as error:
            return RevokeAllSessionsPayload(user_errors=[UserError.from_domain(error)])
        return RevokeAllSessionsPayload(revoked_count=count)
