"""Platform-level OAuth clients (operator-created; product clients come with products)."""

from __future__ import annotations

import secrets

from auth import tokens
from core import clock
from core.errors import InvalidInput
from models.oauth import OAuthClient


async def create_service_client(name: str, *, first_party: bool) -> tuple[OAuthClient, str]:
    """A confidential client for `client_credentials` (and introspection, if first-party).
    Returns the client and its secret, which is shown only now."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("The name must be 1 to 100 characters.", field="name")
    secret = tokens.generate(tokens.CLIENT_SECRET_PREFIX)
    client = await OAuthClient.create(
        client_id="dc_" + secrets.token_hex(12),
        name=name,
        secret_hash=tokens.digest(secret),
        grant_types=["client_credentials"],
        first_party=first_party,
        created_at=clock.now(),
    )
    return client, secret
