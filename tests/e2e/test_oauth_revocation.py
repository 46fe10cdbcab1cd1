"""Token revocation (RFC 7009) and introspection (RFC 7662) end to end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from auth import accounts
from models.oauth import TokenFamily
from tests.support.accounts import client_token, password_login, service_client, signed_in_user
from tests.support.constants import FIRST_PARTY_CLIENT_ID, PASSWORD
from tests.support.oauth import (
    INTROSPECT,
    REVOKE,
    assert_acts_as,
    assert_no_store,
    assert_oauth_error,
    assert_rejected,
    assert_token_response,
    introspect,
    refresh,
    revoke,
    sha256,
    storage_snapshot,
)

EMAIL = "ada@example.com"
ISSUER = "http://127.0.0.1"
UNKNOWN_TOKENS = ["dc_at_" + "A" * 43, "dc_rt_" + "A" * 43, "not-a-token"]


def assert_revoked_ok(response) -> None:
    """RFC 7009 §2.2: 200 with an empty body, whether or not the token was known."""
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert_no_store(response)


# -- Revocation ---------------------------------------------------------------------------------


async def test_revoking_an_access_token_ends_it_at_once(http):
    tokens = await signed_in_user(http, EMAIL)
    other_session = assert_token_response(await password_login(http, EMAIL))
    await assert_acts_as(http, tokens["access_token"], EMAIL)

    assert_revoked_ok(await revoke(http, tokens["access_token"]))

    await assert_rejected(http, tokens["access_token"])
    # The refresh token issued with it ends too (so the pair cannot be renewed) ...
    assert_oauth_error(await refresh(http, tokens["refresh_token"]), 400, "invalid_grant")
    # ... but not the user's other session.
    await assert_acts_as(http, other_session["access_token"], EMAIL)


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
async def test_revoking_a_refresh_token_ends_its_whole_family(http, hint):
    first = await signed_in_user(http, EMAIL)
    newest = assert_token_response(await refresh(http, first["refresh_token"]))
    other_session = assert_token_response(await password_login(http, EMAIL))

    # A wrong hint does not matter: the server searches every kind (RFC 7009 §2.1).
    assert_revoked_ok(await revoke(http, newest["refresh_token"], hint=hint))

    await assert_rejected(http, newest["access_token"])
    await assert_rejected(http, first["access_token"])
    assert_oauth_error(await refresh(http, newest["refresh_token"]), 400, "invalid_grant")
    family = await TokenFamily.get(tokens__access_hash=sha256(newest["access_token"]))
    assert family.revoked_at is not None
    await assert_acts_as(http, other_session["access_token"], EMAIL)


async def test_revoking_a_spent_refresh_token_also_ends_the_family(http):
    first = await signed_in_user(http, EMAIL)
    newest = assert_token_response(await refresh(http, first["refresh_token"]))

    assert_revoked_ok(await revoke(http, first["refresh_token"], hint="refresh_token"))

    await assert_rejected(http, newest["access_token"])
    assert_oauth_error(await refresh(http, newest["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("token", UNKNOWN_TOKENS)
async def test_revoking_an_unknown_token_is_200_and_changes_nothing(http, token):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client()
    before = await storage_snapshot()

    assert_revoked_ok(await revoke(http, token))
    assert_revoked_ok(await revoke(http, token, auth=(client.client_id, secret)))

    assert await storage_snapshot() == before
    await assert_acts_as(http, tokens["access_token"], EMAIL)


async def test_a_client_cannot_revoke_another_clients_token(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client()
    service_access = await client_token(http, client, secret)
    before = await storage_snapshot()

    # To the caller another client's token is an invalid one: 200, as for an unknown token
    # (RFC 7009 §2.2), and the token is left alone.
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert_revoked_ok(await revoke(http, token, auth=(client.client_id, secret)))
    assert_revoked_ok(await revoke(http, service_access))

    assert await storage_snapshot() == before
    await assert_acts_as(http, tokens["access_token"], EMAIL)
    await assert_acts_as(http, service_access, None)
    assert_token_response(await refresh(http, tokens["refresh_token"]))


async def test_revocation_requires_an_authenticated_client(http):
    tokens = await signed_in_user(http, EMAIL)
    client, _ = await service_client()
    before = await storage_snapshot()

    wrong_secret = await revoke(http, tokens["access_token"], auth=(client.client_id, "wrong"))
    assert_oauth_error(wrong_secret, 401, "invalid_client")
    anonymous = await http.post(REVOKE, data={"token": tokens["access_token"]})
    assert_oauth_error(anonymous, 401, "invalid_client")
    missing_token = await http.post(REVOKE, data={"client_id": FIRST_PARTY_CLIENT_ID})
    assert_oauth_error(missing_token, 400, "invalid_request")

    assert await storage_snapshot() == before
    await assert_acts_as(http, tokens["access_token"], EMAIL)


# -- Introspection ------------------------------------------------------------------------------


async def test_a_first_party_client_sees_a_live_user_token(http, frozen_clock):
    user = await accounts.sign_up(EMAIL, PASSWORD)
    issued_at = frozen_clock.current
    tokens = assert_token_response(await password_login(http, EMAIL))
    client, secret = await service_client(first_party=True)

    access = await introspect(http, tokens["access_token"], (client.client_id, secret))
    assert access == {
        "active": True,
        "client_id": FIRST_PARTY_CLIENT_ID,
        "token_type": "Bearer",
        "scope": "",
        "exp": int((issued_at + timedelta(seconds=3600)).timestamp()),
        "iat": int(issued_at.timestamp()),
        "iss": ISSUER,
        "sub": f"user:{user.id}",
        "username": EMAIL,
    }

    refresh_token = await introspect(http, tokens["refresh_token"], (client.client_id, secret))
    assert refresh_token == {
        **access,
        "token_type": "refresh_token",
        "exp": int((issued_at + timedelta(days=30)).timestamp()),
    }


async def test_a_revoked_token_is_inactive(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client(first_party=True)
    auth = (client.client_id, secret)
    assert (await introspect(http, tokens["access_token"], auth))["active"] is True

    assert_revoked_ok(await revoke(http, tokens["refresh_token"]))

    assert await introspect(http, tokens["access_token"], auth) == {"active": False}
    assert await introspect(http, tokens["refresh_token"], auth) == {"active": False}


async def test_an_expired_token_is_inactive(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)
    tokens = assert_token_response(await password_login(http, EMAIL))
    client, secret = await service_client(first_party=True)
    auth = (client.client_id, secret)

    frozen_clock.advance(seconds=3599)
    assert (await introspect(http, tokens["access_token"], auth))["active"] is True
    await assert_acts_as(http, tokens["access_token"], EMAIL)

    frozen_clock.advance(seconds=2)
    assert await introspect(http, tokens["access_token"], auth) == {"active": False}
    await assert_rejected(http, tokens["access_token"])
    # The refresh token lives 30 days: still active, and it renews the session.
    assert (await introspect(http, tokens["refresh_token"], auth))["active"] is True
    renewed = assert_token_response(await refresh(http, tokens["refresh_token"]))
    await assert_acts_as(http, renewed["access_token"], EMAIL)


@pytest.mark.parametrize("token", UNKNOWN_TOKENS)
async def test_an_unknown_token_is_inactive(http, token):
    client, secret = await service_client(first_party=True)
    assert await introspect(http, token, (client.client_id, secret)) == {"active": False}


async def test_a_public_client_cannot_introspect(http):
    tokens = await signed_in_user(http, EMAIL)
    response = await http.post(
        INTROSPECT, data={"token": tokens["access_token"], "client_id": FIRST_PARTY_CLIENT_ID}
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')


async def test_introspection_requires_the_right_secret_and_a_token(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client(first_party=True)

    wrong_secret = await http.post(
        INTROSPECT, data={"token": tokens["access_token"]}, auth=(client.client_id, "wrong")
    )
    assert_oauth_error(wrong_secret, 401, "invalid_client")
    missing_token = await http.post(INTROSPECT, data={}, auth=(client.client_id, secret))
    assert_oauth_error(missing_token, 400, "invalid_request")


async def test_a_third_party_client_sees_only_its_own_tokens(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client("Inventory sync")
    other, other_secret = await service_client("Billing export")
    own = await client_token(http, client, secret)
    others = await client_token(http, other, other_secret)
    auth = (client.client_id, secret)

    assert await introspect(http, tokens["access_token"], auth) == {"active": False}
    assert await introspect(http, tokens["refresh_token"], auth) == {"active": False}
    assert await introspect(http, others, auth) == {"active": False}

    mine = await introspect(http, own, auth)
    assert set(mine) == {"active", "client_id", "token_type", "scope", "exp", "iat", "iss", "sub"}
    assert mine["exp"] - mine["iat"] == 3600
    assert {k: v for k, v in mine.items() if k not in ("exp", "iat")} == {
        "active": True,
        "client_id": client.client_id,
        "token_type": "Bearer",
        "scope": "",
        "iss": ISSUER,
        "sub": f"client:{client.client_id}",
    }
    # The same token is visible to a first-party client.
    first_party, first_party_secret = await service_client("Operator", first_party=True)
    seen = await introspect(http, others, (first_party.client_id, first_party_secret))
    assert seen["active"] is True
    assert seen["sub"] == f"client:{other.client_id}"


async def test_a_used_refresh_token_is_inactive(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client(first_party=True)
    auth = (client.client_id, secret)
    rotated = await refresh(http, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert await introspect(http, tokens["refresh_token"], auth) == {"active": False}
    fresh = rotated.json()["refresh_token"]
    assert (await introspect(http, fresh, auth))["active"] is True
