"""Client-side helpers for the OAuth 2.0 end-to-end tests."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from models.accounts import User
from models.oauth import OAuthClient, ThrottleCounter, Token, TokenFamily
from tests.support.constants import FIRST_PARTY_CLIENT_ID

TOKEN = "/oauth/token"
REVOKE = "/oauth/revoke"
INTROSPECT = "/oauth/introspect"
ME = "{ me { email } }"
WRONG_PASSWORD = "not the password"
BAD_CREDENTIALS = "The email or password is incorrect."
FORM = {"content-type": "application/x-www-form-urlencoded"}


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def assert_oauth_error(
    response: httpx.Response, status: int, error: str, description: str | None = None
) -> dict[str, Any]:
    """An RFC 6749 §5.2 error: the status, the `error` code (and description, if given),
    JSON, and never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}, body
    if description is not None:
        assert body.get("error_description") == description, body
    assert_no_store(response)
    return body


def assert_token_response(response: httpx.Response, *, with_refresh: bool = True) -> dict[str, Any]:
    """A successful RFC 6749 §5.1 token response in this server's shape."""
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body = response.json()
    expected_keys = {"access_token", "token_type", "expires_in"}
    if with_refresh:
        expected_keys.add("refresh_token")
    assert set(body) == expected_keys, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("dc_at_")
    if with_refresh:
        assert body["refresh_token"].startswith("dc_rt_")
    return body


async def me(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    """`{ me { email } }` with a bearer token; the caller checks the status."""
    return await http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {access_token}"}
    )


async def assert_acts_as(http: httpx.AsyncClient, access_token: str, email: str | None) -> None:
    """The token is live and acts for the user with this email (None: for a client)."""
    response = await me(http, access_token)
    assert response.status_code == 200, response.text
    expected = {"email": email} if email is not None else None
    assert response.json()["data"] == {"me": expected}


async def assert_rejected(http: httpx.AsyncClient, access_token: str) -> None:
    """RFC 6750 §3.1: a dead token gets 401 with `WWW-Authenticate: … error="invalid_token"`."""
    response = await me(http, access_token)
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_TOKEN"}


async def refresh(
    http: httpx.AsyncClient, refresh_token: str, client_id: str = FIRST_PARTY_CLIENT_ID
) -> httpx.Response:
    return await http.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "client_id": client_id,
            "refresh_token": refresh_token,
        },
    )


async def revoke(
    http: httpx.AsyncClient,
    token: str,
    *,
    auth: tuple[str, str] | None = None,
    hint: str | None = None,
) -> httpx.Response:
    """RFC 7009 revocation: as the public client `devicecloud`, or with HTTP Basic `auth`."""
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    if auth is None:
        data["client_id"] = FIRST_PARTY_CLIENT_ID
    return await http.post(REVOKE, data=data, auth=auth)


async def introspect(
    http: httpx.AsyncClient, token: str, auth: tuple[str, str], hint: str | None = None
) -> dict[str, Any]:
    """RFC 7662 introspection with HTTP Basic; returns the (successful) answer."""
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    response = await http.post(INTROSPECT, data=data, auth=auth)
    assert response.status_code == 200, response.text
    assert_no_store(response)
    return response.json()


async def storage_snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row the OAuth server may write, to prove that a refused request changed nothing."""
    return {
        "users": await User.all().order_by("id").values(),
        "clients": await OAuthClient.all().order_by("id").values(),
        "families": await TokenFamily.all().order_by("id").values(),
        "tokens": await Token.all().order_by("id").values(),
        "throttle": await ThrottleCounter.all().order_by("key").values(),
    }
