"""Organizations: creating one, seeing one, renaming one."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import scopes
from auth.principals import AnyPrincipal, UserPrincipal, is_third_party_app, require_user
from auth.scopes import Scope
from core import clock
from core.errors import Conflict, CoreCode, NotFound, PermissionDenied
from core.text import clean_name, clean_slug, slugify
from fleet import audit
from fleet.errors import FleetCode
from fleet.permissions import Permission, require
from models.organizations import AuditEntry, Membership, Organization, Role

_SLUG_ATTEMPTS = 20


@dataclass(frozen=True)
class Member:
    """A signed-in user acting inside their organization, with their role."""

    principal: UserPrincipal
    membership: Membership

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    @property
    def organization_id(self) -> int:
        return self.membership.organization_id

    def require(self, permission: Permission) -> None:
        require(self.role, permission)


def require_app_scope(principal: AnyPrincipal, scope: Scope | None) -> None:
    """Raise `PermissionDenied` when the principal acts through a third-party app whose token
    does not hold `scope` (None: something no app's token may do). Anyone else passes."""
    if not isinstance(principal, UserPrincipal) or not is_third_party_app(principal):
        return
    granted = scopes.parse(principal.scope) or set()
    if scope is None or scope not in granted:
        raise PermissionDenied("This app's token does not allow this.")


async def as_member(
    principal: AnyPrincipal,
    organization_id: int,
    *,
    hidden: NotFound | None = None,
    app_scope: Scope | None = None,
) -> Member:
    """The caller as a member of the organization. Anyone else (anonymous, clients, customers,
    members of other organizations) gets `NotFound` (`hidden`, when the caller asked about
    something inside the organization), never a hint that it exists.

    A member acting through a third-party app gets `PermissionDenied` unless the app's token
    holds `app_scope`. Only the device-level paths name one (`fleet.devices.device_access`):
    whatever else a member may do (the organization, its team, products and their settings,
    OAuth clients, imports, publishing, managing devices, product-wide lists and logs, leaving
    the team) no third-party app may do for them."""
    if isinstance(principal, UserPrincipal):
        membership = await Membership.get_or_none(
            user_id=principal.user.id, organization_id=organization_id
        )
        if membership is not None:
            require_app_scope(principal, app_scope)
            return Member(principal, membership)
    raise hidden or NotFound("No such organization.", field="organizationId")


async def viewer_membership(principal: AnyPrincipal) -> Membership | None:
    if not isinstance(principal, UserPrincipal):
        return None
    return await Membership.get_or_none(user_id=principal.user.id).select_related("organization")


async def get_organization(principal: AnyPrincipal, organization_id: int) -> Organization:
    member = await as_member(principal, organization_id)
    member.require(Permission.ORGANIZATION_VIEW)
    return await Organization.get(id=organization_id)


async def organization_by_slug(principal: AnyPrincipal, slug: str) -> Organization:
    organization = await Organization.get_or_none(slug=slug)
    if organization is None:
        raise NotFound("No such organization.", field="slug")
    return await get_organization(principal, organization.id)


async def audit_log(principal: AnyPrincipal, organization_id: int) -> QuerySet[AuditEntry]:
    """The organization's audit entries (administrators)."""
    member = await as_member(principal, organization_id)
    member.require(Permission.AUDIT_VIEW)
    return AuditEntry.filter(organization_id=organization_id)


async def seats(organization_id: int) -> int:
    """Members are billed seats."""
    return await Membership.filter(organization_id=organization_id).count()


async def create_organization(
    principal: AnyPrincipal, name: str, slug: str | None = None
) -> Organization:
    """Create an organization; its creator becomes the owner."""
    actor = require_user(principal)
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
    member = await as_member(principal, organization_id)
    member.require(Permission.ORGANIZATION_UPDATE)
    name = clean_name(name)
    async with in_transaction():
        organization = await Organization.get(id=organization_id)
        previous = organization.name
        organization.name = name
        await organization.save(update_fields=["name"])
        await audit.record(member.principal, organization_id, "organization.update",
                           organization, label=name, details={"name": [previous, name]})
    return organization
