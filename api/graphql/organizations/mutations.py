"""Organization mutations: creating and renaming one, the team's invitations, roles, leaving
and ownership."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.organizations.types import Invitation, Member, Organization
from auth.principals import AnyPrincipal
from fleet import organizations, team
from models.organizations import Invitation as InvitationModel
from models.organizations import Membership


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
    # Text, not the Role enum: a role that cannot be given (OWNER, a typo) is answered by a
    # userError that lists the roles one can give.
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


def _organization_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Organization", "organizationId")


def _member_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Member", "memberId")


def _invitation_id(value: relay.GlobalID) -> int:
    return decode_id(value, "Invitation", "invitationId")


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(description="Create an organization; you become its owner.")
    async def create_organization(self, info: Info, input: CreateOrganizationInput
                                  ) -> OrganizationPayload:
        async def work() -> OrganizationPayload:
            organization = await organizations.create_organization(
                info.context.principal, input.name, input.slug)
            return OrganizationPayload(organization=Organization.from_model(organization))

        return await mutate(OrganizationPayload, work)

    @strawberry.mutation(description="Rename an organization (administrators).")
    async def update_organization(self, info: Info, input: UpdateOrganizationInput
                                  ) -> OrganizationPayload:
        async def work() -> OrganizationPayload:
            organization = await organizations.update_organization(
                info.context.principal, _organization_id(input.organization_id), input.name)
            return OrganizationPayload(organization=Organization.from_model(organization))

        return await mutate(OrganizationPayload, work)

    @strawberry.mutation(description="Invite an existing account to the team by email.")
    async def invite_team_member(self, info: Info, input: InviteTeamMemberInput
                                 ) -> InvitationPayload:
        async def work() -> InvitationPayload:
            invitation = await team.invite_team_member(
                info.context.principal, _organization_id(input.organization_id), input.email,
                input.role)
            return InvitationPayload(invitation=Invitation.from_model(invitation))

        return await mutate(InvitationPayload, work)

    @strawberry.mutation(description="Accept an invitation addressed to you.")
    async def accept_invitation(self, info: Info, input: InvitationInput) -> MemberPayload:
        return await _member_change(info, lambda: _invitation_id(input.invitation_id),
                                    team.accept_invitation)

    @strawberry.mutation(description="Decline an invitation addressed to you.")
    async def decline_invitation(self, info: Info, input: InvitationInput) -> InvitationPayload:
        return await _invitation_change(info, lambda: _invitation_id(input.invitation_id),
                                        team.decline_invitation)

    @strawberry.mutation(description="Withdraw a pending invitation (administrators).")
    async def revoke_invitation(self, info: Info, input: InvitationInput) -> InvitationPayload:
        return await _invitation_change(info, lambda: _invitation_id(input.invitation_id),
                                        team.revoke_invitation)

    @strawberry.mutation(description="Give a team member another role (administrators).")
    async def change_team_member_role(self, info: Info, input: ChangeTeamMemberRoleInput
                                      ) -> MemberPayload:
        async def work() -> MemberPayload:
            membership = await team.change_team_member_role(
                info.context.principal, _member_id(input.member_id), input.role)
            return MemberPayload(member=Member.from_model(membership))

        return await mutate(MemberPayload, work)

    @strawberry.mutation(description="Remove a member from the team (administrators).")
    async def remove_team_member(self, info: Info, input: MemberInput) -> MemberPayload:
        return await _member_change(info, lambda: _member_id(input.member_id),
                                    team.remove_team_member)

    @strawberry.mutation(description="Make another member the owner; you become administrator.")
    async def transfer_ownership(self, info: Info, input: MemberInput) -> MemberPayload:
        return await _member_change(info, lambda: _member_id(input.member_id),
                                    team.transfer_ownership)

    @strawberry.mutation(description="Leave your organization (not as its owner).")
    async def leave_organization(self, info: Info, input: LeaveOrganizationInput
                                 ) -> LeaveOrganizationPayload:
        async def work() -> LeaveOrganizationPayload:
            await team.leave_organization(info.context.principal,
                                          _organization_id(input.organization_id))
            return LeaveOrganizationPayload(left=True)

        return await mutate(LeaveOrganizationPayload, work)


# `key` decodes the input's ID inside the mutation's work, so that a bad ID is a userError.


async def _invitation_change(
    info: Info, key: Callable[[], int],
    change: Callable[[AnyPrincipal, int], Awaitable[InvitationModel]],
) -> InvitationPayload:
    async def work() -> InvitationPayload:
        invitation = await change(info.context.principal, key())
        return InvitationPayload(invitation=Invitation.from_model(invitation))

    return await mutate(InvitationPayload, work)


async def _member_change(
    info: Info, key: Callable[[], int],
    change: Callable[[AnyPrincipal, int], Awaitable[Membership]],
) -> MemberPayload:
    async def work() -> MemberPayload:
        membership = await change(info.context.principal, key())
        return MemberPayload(member=Member.from_model(membership))

    return await mutate(MemberPayload, work)
