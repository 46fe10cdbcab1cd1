"""Helpers for tests of customers' devices and third-party apps: customers, their tokens, and
third-party app tokens, created as rows (the sign-in flows have their own tests)."""

from __future__ import annotations

import secrets

from auth import tokens
from auth.emails import email_skeleton
from core import clock
from models.accounts import User
from models.customers import Customer
from models.oauth import OAuthClient
from models.products import Product

LIFETIME = 3600


async def product_app(product: Product, kind: str = "MOBILE") -> OAuthClient:
    """A client of the product's own app (the kind that signs its customers in)."""
    return await OAuthClient.create(
        client_id="dc_" + secrets.token_hex(12), name=f"{product.name} app",
        grant_types=["password", "refresh_token"], product=product, kind=kind,
        created_at=clock.now(),
    )


async def make_customer(product: Product, email: str) -> Customer:
    return await Customer.create(product=product, email=email, created_at=clock.now())


async def customer_token(customer: Customer) -> str:
    """An access token for the customer, as the product's app gets it at sign-in."""
    await customer.fetch_related("product")
    client = await OAuthClient.filter(product_id=customer.product_id, kind="MOBILE").first()
    if client is None:
        client = await product_app(customer.product)
    issued = await tokens.issue(
        client=client, user=None, customer=customer, scope="", grant_type="password",
        access_lifetime=LIFETIME, refresh_lifetime=None,
    )
    return issued.access_token


async def third_party_app(owner: User, name: str = "Dashboards Inc.") -> OAuthClient:
    """A third-party app a user registered (no product): Login with Device Cloud."""
    return await OAuthClient.create(
        client_id="dc_" + secrets.token_hex(12), name=name,
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["https://dashboards.example/callback"], kind="WEB", owner=owner,
        created_at=clock.now(),
    )


async def app_token(user: User, scope: str, app: OAuthClient | None = None) -> str:
    """An access token the third-party app `app` holds for `user`, with the scopes the user
    consented to (space-separated)."""
    if app is None:
        maker = f"maker-{secrets.token_hex(4)}@apps.example"
        app = await third_party_app(await User.create(
            email=maker, email_skeleton=email_skeleton(maker), password_hash="x",
            created_at=clock.now()))
    issued = await tokens.issue(
        client=app, user=user, scope=scope, grant_type="authorization_code",
        access_lifetime=LIFETIME, refresh_lifetime=None,
    )
    return issued.access_token
