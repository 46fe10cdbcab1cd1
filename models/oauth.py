"""OAuth 2.0 clients, issued tokens and sign-in throttling counters."""

from tortoise import fields
from tortoise.models import Model


class OAuthClient(Model):
    """A registered OAuth client. Public clients have no secret, and secrets are stored hashed."""

    id = fields.BigIntField(primary_key=True)
    client_id = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100)
    secret_hash = fields.CharField(max_length=64, null=True)
    grant_types = fields.JSONField(default=list)
    redirect_uris = fields.JSONField(default=list)
    scope = fields.CharField(max_length=500, default="")
    first_party = fields.BooleanField(default=False)
    product = fields.ForeignKeyField("models.Product", related_name="oauth_clients", null=True)
    kind = fields.CharField(
        max_length=20, default="PLATFORM", description="PLATFORM, WEB, MOBILE or SERVER"
    )
    created_at = fields.DatetimeField()
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_clients"


class TokenFamily(Model):
    """One sign-in: the chain of tokens issued from one grant, refreshed by rotation.

    A user sees their live families as sessions; revoking one ends every token in it.
    """

    id = fields.BigIntField(primary_key=True)
    client = fields.ForeignKeyField("models.OAuthClient", related_name="token_families")
    user = fields.ForeignKeyField("models.User", related_name="token_families", null=True)
    scope = fields.CharField(max_length=500, default="")
    grant_type = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(description="when the newest token of the family expires")
    revoked_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=255, default="")
    ip_address = fields.CharField(max_length=45, default="")

    class Meta:
        table = "oauth_token_families"
        indexes = [("user_id", "revoked_at")]


class Token(Model):
    """An access token and (optionally) its refresh token, stored only as SHA-256 hashes."""

    id = fields.BigIntField(primary_key=True)
    family = fields.ForeignKeyField("models.TokenFamily", related_name="tokens")
    access_hash = fields.CharField(max_length=64, unique=True)
    access_expires_at = fields.DatetimeField()
    refresh_hash = fields.CharField(max_length=64, unique=True, null=True)
    refresh_expires_at = fields.DatetimeField(null=True)
    refresh_used_at = fields.DatetimeField(null=True)
    issued_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_tokens"


class ThrottleCounter(Model):
    """Failed sign-in attempts for one key (`account:<email>` or `address:<ip>`)."""

    key = fields.CharField(max_length=300, primary_key=True)
    failures = fields.IntField(default=0)
    window_started_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)

    class Meta:
        table = "throttle_counters"
