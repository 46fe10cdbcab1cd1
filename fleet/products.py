"""Products and their OAuth clients."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import tokens, web_origins
from auth.principals import AnyPrincipal
from auth.redirect_uris import clean_redirect_uris
from core import clock
from core.errors import Conflict, CoreCode, InvalidInput, NotFound
from core.text import clean_name, clean_slug, slugify
from fleet import access, audit
from fleet.errors import FleetCode
from fleet.events import check_data_limit
from fleet.permissions import Permission
from models.oauth import ClientType, OAuthClient, TokenFamily
from models.products import CustomerAuth, Product

DESCRIPTION_MAX = 2000
_PLATFORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}")


# What each kind of product client may do at the token endpoint. Every confidential one acts
# for itself (client_credentials); the product's apps sign its customers in with their
# password (simple auth) or by the code flow (Login with Device Cloud: a MOBILE app with its
# private-use scheme or a loopback redirect, RFC 8252), and refresh. The SERVER client mints
# customer tokens with client_credentials (two-legged auth). Product clients never sign in
# platform accounts.
CLIENT_GRANTS: dict[ClientType, list[str]] = {
    ClientType.WEB: ["authorization_code", "password", "refresh_token", "client_credentials"],
    ClientType.MOBILE: ["authorization_code", "password", "refresh_token",
                        "client_credentials"],
    ClientType.SERVER: ["client_credentials"],
}
# A public client (no secret: an app that runs on the user's device or in their browser)
# cannot prove it is itself, so it never acts for itself.
CONFIDENTIAL_GRANTS = frozenset({"client_credentials"})

# The longest lifetime a SERVER client may be allowed for the customer tokens it mints.
MIN_TOKEN_LIFETIME = 60
MAX_TOKEN_LIFETIME = 90 * 24 * 3600


async def get_product(principal: AnyPrincipal, id_or_slug: str) -> Product:
    """A product by numeric ID or slug, for members of its organization."""
    return await access.product_by_id_or_slug(principal, id_or_slug)


async def list_products(principal: AnyPrincipal, organization_id: int) -> QuerySet[Product]:
    await access.organization_member(principal, organization_id, Permission.PRODUCT_VIEW)
    return Product.filter(organization_id=organization_id)


def _clean_description(value: str) -> str:
    description = value.strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidInput(f"The description is limited to {DESCRIPTION_MAX} characters.",
                           field="description", code=CoreCode.TOO_LONG)
    return description


def clean_platform(value: str) -> str:
    platform = value.strip()
    if not _PLATFORM.fullmatch(platform):
        raise InvalidInput(
            "A platform is 1 to 40 letters, digits, spaces, dots, dashes or underscores "
            "(like 'Photon' or 'esp32-s3').",
            field="platform",
            code=FleetCode.INVALID_PLATFORM,
        )
    return platform


def _parse_customer_auth(value: str) -> CustomerAuth:
    try:
        return CustomerAuth(value)
    except ValueError:
        names = ", ".join(c.value for c in CustomerAuth)
        raise InvalidInput(f"Choose a customer auth method: {names}.", field="customerAuth",
                           code=FleetCode.INVALID_CUSTOMER_AUTH) from None


async def create_product(
    principal: AnyPrincipal,
    organization_id: int,
    *,
    name: str,
    slug: str | None,
    description: str,
    platform: str,
    customer_auth: str,
) -> Product:
    member = await access.organization_member(principal, organization_id,
                                              Permission.PRODUCT_CREATE)
    name = clean_name(name)
    chosen_slug = clean_slug(slug) if slug is not None else slugify(name)
    if chosen_slug.replace("-", "").isdigit():
        # `product(idOrSlug:)` reads digits as a product ID: a product slug needs a letter.
        if slug is not None:
            raise InvalidInput(
                f"A product slug needs at least one letter; '{slug}' would read as a product "
                "ID.", field="slug", code=CoreCode.INVALID_SLUG,
            )
        chosen_slug = f"product-{chosen_slug}"[:63]
    fields: dict[str, Any] = {
        "name": name,
        "description": _clean_description(description),
        "platform": clean_platform(platform),
        "customer_auth": _parse_customer_auth(customer_auth),
    }
    candidates = [chosen_slug] if slug is not None else [
        chosen_slug, *(f"{chosen_slug[:58].rstrip('-')}-{n}" for n in range(2, 21))
    ]
    for candidate in candidates:
        try:
            async with in_transaction():
                product = await Product.create(
                    organization_id=organization_id, slug=candidate, created_at=clock.now(),
                    **fields,
                )
                await audit.record(member.principal, organization_id, "product.create",
                                   product, label=name,
                                   details={"slug": candidate, "productId": product.id})
            return product
        except IntegrityError:
            continue
    raise Conflict(f"The slug '{chosen_slug}' is taken; choose another.", field="slug",
                   code=CoreCode.SLUG_TAKEN)


async def update_product(
    principal: AnyPrincipal,
    product_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    platform: str | None = None,
    event_data_limit: int | None = None,
) -> Product:
    """Change a product's settings. Its ID, slug and customer auth method are fixed."""
    member, product = await access.product_member(principal, product_id,
                                                  Permission.PRODUCT_UPDATE)
    changes: dict[str, str | int] = {}
    if name is not None:
        changes["name"] = clean_name(name)
    if description is not None:
        changes["description"] = _clean_description(description)
    if platform is not None:
        changes["platform"] = clean_platform(platform)
    if event_data_limit is not None:
        changes["event_data_limit"] = check_data_limit(event_data_limit)
    if not changes:
        return product
    async with in_transaction():
        before = {field: getattr(product, field) for field in changes}
        product.update_from_dict(changes)
        await product.save(update_fields=list(changes))
        await audit.record(
            member.principal, product.organization_id, "product.update", product,
            label=product.name,
            details={field: [before[field], value] for field, value in changes.items()},
        )
    return product


def _clean_redirect_uris(uris: list[str], client_type: ClientType) -> list[str]:
    if client_type is ClientType.SERVER and uris:
        raise InvalidInput("SERVER clients authenticate with their secret and take no "
                           "redirect URIs.", field="redirectUris", code=CoreCode.NOT_ALLOWED)
    if client_type is ClientType.WEB and not uris:
        raise InvalidInput("A WEB client needs at least one redirect URI.",
                           field="redirectUris", code=CoreCode.REQUIRED)
    return clean_redirect_uris(uris, client_type)


def _parse_client_type(value: str) -> ClientType:
    try:
        return ClientType(value)
    except ValueError:
        raise InvalidInput("Choose a client type: WEB, MOBILE or SERVER.", field="type",
                           code=FleetCode.INVALID_CLIENT_TYPE) from None


async def oauth_clients_of(principal: AnyPrincipal, product_ids: Sequence[int]
                           ) -> list[list[OAuthClient]]:
    """The live OAuth clients of each product, in one query, checking the caller once per
    organization. A product the caller may not see raises `NotFound`."""
    found = {p.id: p for p in await Product.filter(id__in=list(product_ids))}
    await access.product_clients_viewer(principal, list(found.values()))
    if len(found) != len(set(product_ids)):
        raise NotFound("No such product.", field="productId")
    grouped: dict[int, list[OAuthClient]] = {i: [] for i in product_ids}
    for client in await OAuthClient.filter(
        product_id__in=list(product_ids), deleted_at=None
    ).order_by("id"):
        assert client.product_id is not None  # filtered on it
        grouped[client.product_id].append(client)
    return [grouped[i] for i in product_ids]


def _clean_max_token_lifetime(seconds: int | None, client_type: ClientType) -> int | None:
    if seconds is None:
        return None
    if client_type is not ClientType.SERVER:
        raise InvalidInput("Only SERVER clients mint customer tokens, so only they take a "
                           "maximum token lifetime.", field="maxTokenLifetime",
                           code=CoreCode.NOT_ALLOWED)
    if not MIN_TOKEN_LIFETIME <= seconds <= MAX_TOKEN_LIFETIME:
        raise InvalidInput(f"The maximum token lifetime is {MIN_TOKEN_LIFETIME} to "
                           f"{MAX_TOKEN_LIFETIME} seconds (90 days).",
                           field="maxTokenLifetime", code=CoreCode.OUT_OF_RANGE)
    return seconds


def _clean_public(public: bool, client_type: ClientType) -> bool:
    if public and client_type is ClientType.SERVER:
        raise InvalidInput("A SERVER client runs on your servers and authenticates with its "
                           "secret; only WEB and MOBILE clients can be public.", field="public",
                           code=FleetCode.SERVER_CLIENT_CONFIDENTIAL)
    return public


async def create_oauth_client(
    principal: AnyPrincipal, product_id: int, *, name: str, client_type: str,
    redirect_uris: list[str], max_token_lifetime: int | None = None, public: bool = False,
) -> tuple[OAuthClient, str | None]:
    """Register a client for the product's apps or servers. The secret is returned only now;
    a `public` client (a WEB or MOBILE app that cannot keep a secret) has none, and
    authenticates by PKCE alone. A SERVER client's `max_token_lifetime` caps the customer
    tokens it mints (None: the access token lifetime)."""
    member, product = await access.product_member(principal, product_id,
                                                  Permission.OAUTH_CLIENT_MANAGE)
    name = clean_name(name)
    kind = _parse_client_type(client_type)
    uris = _clean_redirect_uris(redirect_uris, kind)
    max_lifetime = _clean_max_token_lifetime(max_token_lifetime, kind)
    is_public = _clean_public(public, kind)
    secret = None if is_public else tokens.generate(tokens.CLIENT_SECRET_PREFIX)
    grants = [g for g in CLIENT_GRANTS[kind] if not (is_public and g in CONFIDENTIAL_GRANTS)]
    async with in_transaction():
        client = await OAuthClient.create(
            client_id=f"{product.slug[:40]}-{secrets.token_hex(6)}", name=name,
            secret_hash=tokens.digest(secret) if secret else None, grant_types=grants,
            redirect_uris=uris, product=product, kind=kind, max_token_lifetime=max_lifetime,
            created_at=clock.now(),
        )
        await audit.record(member.principal, product.organization_id, "oauth_client.create",
                           client, label=name,
                           details={"clientId": client.client_id, "type": kind.value,
                                    "public": is_public, "productId": product.id})
    await web_origins.client_changed(client)
    return client, secret


async def rotate_oauth_client_secret(principal: AnyPrincipal, client_id: str
                                     ) -> tuple[OAuthClient, str]:
    """Issue a new secret; the old one stops working at once (tokens already issued live on).
    A public client has none: it stays public."""
    member, client, product = await access.product_client(principal, client_id)
    if client.public:
        raise Conflict("This client is public: it has no secret to rotate.",
                       field="clientId", code=FleetCode.PUBLIC_CLIENT_NO_SECRET)
    secret = tokens.generate(tokens.CLIENT_SECRET_PREFIX)
    async with in_transaction():
        await OAuthClient.filter(id=client.id).update(secret_hash=tokens.digest(secret))
        await audit.record(member.principal, product.organization_id,
                           "oauth_client.rotate_secret", client, label=client.name,
                           details={"clientId": client.client_id})
    return client, secret


async def delete_oauth_client(principal: AnyPrincipal, client_id: str) -> OAuthClient:
    """Delete the client and revoke every token it holds."""
    member, client, product = await access.product_client(principal, client_id)
    now = clock.now()
    async with in_transaction():
        await OAuthClient.filter(id=client.id).update(deleted_at=now)
        await TokenFamily.filter(client_id=client.id, revoked_at=None).update(revoked_at=now)
        await audit.record(member.principal, product.organization_id, "oauth_client.delete",
                           client, label=client.name, details={"clientId": client.client_id})
    client.deleted_at = now
    await web_origins.client_changed(client)
    return client
