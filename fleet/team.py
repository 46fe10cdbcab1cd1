"""The team: invitations, roles, leaving, removing and ownership."""

from __future__ import annotations

from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import accounts
from auth.emails import normalize_email
from auth.principals import AnyPrincipal, UserPrincipal, require_user
from core import clock
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.settings import get_settings
from fleet import access, account_emails, audit, outbox
from fleet.access import Member
from fleet.errors import FleetCode
from fleet.permissions import ASSIGNABLE_ROLES, Permission
from models.accounts import User
from models.organizations import Invitation, InvitationStatus, Membership, Organization, Role

INVITATION_LIFETIME = timedelta(days=7)


def status_of(invitation: Invitation) -> str:
    """Expiry is a matter of time, not a stored state."""
    if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= clock.now():
        return InvitationStatus.EXPIRED
    return invitation.status


def parse_role(value: str, field: str = "role") -> Role:
    try:
        role = Role(value)
    except ValueError:
        role = None
    if role not in ASSIGNABLE_ROLES:
        names = ", ".join(r.value for r in ASSIGNABLE_ROLES)
        raise InvalidInput(
            f"'{value[:40]}' is not a role you can give; choose one of {names}. "
            "Ownership moves only with transferOwnership.",
            field=field,
            code=FleetCode.INVALID_ROLE,
        )
    return role


async def list_members(principal: AnyPrincipal, organization_id: int) -> QuerySet[Membership]:
    await access.organization_member(principal, organization_id, Permission.TEAM_VIEW)
    return Membership.filter(organization_id=organization_id).select_related("user")


async def list_invitations(principal: AnyPrincipal, organization_id: int
                           ) -> QuerySet[Invitation]:
    await access.organization_member(principal, organization_id, Permission.TEAM_MANAGE)
    return Invitation.filter(organization_id=organization_id).select_related(
        "invited_by", "organization"
    )


def pending_invitations(principal: AnyPrincipal) -> QuerySet[Invitation]:
    """Invitations waiting for the signed-in user's answer."""
    actor = require_user(principal)
    return Invitation.filter(
        email=actor.user.email, status=InvitationStatus.PENDING, expires_at__gt=clock.now()
    ).select_related("invited_by", "organization")


async def invite_team_member(
    principal: AnyPrincipal, organization_id: int, email: str, role: str
) -> Invitation:
    """Invite an email address, whoever uses it: the answer and the email sent are the same
    whether or not an account uses the address, or is on another team (outsiders learn
    nothing about addresses). Inviting a pending email again re-sends the same invitation
    (with the role asked for now) and restarts its 7 days; so does a concurrent invitation
    of the same address, which the pending-invitation unique index turns into a re-send."""
    member = await access.organization_member(principal, organization_id,
                                              Permission.TEAM_MANAGE)
    address = normalize_email(email)
    wanted_role = parse_role(role)
    if await Membership.exists(organization_id=organization_id, user__email=address):
        raise Conflict(f"{address} is already on this team.", field="email",
                       code=FleetCode.ALREADY_MEMBER)
    try:
        invitation = await _invite(member, organization_id, address, wanted_role)
    except IntegrityError:
        # A concurrent invitation of this address committed first: re-send that one.
        invitation = await _invite(member, organization_id, address, wanted_role)
    outbox.notify()
    await invitation.fetch_related("invited_by", "organization")
    return invitation


async def pending_invitation(organization_id: int, address: str) -> Invitation | None:
    """The address's pending invitation to the team, expired or not."""
    return await Invitation.get_or_none(organization_id=organization_id, email=address,
                                        status=InvitationStatus.PENDING)


async def _invite(member: Member, organization_id: int, address: str, role: Role
                  ) -> Invitation:
    now = clock.now()
    invitation = await pending_invitation(organization_id, address)
    async with in_transaction():
        renewed = invitation is not None and invitation.expires_at > now and bool(
            await Invitation.filter(id=invitation.id, status=InvitationStatus.PENDING).update(
                role=role, invited_by_id=member.principal.user.id, last_sent_at=now,
                expires_at=now + INVITATION_LIFETIME,
            )
        )
        if invitation is not None and renewed:
            await invitation.refresh_from_db()
        else:
            # An expired invitation makes way for the new one (the unique index allows one
            # pending invitation per address and team), and shows as expired.
            await Invitation.filter(
                organization_id=organization_id, email=address,
                status=InvitationStatus.PENDING, expires_at__lte=now,
            ).update(status=InvitationStatus.EXPIRED)
            invitation = await Invitation.create(
                organization_id=organization_id, email=address, role=role,
                invited_by=member.principal.user, created_at=now, last_sent_at=now,
                expires_at=now + INVITATION_LIFETIME,
            )
        organization = await Organization.get(id=organization_id)
        invitee = await User.get_or_none(email=address)
        await outbox.enqueue_email(**_invitation_email(invitation, organization, member,
                                                       has_account=invitee is not None))
        await audit.record(member.principal, organization_id,
                           "team.invite.resend" if renewed else "team.invite", invitation,
                           label=address, details={"role": role.value})
    return invitation


def _invitation_email(invitation: Invitation, organization: Organization, inviter: Member,
                      *, has_account: bool) -> dict[str, str]:
    settings = get_settings()
    role = Role(invitation.role).value.lower()
    account_page = account_emails.page_url(account_emails.ACCOUNT_PATH)
    if has_account:
        how = (f"Sign in with {invitation.email} ({account_page} shows how) and accept or "
               "decline it; joining a team needs your email verified.")
    else:
        how = (f"No {settings.platform_name} account uses {invitation.email} yet: sign up "
               f"with this address, verify it with the link we email you, then accept the "
               f"invitation ({account_page} shows how).")
    return {
        "to": invitation.email,
        "subject": f"{inviter.principal.user.email} invited you to {organization.name} "
                   f"on {settings.platform_name}",
        "body": (
            f"Hello,\n\n{inviter.principal.user.email} invited you to join the team of "
            f"{organization.name} on {settings.platform_name} as {role}.\n\n"
            f"{how} The invitation expires on "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
        ),
    }


async def _own_invitation(principal: AnyPrincipal, invitation_id: int
                          ) -> tuple[UserPrincipal, Invitation]:
    actor, invitation = await access.own_invitation(principal, invitation_id)
    state = status_of(invitation)
    if state == InvitationStatus.EXPIRED:
        raise Conflict("This invitation has expired; ask for a new one.",
                       field="invitationId", code=FleetCode.INVITATION_EXPIRED)
    if state != InvitationStatus.PENDING:
        raise Conflict(f"This invitation was already {state.lower()}.",
                       field="invitationId", code=FleetCode.INVITATION_CLOSED)
    return actor, invitation


async def accept_invitation(principal: AnyPrincipal, invitation_id: int) -> Membership:
    actor, invitation = await _own_invitation(principal, invitation_id)
    # Invitations go to addresses: only a proven one may take up what was sent to it.
    accounts.require_verified(actor.user, field="invitationId")
    if await Membership.exists(user_id=actor.user.id):
        raise Conflict("Leave your current organization before joining another.",
                       field="invitationId", code=FleetCode.IN_ANOTHER_ORGANIZATION)
    now = clock.now()
    try:
        async with in_transaction():
            closed = await Invitation.filter(
                id=invitation.id, status=InvitationStatus.PENDING
            ).update(status=InvitationStatus.ACCEPTED, responded_at=now)
            if not closed:
                raise Conflict("This invitation was already answered.",
                               field="invitationId", code=FleetCode.INVITATION_CLOSED)
            membership = await Membership.create(
                organization_id=invitation.organization_id, user=actor.user,
                role=invitation.role, joined_at=now,
            )
            await audit.record(actor, invitation.organization_id, "team.join", membership,
                               label=actor.user.email, details={"role": invitation.role})
    except IntegrityError:
        raise Conflict("Leave your current organization before joining another.",
                       field="invitationId", code=FleetCode.IN_ANOTHER_ORGANIZATION) from None
    await membership.fetch_related("user")
    return membership


async def decline_invitation(principal: AnyPrincipal, invitation_id: int) -> Invitation:
    actor, invitation = await _own_invitation(principal, invitation_id)
    return await _close(actor, invitation, InvitationStatus.DECLINED, "team.invite.decline")


async def revoke_invitation(principal: AnyPrincipal, invitation_id: int) -> Invitation:
    member, invitation = await access.managed_invitation(principal, invitation_id)
    if status_of(invitation) != InvitationStatus.PENDING:
        raise Conflict("Only a pending invitation can be revoked.", field="invitationId",
                       code=FleetCode.INVITATION_CLOSED)
    return await _close(member.principal, invitation, InvitationStatus.REVOKED,
                        "team.invite.revoke")


async def _close(actor: UserPrincipal, invitation: Invitation, status: str, action: str
                 ) -> Invitation:
    async with in_transaction():
        closed = await Invitation.filter(
            id=invitation.id, status=InvitationStatus.PENDING
        ).update(status=status, responded_at=clock.now())
        if not closed:
            raise Conflict("This invitation was already answered.", field="invitationId",
                           code=FleetCode.INVITATION_CLOSED)
        await audit.record(actor, invitation.organization_id, action, invitation,
                           label=invitation.email)
    await invitation.refresh_from_db()
    await invitation.fetch_related("invited_by", "organization")
    return invitation


async def change_team_member_role(principal: AnyPrincipal, membership_id: int, role: str
                                  ) -> Membership:
    member, target = await access.teammate(principal, membership_id)
    member.require(Permission.TEAM_MANAGE)
    new_role = parse_role(role)
    if target.role == Role.OWNER:
        raise _owner_protected("The owner's role cannot be changed; transfer ownership first.")
    async with in_transaction():
        previous = target.role
        # Conditional: a transfer may have made the target owner since it was read.
        if not await Membership.filter(id=target.id).exclude(role=Role.OWNER).update(
            role=new_role
        ):
            raise _owner_protected("The owner's role cannot be changed; transfer ownership first.")
        target.role = new_role
        await audit.record(member.principal, target.organization_id, "team.role.change",
                           target, label=target.user.email,
                           details={"role": [previous, new_role.value]})
    return target


async def remove_team_member(principal: AnyPrincipal, membership_id: int) -> Membership:
    member, target = await access.teammate(principal, membership_id)
    member.require(Permission.TEAM_MANAGE)
    if target.role == Role.OWNER:
        raise _owner_protected("The owner cannot be removed.")
    async with in_transaction():
        await audit.record(member.principal, target.organization_id, "team.remove", target,
                           label=target.user.email, details={"role": target.role})
        # Conditional: a transfer may have made the target owner since it was read.
        if not await Membership.filter(id=target.id).exclude(role=Role.OWNER).delete():
            raise _owner_protected("The owner cannot be removed.")
    return target


def _owner_protected(message: str) -> PermissionDenied:
    return PermissionDenied(message, field="memberId", code=FleetCode.OWNER_PROTECTED)


async def leave_organization(principal: AnyPrincipal, organization_id: int) -> Membership:
    member = await access.as_member(principal, organization_id)
    actor, membership = member.principal, member.membership
    if membership.role == Role.OWNER:
        raise PermissionDenied(
            "The owner cannot leave; transfer ownership to another member first.",
            code=FleetCode.OWNER_PROTECTED,
        )
    async with in_transaction():
        await audit.record(actor, membership.organization_id, "team.leave", membership,
                           label=actor.user.email, details={"role": membership.role})
        await membership.delete()
    return membership


async def transfer_ownership(principal: AnyPrincipal, membership_id: int) -> Membership:
    """Make another member the owner; the previous owner becomes an administrator."""
    member, target = await access.teammate(principal, membership_id)
    member.require(Permission.OWNERSHIP_TRANSFER)
    if target.id == member.membership.id:
        raise InvalidInput("You already own this organization.", field="memberId",
                           code=FleetCode.ALREADY_OWNER)
    async with in_transaction():
        # Both conditional, so concurrent transfers cannot leave two owners (or none): the
        # caller must still be the owner, and the target still a member, when this commits.
        if not await Membership.filter(id=member.membership.id, role=Role.OWNER).update(
            role=Role.ADMINISTRATOR
        ):
            raise Conflict("You no longer own this organization.", field="memberId",
                           code=FleetCode.NOT_OWNER)
        if not await Membership.filter(
            id=target.id, organization_id=target.organization_id
        ).update(role=Role.OWNER):
            raise NotFound("No such team member.", field="memberId")
        target.role = Role.OWNER
        await audit.record(member.principal, target.organization_id, "team.ownership.transfer",
                           target, label=target.user.email,
                           details={"from": member.principal.user.email})
    return target
