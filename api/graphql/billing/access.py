"""Who may reach billing: the owner and administrators (`Permission.BILLING_VIEW`). Seeing it
(notifications) is `NotFound` to everyone else, team members with other roles included, as if
there were nothing to see; changing it (`addBlock`) is the usual refusal of a mutation
(`NotFound` to outsiders, `PermissionDenied` to other roles)."""

from __future__ import annotations

from auth.principals import AnyPrincipal
from core.errors import NotFound, PermissionDenied
from fleet import access
from fleet.access import Member
from fleet.permissions import Permission, has_permission


async def billing_viewer(principal: AnyPrincipal, organization_id: int, hidden: NotFound
                         ) -> Member:
    """The caller, if they may see the organization's billing; `hidden` otherwise."""
    try:
        member = await access.as_member(principal, organization_id, hidden=hidden)
    except PermissionDenied:  # a third-party app's token: never billing
        raise hidden from None
    if not has_permission(member.role, Permission.BILLING_VIEW):
        raise hidden
    return member


async def billing_manager(principal: AnyPrincipal, organization_id: int) -> Member:
    """The caller, if they may change the organization's plan."""
    return await access.organization_member(principal, organization_id,
                                            Permission.BILLING_VIEW)
