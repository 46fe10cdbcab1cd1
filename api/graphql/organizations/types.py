"""Organization types: the organization, its members, invitations and audit entries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.graphql.billing.types import Notification, organization_notifications
from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate
from api.graphql.usage import resolvers as usage
from fleet import access, organizations, products, team
from models.organizations import AuditEntry as AuditEntryModel
from models.organizations import Invitation as InvitationModel
from models.organizations import InvitationStatus, Membership, Role
from models.organizations import Organization as OrganizationModel

if TYPE_CHECKING:
    from api.graphql.products.types import Product
    from api.graphql.usage.types import OrganizationUsage

_PRODUCTS = "api.graphql.products.types"
_USAGE = "api.graphql.usage.types"
_Product: strawberry.LazyType[Any, Any] = strawberry.LazyType("Product", _PRODUCTS)

strawberry.enum(Role, description="Team roles, from most to least powerful.")
strawberry.enum(InvitationStatus)


@strawberry.type(description="A member of an organization's team (a billed seat).")
class Member(relay.Node):
    id: relay.NodeID[int]
    email: str
    role: Role
    joined_at: datetime

    @classmethod
    def from_model(cls, membership: Membership) -> Member:
        return cls(id=membership.id, email=membership.user.email, role=Role(membership.role),
                   joined_at=membership.joined_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Member | None]:
        return await visible_nodes(info, node_ids, access.visible_members, cls.from_model)


@strawberry.type(description="An invitation to join a team.")
class Invitation(relay.Node):
    id: relay.NodeID[int]
    email: str
    role: Role
    status: InvitationStatus
    invited_by: str = strawberry.field(description="The email of whoever sent it last.")
    organization_name: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def from_model(cls, invitation: InvitationModel) -> Invitation:
        return cls(id=invitation.id, email=invitation.email, role=Role(invitation.role),
                   status=InvitationStatus(team.status_of(invitation)),
                   invited_by=invitation.invited_by.email,
                   organization_name=invitation.organization.name,
                   created_at=invitation.created_at, expires_at=invitation.expires_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Invitation | None]:
        return await visible_nodes(info, node_ids, access.visible_invitations, cls.from_model)


@strawberry.type(description="One change inside an organization: who, what, when, from where.")
class AuditEntry(relay.Node):
    id: relay.NodeID[int]
    actor_email: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    details: JSON
    ip_address: str
    created_at: datetime

    @classmethod
    def from_model(cls, entry: AuditEntryModel) -> AuditEntry:
        return cls(id=entry.id, actor_email=entry.actor_label, action=entry.action,
                   target_type=entry.target_type, target_id=entry.target_id,
                   target_label=entry.target_label, details=JSON(entry.details),
                   ip_address=entry.ip_address, created_at=entry.created_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AuditEntry | None]:
        return await visible_nodes(info, node_ids, access.visible_audit_entries, cls.from_model)


@strawberry.type(description="A product creator's company.")
class Organization(relay.Node):
    id: relay.NodeID[int]
    name: str
    slug: str
    created_at: datetime

    @classmethod
    def from_model(cls, organization: OrganizationModel) -> Organization:
        return cls(id=organization.id, name=organization.name, slug=organization.slug,
                   created_at=organization.created_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Organization | None]:
        return await visible_nodes(info, node_ids, access.visible_organizations, cls.from_model)

    @strawberry.field(description="Team members: each one is a billed seat.")
    async def seats(self, info: Info) -> int:
        return await organizations.seats(info.context.principal, self.id)

    @strawberry.field(description="The viewer's role in this organization.")
    async def viewer_role(self, info: Info) -> Role:
        member = await access.as_member(info.context.principal, self.id)
        return member.role

    @strawberry.field(description="The team, in the order they joined.")
    async def members(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                      after: str | None = None) -> relay.Connection[Member]:
        return await paginate(await team.list_members(info.context.principal, self.id),
                              order=("id",), first=first, after=after, to_node=Member.from_model)

    @strawberry.field(description="Invitations sent, newest first (administrators).")
    async def invitations(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                          after: str | None = None) -> relay.Connection[Invitation]:
        return await paginate(await team.list_invitations(info.context.principal, self.id),
                              order=("-id",), first=first, after=after,
                              to_node=Invitation.from_model)

    @strawberry.field(description="The organization's products.")
    async def products(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                       after: str | None = None
                       ) -> relay.Connection[Annotated[Product, strawberry.lazy(_PRODUCTS)]]:
        return await paginate(await products.list_products(info.context.principal, self.id),
                              order=("id",), first=first, after=after,
                              to_node=_Product.resolve_type().from_model)

    @strawberry.field(description="Every change, newest first (administrators).")
    async def audit_log(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                        after: str | None = None) -> relay.Connection[AuditEntry]:
        return await paginate(await organizations.audit_log(info.context.principal, self.id),
                              order=("-id",), first=first, after=after,
                              to_node=AuditEntry.from_model)

    @strawberry.field(description="What the owner and administrators are told about usage, "
                                  "newest first: all, only those you have not read "
                                  "(unread: true) or only those you have (false).")
    async def notifications(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None,
        unread: bool | None = None,
    ) -> relay.Connection[Notification] | None:
        return await organization_notifications(info, self.id, first, after, unread)

    @strawberry.field(description="What the organization used in a period (YYYY-MM; the "
                                  "current one by default), against its plan's limits "
                                  "(owner and administrators).")
    async def usage(self, info: Info, period: str | None = None
                    ) -> Annotated[OrganizationUsage, strawberry.lazy(_USAGE)] | None:
        return await usage.organization_usage(info.context.principal, self.id,
                                              self.created_at, period)
