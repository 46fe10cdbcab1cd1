"""Platform accounts."""

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """A person with a platform account (a product creator's team member, or a developer)."""

    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    created_at = fields.DatetimeField()
    # Hosted sign-ins (browser session cookies) issued at or before this instant are void.
    sessions_valid_after = fields.DatetimeField(null=True)

    class Meta:
        table = "users"
