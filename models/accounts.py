"""Platform accounts."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.customers import Customer
    from models.devices import Device
    from models.oauth import AuthorizationCode, Consent, OAuthClient, TokenFamily
    from models.organizations import AuditEntry, Invitation, Membership


class User(Model):
    """A person with a platform account (a product creator's team member, or a developer)."""

    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    # The address's confusable skeleton (auth.emails.email_skeleton): look-alikes share it.
    # Unique by an index of migration 0007; every account has one (null only in the schema:
    # SQLite cannot make an existing column NOT NULL without rebuilding the table).
    email_skeleton = fields.CharField(max_length=1024, null=True)
    email_verified_at = fields.DatetimeField(null=True)
    password_hash = fields.CharField(max_length=255)
    created_at = fields.DatetimeField()
    # Hosted sign-ins (browser session cookies) issued at or before this instant are void.
    sessions_valid_after = fields.DatetimeField(null=True)

    claimed_devices: fields.ReverseRelation[Device]
    customer_links: fields.ReverseRelation[Customer]
    apps: fields.ReverseRelation[OAuthClient]
    token_families: fields.ReverseRelation[TokenFamily]
    authorization_codes: fields.ReverseRelation[AuthorizationCode]
    consents: fields.ReverseRelation[Consent]
    membership: fields.BackwardOneToOneRelation[Membership]
    sent_invitations: fields.ReverseRelation[Invitation]
    audit_entries: fields.ReverseRelation[AuditEntry]
    account_tokens: fields.ReverseRelation[AccountToken]

    class Meta:
        table = "users"


class AccountTokenPurpose(StrEnum):
    """What an emailed account link does (`AccountToken.purpose`)."""

    VERIFY_EMAIL = "VERIFY_EMAIL"
    RESET_PASSWORD = "RESET_PASSWORD"  # noqa: S105 - a purpose, not a password


class AccountToken(Model):
    """A single-use, expiring link emailed to an account. Only the token's SHA-256 is stored."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="account_tokens", on_delete=fields.CASCADE
    )
    user_id: int
    purpose = fields.CharField(max_length=20)
    token_hash = fields.CharField(max_length=64, unique=True)
    # The address the link was sent to: a verification proves only that address.
    email = fields.CharField(max_length=254)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "account_tokens"
        indexes = [("user_id", "purpose")]
