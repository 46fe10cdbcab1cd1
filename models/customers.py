"""A product's end customers and the claim codes that give them their devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.accounts import User
    from models.devices import Device
    from models.oauth import TokenFamily
    from models.products import Product


class Customer(Model):
    """Someone who uses a product's devices, signed in through the product creator's app.

    `password_hash` is set for simple auth, empty for two-legged auth (the creator's server
    vouches for them). `user` links a platform account (Login with Device Cloud)."""

    id = fields.BigIntField(primary_key=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="customers", on_delete=fields.CASCADE
    )
    product_id: int
    email = fields.CharField(max_length=254)
    password_hash = fields.CharField(max_length=255, null=True)
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="customer_links", null=True, on_delete=fields.SET_NULL
    )
    user_id: int | None
    created_at = fields.DatetimeField()
    last_active_at = fields.DatetimeField(
        null=True, description="last token use or device activity"
    )

    claim_codes: fields.ReverseRelation[ClaimCode]
    devices: fields.ReverseRelation[Device]
    token_families: fields.ReverseRelation[TokenFamily]

    class Meta:
        table = "customers"
        unique_together = [("product", "email"), ("product", "user")]
        indexes = [("product_id", "created_at"), ("product_id", "last_active_at")]


class ClaimCode(Model):
    """A single-use code a customer gives a device, which presents it in its hello to become
    the customer's. Stored only as a SHA-256 hash."""

    id = fields.BigIntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="claim_codes", on_delete=fields.CASCADE
    )
    customer_id: int
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="claim_codes", null=True, on_delete=fields.SET_NULL
    )
    device_id: str | None

    class Meta:
        table = "claim_codes"
        indexes = [("customer_id", "used_at")]
