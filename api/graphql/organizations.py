"""GraphQL for organizations, their team, invitations and audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.pagination import DEFAULT_PAGE_SIZE, paginate
from api.graphql.products import Product
from core.errors import NotFound, PermissionDenied
from core.text import parse_key
from fleet import organizations, products, team
from models.organizations import AuditEntry as AuditEntryModel
from models.organizations import Invitation as InvitationModel
from models.organizations import Membership
from models.organizations import Organization as OrganizationModel

N = TypeVar("N")


@strawberry.enum(description="Team roles, from most to least powerful.")
class Role(Enum):
    OWNER = "OWNER"
    ADMINISTRATOR = "ADMINISTRATOR"
    DEVELOPER = "DEVELOPER"
    SUPPORT = "SUPPORT"
    VIEWER = "VIEWER"


@strawberry.enum
class InvitationStatus(Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


async def _visible(resolve: Callable[[], Awaitable[N]]) -> N | None:
    """Node lookups answer null, not an error, for what the caller may not see."""
    try:
        return await resolve()
    except (NotFound, PermissionDenied):
        return None


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Member | None]:
        async def one(key: int) -> Member:
            membership = await Membership.get_or_none(id=key).select_related("user")
            if membership is None:
                raise NotFound("No such member.")
            await team.list_members(info.context.principal, membership.organization_id)
            return cls.from_model(membership)

        keys = [parse_key(n) for n in node_ids]
        return [await _visible(lambda k=k: one(k)) if k is not None else None for k in keys]


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Invitation | None]:
        wanted = [k for k in map(parse_key, node_ids) if k is not None]
        principal = info.context.principal
        found: dict[str, Invitation] = {}
        holder = info.context.account_holder
        if holder is not None:
            for invitation in await InvitationModel.filter(id__in=wanted):
                visible = await _visible(lambda i=invitation: team.list_invitations(
                    principal, i.organization_id))
                mine = invitation.email == holder.email
                if visible is not None or mine:
                    await invitation.fetch_related("invited_by", "organization")
                    found[str(invitation.id)] = cls.from_model(invitation)
        return [found.get(n) for n in node_ids]


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
                   target_label=entry.target_label, details=entry.details,
                   ip_address=entry.ip_address, created_at=entry.created_at)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[AuditEntry | None]:
        wanted = [k for k in map(parse_key, node_ids) if k is not None]
        found: dict[str, AuditEntry] = {}
        for entry in await AuditEntryModel.filter(id__in=wanted):
            if await _visible(lambda e=entry: organizations.audit_log(
                    info.context.principal, e.organization_id)):
                found[str(entry.id)] = cls.from_model(entry)
        return [found.get(n) for n in node_ids]


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Organization | None]:
        principal = info.context.principal
        keys = [parse_key(n) for n in node_ids]
        return [
            await _visible(lambda k=k: _organization(principal, k)) if k is not None else None
            for k in keys
        ]

    @strawberry.field(description="Team members: each one is a billed seat.")
    async def seats(self, info: Info) -> int:
        await organizations.get_organization(info.context.principal, self.id)
        return await organizations.seats(self.id)

    @strawberry.field(description="The viewer's role in this organization.")
    async def viewer_role(self, info: Info) -> Role:
        member = await organizations.as_member(info.context.principal, self.id)
        return Role(member.role.value)

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
                       after: str | None = None) -> relay.Connection[Product]:
        return await paginate(await products.list_products(info.context.principal, self.id),
                              order=("id",), first=first, after=after,
                              to_node=Product.from_model)

    @strawberry.field(description="Every change, newest first (administrators).")
    async def audit_log(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                        after: str | None = None) -> relay.Connection[AuditEntry]:
        return await paginate(await organizations.audit_log(info.context.principal, self.id),
                              order=("-id",), first=first, after=after,
                              to_node=AuditEntry.from_model)


async def _organization(principal: Any, organization_id: int) -> Organization:
    return Organization.from_model(
        await organizations.get_organization(principal, organization_id))


@strawberry.input
class CreateOrganizationInput:
    name: str
    slug: str | None = strawberry.field(
        default=None, description="Derived from the name when absent.")


@strawberry.input
class UpdateOrganizationInput:
    organization_id: relay.GlobalID
    name: str


@strawberry.type
class OrganizationPayload:
    organization: Organization | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class InviteTeamMemberInput:
    organization_id: relay.GlobalID
    email: str
    role: str = strawberry.field(description="ADMINISTRATOR, DEVELOPER, SUPPORT or VIEWER.")


@strawberry.input
class InvitationInput:
    invitation_id: relay.GlobalID


@strawberry.type
class InvitationPayload:
    invitation: Invitation | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ChangeTeamMemberRoleInput:
    member_id: relay.GlobalID
    role: str = strawberry.field(description="ADMINISTRATOR, DEVELOPER, SUPPORT or VIEWER.")


@strawberry.input
class MemberInput:
    member_id: relay.GlobalID


@strawberry.type
class MemberPayload:
    member: Member | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class LeaveOrganizationInput:
    organization_id: relay.GlobalID


@strawberry.type
class LeaveOrganizationPayload:
    left: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class OrganizationQueries:
    @strawberry.field(description="An organization you belong to, by slug.")
    async def organization(self, info: Info, slug: str) -> Organization | None:
        return await _visible(lambda: _org_by_slug(info, slug))


async def _org_by_slug(info: Info, slug: str) -> Organization:
    return Organization.from_model(
        await organizations.organization_by_slug(info.context.principal, slug))


def _member_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Member", "memberId")


def _invitation_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Invitation", "invitationId")


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(description="Create an organization; you become its owner.")
    async def create_organization(self, info: Info, input: CreateOrganizationInput
                                  ) -> OrganizationPayload:
        async def work() -> dict[str, object]:
            organization = await organizations.create_organization(
                info.context.principal, input.name, input.slug)
            return {"organization": Organization.from_model(organization)}

        return await mutate(OrganizationPayload, work)

    @strawberry.mutation(description="Rename an organization (administrators).")
    async def update_organization(self, info: Info, input: UpdateOrganizationInput
                                  ) -> OrganizationPayload:
        async def work() -> dict[str, object]:
            organization = await organizations.update_organization(
                info.context.principal,
                decode_id(input.organization_id, "Organization", "organizationId"), input.name)
            return {"organization": Organization.from_model(organization)}

        return await mutate(OrganizationPayload, work)

    @strawberry.mutation(description="Invite an existing account to the team by email.")
    async def invite_team_member(self, info: Info, input: InviteTeamMemberInput
                                 ) -> InvitationPayload:
        async def work() -> dict[str, object]:
            invitation = await team.invite_team_member(
                info.context.principal,
                decode_id(input.organization_id, "Organization", "organizationId"),
                input.email, input.role)
            return {"invitation": Invitation.from_model(invitation)}

        return await mutate(InvitationPayload, work)

    @strawberry.mutation(description="Accept an invitation addressed to you.")
    async def accept_invitation(self, info: Info, input: InvitationInput) -> MemberPayload:
        async def work() -> dict[str, object]:
            membership = await team.accept_invitation(info.context.principal,
                                                      _invitation_id(input.invitation_id))
            return {"member": Member.from_model(membership)}

        return await mutate(MemberPayload, work)

    @strawberry.mutation(description="Decline an invitation addressed to you.")
    async def decline_invitation(self, info: Info, input: InvitationInput) -> InvitationPayload:
        return await _invitation_change(info, input, team.decline_invitation)

    @strawberry.mutation(description="Withdraw a pending invitation (administrators).")
    async def revoke_invitation(self, info: Info, input: InvitationInput) -> InvitationPayload:
        return await _invitation_change(info, input, team.revoke_invitation)

    @strawberry.mutation(description="Give a team member another role (administrators).")
    async def change_team_member_role(self, info: Info, input: ChangeTeamMemberRoleInput
                                      ) -> MemberPayload:
        async def work() -> dict[str, object]:
            membership = await team.change_team_member_role(
                info.context.principal, _member_id(input.member_id), input.role)
            return {"member": Member.from_model(membership)}

        return await mutate(MemberPayload, work)

    @strawberry.mutation(description="Remove a member from the team (administrators).")
    async def remove_team_member(self, info: Info, input: MemberInput) -> MemberPayload:
        return await _member_change(info, input, team.remove_team_member)

    @strawberry.mutation(description="Make another member the owner; you become administrator.")
    async def transfer_ownership(self, info: Info, input: MemberInput) -> MemberPayload:
        return await _member_change(info, input, team.transfer_ownership)

    @strawberry.mutation(description="Leave your organization (not as its owner).")
    async def leave_organization(self, info: Info, input: LeaveOrganizationInput
                                 ) -> LeaveOrganizationPayload:
        async def work() -> dict[str, object]:
            await team.leave_organization(
                info.context.principal,
                decode_id(input.organization_id, "Organization", "organizationId"))
            return {"left": True}

        return await mutate(LeaveOrganizationPayload, work)


async def _invitation_change(
    info: Info, input: InvitationInput,
    change: Callable[[Any, int], Awaitable[InvitationModel]],
) -> InvitationPayload:
    async def work() -> dict[str, object]:
        invitation = await change(info.context.principal, _invitation_id(input.invitation_id))
        return {"invitation": Invitation.from_model(invitation)}

    return await mutate(InvitationPayload, work)


async def _member_change(
    info: Info, input: MemberInput, change: Callable[[Any, int], Awaitable[Membership]],
) -> MemberPayload:
    async def work() -> dict[str, object]:
        membership = await change(info.context.principal, _member_id(input.member_id))
        return {"member": Member.from_model(membership)}

    return await mutate(MemberPayload, work)
