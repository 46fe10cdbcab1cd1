"""Small client-side helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import httpx

from auth import accounts
from auth.clients import create_service_client
from models.oauth import OAuthClient
from tests.conftest import FIRST_PARTY_CLIENT_ID, PASSWORD


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_status: int = 200,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == expect_status, response.text
    return response.json()


async def password_login(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": FIRST_PARTY_CLIENT_ID,
            "username": email,
            "password": password,
        },
    )


async def signed_in_user(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Create an account and sign it in; returns the token response."""
    await accounts.sign_up(email, PASSWORD)
    response = await password_login(http, email)
    assert response.status_code == 200, response.text
    return response.json()


async def service_client(
    name: str = "Backend", *, first_party: bool = False
) -> tuple[OAuthClient, str]:
    return await create_service_client(name, first_party=first_party)


async def client_token(http: httpx.AsyncClient, client: OAuthClient, secret: str) -> str:
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]
