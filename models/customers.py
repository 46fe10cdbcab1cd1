"""A product's end customers and the claim codes that give them their devices."""

from tortoise import fields
from tortoise.models import Model


class Customer(Model):
    """Someone who uses a product's devices, signed in through the product creator's app.

    `password_hash` is set for simple auth, empty for two-legged auth (the creator's server
    vouches for them). `user` links a platform account (Login with Device Cloud)."""

    id = fields.BigIntField(primary_key=True)
    product = fields.ForeignKeyField(
        "models.Product", related_name="customers", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    password_hash = fields.CharField(max_length=255, null=True)
    user = fields.ForeignKeyField(
        "models.User", related_name="customer_links", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField()
    last_active_at = fields.DatetimeField(
        null=True, description="last token use or device activity"
    )

    class Meta:
        table = "customers"
        unique_together = [("product", "email"), ("product", "user")]
        indexes = [("product_id", "created_at"), ("product_id", "last_active_at")]


class ClaimCode(Model):
    """A single-use code a customer gives a device, which presents it in its hello to become
    the customer's. Stored only as a SHA-256 hash."""

    id = fields.BigIntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="claim_codes", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    device = fields.ForeignKeyField(
        "models.Device", related_name="claim_codes", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "claim_codes"
        indexes = [("customer_id", "used_at")]
