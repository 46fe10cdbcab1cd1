"""Platform accounts."""

from __future__ import annotations

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

    class Meta:
        table = "users"
