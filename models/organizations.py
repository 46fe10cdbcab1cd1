"""Organizations, their team (memberships and invitations) and their audit log."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.accounts import User
    from models.products import Product


class Role(StrEnum):
    """A team member's role (`Membership.role`, `Invitation.role`); what each may do is
    `fleet.permissions`' table."""

    OWNER = "OWNER"
    ADMINISTRATOR = "ADMINISTRATOR"
    DEVELOPER = "DEVELOPER"
    SUPPORT = "SUPPORT"
    VIEWER = "VIEWER"


class InvitationStatus(StrEnum):
    """Where an invitation stands (`Invitation.status`). A PENDING invitation past its
    `expires_at` is expired (`fleet.team.status_of`); EXPIRED is stored only when a new
    invitation to the same address replaces it."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class Organization(Model):
    """A product creator's company: owns products, employs a team, pays the bills."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)
    slug = fields.CharField(max_length=63, unique=True)
    created_at = fields.DatetimeField()

    memberships: fields.ReverseRelation[Membership]
    invitations: fields.ReverseRelation[Invitation]
    audit_entries: fields.ReverseRelation[AuditEntry]
    products: fields.ReverseRelation[Product]

    class Meta:
        table = "organizations"


class Membership(Model):
    """A user on an organization's team, with one role. A user has at most one membership."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="memberships"
    )
    organization_id: int
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "models.User", related_name="membership"
    )
    user_id: int
    role = fields.CharField(max_length=20)
    joined_at = fields.DatetimeField()

    class Meta:
        table = "memberships"
        indexes = [("organization_id", "joined_at")]


class Invitation(Model):
    """An invitation to join a team, addressed to the email of an existing account."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="invitations"
    )
    organization_id: int
    email = fields.CharField(max_length=254, db_index=True)
    role = fields.CharField(max_length=20)
    invited_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sent_invitations"
    )
    invited_by_id: int
    status = fields.CharField(max_length=20, default="PENDING")
    created_at = fields.DatetimeField()
    last_sent_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    responded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitations"
        indexes = [("organization_id", "status")]
        # Migration 0007 adds a partial unique index, invitations_one_pending: one PENDING
        # invitation per (organization_id, email), even under concurrent invitations. (Raw
        # SQL: Tortoise's schema editor has no partial unique index on SQLite.)


class AuditEntry(Model):
    """Who did what to what, when and from where, inside one organization."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="audit_entries"
    )
    organization_id: int
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="audit_entries", null=True
    )
    actor_id: int | None
    actor_label = fields.CharField(max_length=300)
    action = fields.CharField(max_length=60)
    target_type = fields.CharField(max_length=40)
    target_id = fields.CharField(max_length=64)
    target_label = fields.CharField(max_length=300)
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    ip_address = fields.CharField(max_length=45, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "audit_entries"
        indexes = [("organization_id", "created_at", "id")]
