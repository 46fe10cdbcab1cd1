"""Organizations: creating one, seeing one, renaming one."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import accounts
from auth.principals import AnyPrincipal, UserPrincipal, require_user
from core import clock
from core.errors import Conflict, CoreCode, NotFound
from core.text import clean_name, clean_slug, slugify
from fleet import access, audit
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models.organizations import AuditEntry, Membership, Organization, Role

_SLUG_ATTEMPTS = 20


async def viewer_membership(principal: AnyPrincipal) -> Membership | None:
    if not isinstance(principal, UserPrincipal):
        return None
    return await Membership.get_or_none(user_id=principal.user.id).select_related("organization")


async def get_organization(principal: AnyPrincipal, organization_id: int) -> Organization:
    await access.organization_member(principal, organization_id, Permission.ORGANIZATION_VIEW)
    return await Organization.get(id=organization_id)


async def organization_by_slug(principal: AnyPrincipal, slug: str) -> Organization:
    organization = await Organization.get_or_none(slug=access.looked_up_slug(slug, "slug"))
    if organization is None:
        raise NotFound("No such organization.", field="slug")
    return await get_organization(principal, organization.id)


async def audit_log(principal: AnyPrincipal, organization_id: int) -> QuerySet[AuditEntry]:
    """The organization's audit entries (administrators)."""
    await access.organization_member(principal, organization_id, Permission.AUDIT_VIEW)
    return AuditEntry.filter(organization_id=organization_id)


async def seats(principal: AnyPrincipal, organization_id: int) -> int:
    """Members are billed seats (every team role sees how many)."""
    await access.organization_member(principal, organization_id, Permission.ORGANIZATION_VIEW)
    return await Membership.filter(organization_id=organization_id).count()


async def create_organization(
    principal: AnyPrincipal, name: str, slug: str | None = None
) -> Organization:
    """Create an organization; its creator becomes the owner."""
    actor = require_user(principal)
    accounts.require_verified(actor.user)  # every team member's email is proven
    name = clean_name(name)
    explicit = slug is not None
    base = clean_slug(slug) if slug is not None else slugify(name)
    if await Membership.exists(user_id=actor.user.id):
        raise _already_in_organization()
    for attempt in range(1 if explicit else _SLUG_ATTEMPTS):
        candidate = base if attempt == 0 else f"{base[:58].rstrip('-')}-{attempt + 1}"
        try:
            async with in_transaction():
                now = clock.now()
                organization = await Organization.create(name=name, slug=candidate,
                                                          created_at=now)
                await Membership.create(
                    organization=organization, user=actor.user, role=Role.OWNER, joined_at=now
                )
                await audit.record(actor, organization.id, "organization.create", organization,
                                   label=name, details={"slug": candidate})
        except IntegrityError:
            if await Membership.exists(user_id=actor.user.id):
                raise _already_in_organization() from None
            continue
        return organization
    raise Conflict(f"The slug '{base}' is taken; choose another.", field="slug",
                   code=CoreCode.SLUG_TAKEN)


def _already_in_organization() -> Conflict:
    return Conflict(
        "You already belong to an organization; a user belongs to at most one.",
        code=FleetCode.ALREADY_IN_ORGANIZATION,
    )


async def update_organization(
    principal: AnyPrincipal, organization_id: int, name: str
) -> Organization:
    member = await access.organization_member(principal, organization_id,
                                              Permission.ORGANIZATION_UPDATE)
    name = clean_name(name)
    async with in_transaction():
        organization = await Organization.get(id=organization_id)
        previous = organization.name
        organization.name = name
        await organization.save(update_fields=["name"])
        await audit.record(member.principal, organization_id, "organization.update",
                           organization, label=name, details={"name": [previous, name]})
    return organization
