"""Roles and what each may do: the whole permission table, in one place."""

from __future__ import annotations

from enum import StrEnum

from core.errors import PermissionDenied
from models.organizations import Role


class Permission(StrEnum):
    ORGANIZATION_VIEW = "organization:view"
    ORGANIZATION_UPDATE = "organization:update"
    TEAM_VIEW = "team:view"
    TEAM_MANAGE = "team:manage"  # invite, revoke invitations, change roles, remove members
    OWNERSHIP_TRANSFER = "ownership:transfer"
    AUDIT_VIEW = "audit:view"
    BILLING_VIEW = "billing:view"
    PRODUCT_VIEW = "product:view"
    PRODUCT_CREATE = "product:create"
    PRODUCT_UPDATE = "product:update"  # product settings: administrators (SPEC)
    OAUTH_CLIENT_VIEW = "oauth_client:view"
    OAUTH_CLIENT_MANAGE = "oauth_client:manage"
    DEVICE_VIEW = "device:view"
    DEVICE_MANAGE = "device:manage"  # import, approve or deny, rename, remove from a product
    DEVICE_CALL = "device:call"  # call functions, read variables
    EVENT_PUBLISH = "event:publish"  # publish events into a product's log


_VIEW = {
    Permission.ORGANIZATION_VIEW,
    Permission.TEAM_VIEW,
    Permission.PRODUCT_VIEW,
    Permission.OAUTH_CLIENT_VIEW,
    Permission.DEVICE_VIEW,
}
_SUPPORT = _VIEW | {Permission.DEVICE_CALL}
_DEVELOP = _SUPPORT | {
    Permission.PRODUCT_CREATE,
    Permission.EVENT_PUBLISH,
    Permission.OAUTH_CLIENT_MANAGE,
    Permission.DEVICE_MANAGE,
}
_ADMINISTER = _DEVELOP | {
    Permission.ORGANIZATION_UPDATE,
    Permission.PRODUCT_UPDATE,
    Permission.TEAM_MANAGE,
    Permission.AUDIT_VIEW,
    Permission.BILLING_VIEW,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(_ADMINISTER | {Permission.OWNERSHIP_TRANSFER}),
    Role.ADMINISTRATOR: frozenset(_ADMINISTER),
    Role.DEVELOPER: frozenset(_DEVELOP),
    Role.SUPPORT: frozenset(_SUPPORT),
    Role.VIEWER: frozenset(_VIEW),
}

# Roles an invitation or a role change may grant: ownership only moves by transfer.
ASSIGNABLE_ROLES = (Role.ADMINISTRATOR, Role.DEVELOPER, Role.SUPPORT, Role.VIEWER)


def has_permission(role: Role | str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]


def require(role: Role | str, permission: Permission) -> None:
    """Raise `PermissionDenied` unless `role` grants `permission` (callers are members:
    outsiders get `NotFound` before this is asked)."""
    if not has_permission(role, permission):
        raise PermissionDenied(
            f"Your role ({Role(role).value.lower()}) does not allow this."
        )
