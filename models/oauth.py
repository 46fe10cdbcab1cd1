"""OAuth 2.0 clients, issued tokens and sign-in throttling counters."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.accounts import User
    from models.customers import Customer
    from models.products import Product


class ClientType(StrEnum):
    """The kind of an OAuth client (`OAuthClient.kind`): a product's WEB, MOBILE or SERVER
    client, or a user's third-party app (WEB). Our own clients are of kind PLATFORM."""

    WEB = "WEB"
    MOBILE = "MOBILE"
    SERVER = "SERVER"


class OAuthClient(Model):
    """A registered OAuth client. Public clients have no secret, and secrets are stored hashed."""

    id = fields.BigIntField(primary_key=True)
    client_id = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100)
    secret_hash = fields.CharField(max_length=64, null=True)
    grant_types: fields.JSONField[list[str]] = fields.JSONField(default=list)
    redirect_uris: fields.JSONField[list[str]] = fields.JSONField(default=list)
    scope = fields.CharField(max_length=500, default="")
    first_party = fields.BooleanField(default=False)
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="oauth_clients", null=True
    )
    product_id: int | None
    kind = fields.CharField(
        max_length=20, default="PLATFORM", description="PLATFORM, WEB, MOBILE or SERVER"
    )
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="apps", null=True, on_delete=fields.CASCADE,
        description="the user who registered this third-party app",
    )
    owner_id: int | None
    max_token_lifetime = fields.IntField(
        null=True, description="longest customer token it may mint, seconds (two-legged)"
    )
    created_at = fields.DatetimeField()
    deleted_at = fields.DatetimeField(null=True)

    token_families: fields.ReverseRelation[TokenFamily]
    authorization_codes: fields.ReverseRelation[AuthorizationCode]
    consents: fields.ReverseRelation[Consent]

    class Meta:
        table = "oauth_clients"

    @property
    def public(self) -> bool:
        """A public client (RFC 6749 §2.1) is one without a secret: it cannot authenticate, so
        what it may do, and what it shows as `public`, follows from this alone."""
        return self.secret_hash is None


class TokenFamily(Model):
    """One sign-in: the chain of tokens issued from one grant, refreshed by rotation.

    A user sees their live families as sessions; revoking one ends every token in it.
    """

    id = fields.BigIntField(primary_key=True)
    client: fields.ForeignKeyRelation[OAuthClient] = fields.ForeignKeyField(
        "models.OAuthClient", related_name="token_families"
    )
    client_id: int
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="token_families", null=True
    )
    user_id: int | None
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="token_families", null=True, on_delete=fields.CASCADE
    )
    customer_id: int | None
    # The scope granted at sign-in: what every refresh may ask for again.
    scope = fields.CharField(max_length=500, default="")
    grant_type = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(description="when the newest token of the family expires")
    revoked_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=255, default="")
    ip_address = fields.CharField(max_length=45, default="")
    # When the user signed in at the hosted login page, for the ID tokens of a code flow's
    # refreshes (the code that carried it is pruned a day later).
    auth_time = fields.DatetimeField(null=True)

    tokens: fields.ReverseRelation[Token]
    authorization_codes: fields.ReverseRelation[AuthorizationCode]

    class Meta:
        table = "oauth_token_families"
        indexes = [("user_id", "revoked_at")]


class Token(Model):
    """An access token and (optionally) its refresh token, stored only as SHA-256 hashes."""

    id = fields.BigIntField(primary_key=True)
    family: fields.ForeignKeyRelation[TokenFamily] = fields.ForeignKeyField(
        "models.TokenFamily", related_name="tokens"
    )
    family_id: int
    access_hash = fields.CharField(max_length=64, unique=True)
    access_expires_at = fields.DatetimeField()
    refresh_hash = fields.CharField(max_length=64, unique=True, null=True)
    refresh_expires_at = fields.DatetimeField(null=True)
    refresh_used_at = fields.DatetimeField(null=True)
    issued_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    # What this access token may do: the family's granted scope, or less when a refresh
    # narrowed it (RFC 6749 §6); null for rows issued before it was kept (the family's, then).
    scope = fields.CharField(max_length=500, null=True)

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


class AuthorizationCode(Model):
    """An authorization code (RFC 6749 §4.1) with its PKCE challenge, stored hashed. Single
    use: a replay revokes the token family it issued (`family`)."""

    id = fields.BigIntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    client: fields.ForeignKeyRelation[OAuthClient] = fields.ForeignKeyField(
        "models.OAuthClient", related_name="authorization_codes"
    )
    client_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="authorization_codes"
    )
    user_id: int
    redirect_uri = fields.TextField()
    scope = fields.CharField(max_length=500, default="")
    code_challenge = fields.CharField(max_length=128)
    code_challenge_method = fields.CharField(max_length=10)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    family: fields.ForeignKeyNullableRelation[TokenFamily] = fields.ForeignKeyField(
        "models.TokenFamily", related_name="authorization_codes", null=True,
        on_delete=fields.SET_NULL,
    )
    family_id: int | None
    # OpenID Connect: the request's `nonce`, echoed in the ID token, and when the user signed
    # in at the hosted login page (`auth_time`). Null for codes issued before they existed.
    nonce = fields.CharField(max_length=255, null=True)
    auth_time = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_authorization_codes"
        # A nonce is refused once used with the client: looked up on every OpenID request.
        indexes = [("client_id", "nonce")]


class Consent(Model):
    """A user's consent to a client acting for them with these scopes: remembered, so the
    consent page is shown again only for new scopes, until the user revokes it."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="consents"
    )
    user_id: int
    client: fields.ForeignKeyRelation[OAuthClient] = fields.ForeignKeyField(
        "models.OAuthClient", related_name="consents"
    )
    client_id: int
    scope = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "oauth_consents"
        unique_together = [("user", "client")]


class SigningKey(Model):
    """A key that signs ID tokens (auth/signing_keys.py). The private key is stored only
    encrypted (AES-GCM under a key derived from SECRET_KEY); the public JWK is published.
    Keys form one chain, `generation` 1, 2, …: a unique number, so that of two processes
    creating the same next key only one succeeds."""

    id = fields.BigIntField(primary_key=True)
    generation = fields.IntField(unique=True)
    kid = fields.CharField(max_length=64, unique=True)
    algorithm = fields.CharField(max_length=10)
    public_jwk: fields.JSONField[dict[str, str]] = fields.JSONField()
    encrypted_private_key = fields.TextField(
        description="base64url of the AES-GCM nonce and ciphertext of the PEM private key"
    )
    created_at = fields.DatetimeField(description="when it was published")
    activated_at = fields.DatetimeField(description="when it starts signing")
    retired_at = fields.DatetimeField(null=True, description="when it stops signing")
    withdrawn_at = fields.DatetimeField(
        null=True, description="when it left the JWKS before its overlap ended (a leaked key)"
    )

    class Meta:
        table = "oauth_signing_keys"
