"""Third-party apps: OAuth clients a user registers for Login with Device Cloud, and the apps a
user allowed to act for them (consents).

A user's app is a WEB client tied to no product, which asks users for the scopes of
`auth.scopes`; its tokens act for the consenting user within those scopes. It is confidential
(a server-side web app, with a secret), or public: a native, CLI or single-page app, which
cannot keep a secret and proves itself by PKCE alone (RFC 8252); a public app may also redirect
to a private-use scheme (RFC 8252 §7.1), as a MOBILE client may. Only the account holder
manages these, signed in directly: never through a third-party app's token.
"""

from __future__ import annotations

import secrets

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import tokens, web_origins
from auth.code_flow import canonical_scope
from auth.errors import AuthCode
from auth.principals import AnyPrincipal, UserPrincipal, require_user
from auth.redirect_uris import clean_redirect_uris
from auth.scopes import Scope
from core import clock
from core.errors import CoreCode, InvalidInput, LimitReached, NotFound
from core.text import clean_name
from models.oauth import AuthorizationCode, ClientType, Consent, OAuthClient, TokenFamily

MAX_APPS = 20
APP_GRANTS = ["authorization_code", "refresh_token"]


def _account_holder(principal: AnyPrincipal) -> UserPrincipal:
    """The user managing their apps: never through a third-party app (`require_user`)."""
    return require_user(principal)


def _clean_redirect_uris(uris: list[str], *, public: bool) -> list[str]:
    if not uris:
        raise InvalidInput("An app needs at least one redirect URI.", field="redirectUris",
                           code=CoreCode.REQUIRED)
    return clean_redirect_uris(uris, ClientType.WEB, native=public)


def _clean_scopes(names: list[str]) -> str:
    unknown = [name for name in names if name not in Scope._value2member_map_]
    if unknown:
        known = ", ".join(Scope)
        raise InvalidInput(f"Unknown scope '{unknown[0][:50]}'; the scopes are {known}.",
                           field="scopes", code=AuthCode.INVALID_SCOPE)
    return canonical_scope(" ".join(names))


async def create_app(principal: AnyPrincipal, *, name: str, redirect_uris: list[str],
                     scopes: list[str], public: bool = False) -> tuple[OAuthClient, str | None]:
    """Register the user's app. Its secret is returned only now; a `public` app has none."""
    actor = _account_holder(principal)
    name = clean_name(name)
    uris = _clean_redirect_uris(redirect_uris, public=public)
    scope = _clean_scopes(scopes)
    if await apps_of(actor).count() >= MAX_APPS:
        raise LimitReached(f"You can register at most {MAX_APPS} apps; delete one first.")
    secret = None if public else tokens.generate(tokens.CLIENT_SECRET_PREFIX)
    client = await OAuthClient.create(
        client_id="dc_app_" + secrets.token_hex(12), name=name,
        secret_hash=tokens.digest(secret) if secret else None, grant_types=APP_GRANTS,
        redirect_uris=uris, scope=scope, kind=ClientType.WEB, owner=actor.user,
        created_at=clock.now(),
    )
    await web_origins.client_changed(client)
    return client, secret


def apps_of(principal: AnyPrincipal) -> QuerySet[OAuthClient]:
    """The user's live apps."""
    actor = _account_holder(principal)
    return OAuthClient.filter(owner_id=actor.user.id, deleted_at=None)


async def delete_app(principal: AnyPrincipal, client_id: str) -> OAuthClient:
    """Delete the user's app: its tokens stop working, its consents and codes go."""
    client = await apps_of(principal).filter(client_id=client_id).first()
    if client is None:
        raise NotFound("No such app.", field="clientId")
    now = clock.now()
    async with in_transaction():
        await OAuthClient.filter(id=client.id).update(deleted_at=now)
        await TokenFamily.filter(client_id=client.id, revoked_at=None).update(revoked_at=now)
        await Consent.filter(client_id=client.id).delete()
        await AuthorizationCode.filter(client_id=client.id, used_at=None).delete()
    client.deleted_at = now
    await web_origins.client_changed(client)
    return client


async def authorized_apps(principal: AnyPrincipal) -> list[Consent]:
    """The apps the user allowed to act for them, most recently allowed first, with their
    client (and its product)."""
    actor = _account_holder(principal)
    return await (
        Consent.filter(user_id=actor.user.id, client__deleted_at=None)
        .select_related("client__product")
        .order_by("-updated_at", "-id")
    )


async def revoke_authorized_app(principal: AnyPrincipal, client_id: str) -> Consent:
    """Withdraw the user's consent to an app: its tokens for the user stop working at once,
    and the next sign-in through it asks again."""
    actor = _account_holder(principal)
    consent = await (
        Consent.filter(user_id=actor.user.id, client__client_id=client_id)
        .select_related("client__product")
        .first()
    )
    if consent is None:
        raise NotFound("You have not authorized this app.", field="clientId")
    async with in_transaction():
        await Consent.filter(id=consent.id).delete()
        await TokenFamily.filter(
            user_id=actor.user.id, client_id=consent.client_id, revoked_at=None
        ).update(revoked_at=clock.now())
        await AuthorizationCode.filter(
            user_id=actor.user.id, client_id=consent.client_id, used_at=None
        ).delete()
    return consent
