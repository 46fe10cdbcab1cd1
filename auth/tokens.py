"""Opaque bearer tokens: 256-bit random, prefixed by kind, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal, ClientPrincipal, CustomerPrincipal, UserPrincipal
from core import clock
from models.accounts import User
from models.customers import Customer
from models.oauth import OAuthClient, Token, TokenFamily

ACCESS_PREFIX = "dc_at_"
REFRESH_PREFIX = "dc_rt_"
CLIENT_SECRET_PREFIX = "dc_cs_"  # noqa: S105 - a prefix, not a secret

# Recording "last used" on every request would turn each read into a write; a minute is
# precise enough for a sessions page.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1: the scheme in any
    case), or None if the value is missing or not one. Every place that reads a bearer token
    reads it here, so that they all accept the same values."""
    scheme, _, raw = (header or "").strip().partition(" ")
    raw = raw.strip()
    return raw if scheme.lower() == "bearer" and raw else None


def generate(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(stored_hash: str | None, presented: str) -> bool:
    return stored_hash is not None and secrets.compare_digest(stored_hash, digest(presented))


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None

    def as_response(self) -> dict[str, str | int]:
        body: dict[str, str | int] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.scope:
            body["scope"] = self.scope
        return body


async def issue(
    *,
    client: OAuthClient,
    user: User | None,
    scope: str,
    grant_type: str,
    access_lifetime: int,
    refresh_lifetime: int | None,
    family: TokenFamily | None = None,
    user_agent: str = "",
    ip_address: str = "",
    customer: Customer | None = None,
    auth_time: datetime | None = None,
) -> IssuedToken:
    """Store a new token pair, in a new family (which keeps `scope` as the granted one) or,
    on refresh, in the given one: the pair has the scope the refresh asked for, perhaps
    narrower (RFC 6749 §6), while the family keeps its grant for later refreshes.
    `auth_time`: when the user signed in at the hosted login page, for a code flow's family
    (its refreshed ID tokens)."""
    now = clock.now()
    access = generate(ACCESS_PREFIX)
    refresh = generate(REFRESH_PREFIX) if refresh_lifetime else None
    access_expires = now + timedelta(seconds=access_lifetime)
    refresh_expires = now + timedelta(seconds=refresh_lifetime) if refresh_lifetime else None
    expires = max(access_expires, refresh_expires or access_expires)
    async with in_transaction():
        if family is None:
            family = await TokenFamily.create(
                client=client,
                user=user,
                customer=customer,
                scope=scope,
                grant_type=grant_type,
                created_at=now,
                last_used_at=now,
                expires_at=expires,
                user_agent=user_agent[:255],
                ip_address=ip_address[:45],
                auth_time=auth_time,
            )
        else:
            await TokenFamily.filter(id=family.id).update(last_used_at=now, expires_at=expires)
        await Token.create(
            family=family,
            access_hash=digest(access),
            access_expires_at=access_expires,
            refresh_hash=digest(refresh) if refresh else None,
            refresh_expires_at=refresh_expires,
            issued_at=now,
            scope=scope,
        )
    return IssuedToken(access, access_lifetime, scope, refresh)


async def find_access_token_row(raw: str) -> Token | None:
    """The token row for an access token string, live or not, with family, client and user."""
    if not raw.startswith(ACCESS_PREFIX):
        return None
    return (
        await Token.filter(access_hash=digest(raw))
        .select_related("family__client", "family__user", "family__customer")
        .first()
    )


async def find_access_token(raw: str) -> Token | None:
    """The token row for a live access token string."""
    token = await find_access_token_row(raw)
    if token is None or not is_live(token, token.access_expires_at):
        return None
    return token


async def find_refresh_token(raw: str) -> Token | None:
    """The token row holding this refresh token, live or not (reuse detection needs both)."""
    if not raw.startswith(REFRESH_PREFIX):
        return None
    return (
        await Token.filter(refresh_hash=digest(raw))
        .select_related("family__client", "family__user", "family__customer")
        .first()
    )


def access_scope(token: Token) -> str:
    """What the token's access token may do: its own scope, or its family's for a row issued
    before tokens kept one."""
    return token.scope if token.scope is not None else token.family.scope


def is_revoked(token: Token) -> bool:
    family = token.family
    return (
        token.revoked_at is not None
        or family.revoked_at is not None
        or family.client.deleted_at is not None
    )


def is_live(token: Token, expires_at: datetime | None) -> bool:
    return not is_revoked(token) and expires_at is not None and expires_at > clock.now()


async def consume_refresh_token(token: Token) -> bool:
    """Mark a refresh token used, atomically. False means it had been used before: a replay."""
    updated = await Token.filter(id=token.id, refresh_used_at=None).update(
        refresh_used_at=clock.now()
    )
    return updated == 1


async def revoke_family(family_id: int) -> None:
    await TokenFamily.filter(id=family_id, revoked_at=None).update(revoked_at=clock.now())


async def revoke_token(token: Token) -> None:
    """End one issued pair: its access token and the refresh token issued with it."""
    await Token.filter(id=token.id, revoked_at=None).update(revoked_at=clock.now())


async def authenticate(raw: str) -> AnyPrincipal:
    """Resolve a bearer access token to its principal, or None if it is not live."""
    token = await find_access_token(raw)
    if token is None:
        return None
    family = token.family
    scope = access_scope(token)
    now = clock.now()
    if now - family.last_used_at >= LAST_USED_RESOLUTION:
        await TokenFamily.filter(id=family.id).update(last_used_at=now)
        if family.customer is not None:
            await Customer.filter(id=family.customer.id).update(last_active_at=now)
    if family.customer is not None:
        return CustomerPrincipal(
            client=family.client, family_id=family.id, scope=scope, customer=family.customer,
        )
    if family.user is not None:
        return UserPrincipal(
            client=family.client, family_id=family.id, scope=scope, user=family.user
        )
    return ClientPrincipal(client=family.client, family_id=family.id, scope=scope)
