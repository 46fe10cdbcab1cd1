"""The token endpoint end to end: password and refresh grants through an independent client
library (requests-oauthlib), refresh-token rotation and reuse detection, client_credentials,
hashed storage, and the RFC 8414 metadata."""

from __future__ import annotations

import asyncio
import base64
import re
from urllib.parse import parse_qs

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient

from auth import accounts
from models.oauth import OAuthClient, Token, TokenFamily
from tests.support.accounts import client_token, password_login, service_client, signed_in_user
from tests.support.constants import FIRST_PARTY_CLIENT_ID, PASSWORD
from tests.support.oauth import (
    ME,
    TOKEN,
    assert_acts_as,
    assert_oauth_error,
    assert_rejected,
    assert_token_response,
    refresh,
    sha256,
    storage_snapshot,
)

EMAIL = "ada@example.com"
# 256 random bits in URL-safe base64 (43 characters), after the kind prefix.
ACCESS_TOKEN = re.compile(r"^dc_at_[A-Za-z0-9_-]{43}$")
REFRESH_TOKEN = re.compile(r"^dc_rt_[A-Za-z0-9_-]{43}$")


def form(body: str | bytes | None) -> dict[str, list[str]]:
    assert isinstance(body, str), body
    return parse_qs(body, keep_blank_values=True, strict_parsing=True)


async def test_password_grant_and_refresh_through_requests_oauthlib(live_server, oauth2_session):
    await accounts.sign_up(EMAIL, PASSWORD)
    token_url = live_server.url + TOKEN
    session, sent = oauth2_session(LegacyApplicationClient(client_id=FIRST_PARTY_CLIENT_ID))

    token = await asyncio.to_thread(
        session.fetch_token,
        token_url,
        username=EMAIL,
        password=PASSWORD,
        include_client_id=True,
    )

    # A public client authenticates with "none": its client_id in the body, no Basic header.
    assert "Authorization" not in sent[-1].headers
    assert form(sent[-1].body) == {
        "grant_type": ["password"],
        "username": [EMAIL],
        "password": [PASSWORD],
        "client_id": [FIRST_PARTY_CLIENT_ID],
    }
    assert ACCESS_TOKEN.match(token["access_token"])
    assert REFRESH_TOKEN.match(token["refresh_token"])
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert "scope" not in token

    # The session sends the access token as a bearer token; GraphQL sees the user.
    response = await asyncio.to_thread(
        session.post, live_server.url + "/graphql", json={"query": ME}
    )
    assert sent[-1].headers["Authorization"] == f"Bearer {token['access_token']}"
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"me": {"email": EMAIL}}

    # requests-oauthlib sends refresh_token(..., client_id=...) as a body parameter.
    refreshed = await asyncio.to_thread(
        session.refresh_token, token_url, client_id=FIRST_PARTY_CLIENT_ID
    )

    assert "Authorization" not in sent[-1].headers
    assert form(sent[-1].body) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [token["refresh_token"]],
        "client_id": [FIRST_PARTY_CLIENT_ID],
    }
    assert ACCESS_TOKEN.match(refreshed["access_token"])
    assert REFRESH_TOKEN.match(refreshed["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["token_type"] == "Bearer"
    assert refreshed["expires_in"] == 3600

    response = await asyncio.to_thread(
        session.post, live_server.url + "/graphql", json={"query": ME}
    )
    assert sent[-1].headers["Authorization"] == f"Bearer {refreshed['access_token']}"
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"me": {"email": EMAIL}}


async def test_the_token_response_shape(http):
    await accounts.sign_up(EMAIL, PASSWORD)
    response = await password_login(http, EMAIL)
    tokens = assert_token_response(response)
    assert response.headers["content-type"] == "application/json"
    assert ACCESS_TOKEN.match(tokens["access_token"])
    assert REFRESH_TOKEN.match(tokens["refresh_token"])
    await assert_acts_as(http, tokens["access_token"], EMAIL)


async def test_every_refresh_returns_a_new_refresh_token(http):
    current = await signed_in_user(http, EMAIL)
    refresh_tokens = {current["refresh_token"]}
    access_tokens = {current["access_token"]}

    for _ in range(3):
        current = assert_token_response(await refresh(http, current["refresh_token"]))
        assert current["refresh_token"] not in refresh_tokens
        assert current["access_token"] not in access_tokens
        refresh_tokens.add(current["refresh_token"])
        access_tokens.add(current["access_token"])
        await assert_acts_as(http, current["access_token"], EMAIL)

    # One sign-in is one family (one session), holding one row per issued pair.
    family = await TokenFamily.get()
    assert family.revoked_at is None
    assert family.grant_type == "password"
    assert await Token.filter(family_id=family.id).count() == 4


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(http):
    first = await signed_in_user(http, EMAIL)
    second = assert_token_response(await refresh(http, first["refresh_token"]))
    newest = assert_token_response(await refresh(http, second["refresh_token"]))
    await assert_acts_as(http, newest["access_token"], EMAIL)
    other_session = assert_token_response(await password_login(http, EMAIL))

    replay = await refresh(http, first["refresh_token"])

    assert_oauth_error(replay, 400, "invalid_grant")
    # Every token of the family is dead, the newest included ...
    for tokens in (first, second, newest):
        await assert_rejected(http, tokens["access_token"])
    assert_oauth_error(await refresh(http, newest["refresh_token"]), 400, "invalid_grant")
    assert_oauth_error(await refresh(http, second["refresh_token"]), 400, "invalid_grant")
    family = await TokenFamily.get(tokens__access_hash=sha256(newest["access_token"]))
    assert family.revoked_at is not None
    # ... and only that family: the user's other session goes on.
    await assert_acts_as(http, other_session["access_token"], EMAIL)
    assert_token_response(await refresh(http, other_session["refresh_token"]))


async def test_an_unknown_refresh_token_is_refused_and_changes_nothing(http):
    tokens = await signed_in_user(http, EMAIL)
    before = await storage_snapshot()

    for bogus in ("dc_rt_" + "A" * 43, tokens["access_token"], "not-a-token"):
        assert_oauth_error(await refresh(http, bogus), 400, "invalid_grant")

    assert await storage_snapshot() == before
    await assert_acts_as(http, tokens["access_token"], EMAIL)
    assert_token_response(await refresh(http, tokens["refresh_token"]))


async def test_client_credentials_with_http_basic_acts_for_the_client(http):
    client, secret = await service_client()

    response = await http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
    )

    tokens = assert_token_response(response, with_refresh=False)
    assert ACCESS_TOKEN.match(tokens["access_token"])
    await assert_acts_as(http, tokens["access_token"], None)
    family = await TokenFamily.get()
    assert (family.client_id, family.user_id, family.grant_type) == (
        client.id,
        None,
        "client_credentials",
    )
    row = await Token.get(family_id=family.id)
    assert (row.refresh_hash, row.refresh_expires_at) == (None, None)


async def test_client_credentials_with_the_secret_in_the_body(http):
    client, secret = await service_client()
    response = await http.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    tokens = assert_token_response(response, with_refresh=False)
    await assert_acts_as(http, tokens["access_token"], None)


async def test_client_credentials_through_requests_oauthlib(live_server, oauth2_session):
    client, secret = await service_client()
    session, sent = oauth2_session(BackendApplicationClient(client_id=client.client_id))

    token = await asyncio.to_thread(
        session.fetch_token, live_server.url + TOKEN, client_secret=secret
    )

    # requests-oauthlib authenticates a confidential client with HTTP Basic.
    credentials = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    assert sent[-1].headers["Authorization"] == f"Basic {credentials}"
    assert form(sent[-1].body) == {"grant_type": ["client_credentials"]}
    assert ACCESS_TOKEN.match(token["access_token"])
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert "refresh_token" not in token

    response = await asyncio.to_thread(
        session.post, live_server.url + "/graphql", json={"query": ME}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"me": None}


async def test_the_public_client_cannot_use_client_credentials(http):
    before = await storage_snapshot()

    # client_credentials requires a secret (client_secret_basic or _post): a public client
    # cannot authenticate at all, so it is invalid_client, 401 with a Basic challenge.
    anonymous = await http.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": FIRST_PARTY_CLIENT_ID}
    )
    assert_oauth_error(anonymous, 401, "invalid_client")
    assert anonymous.headers["www-authenticate"].startswith('Basic error="invalid_client"')

    guessed = await http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(FIRST_PARTY_CLIENT_ID, "guess")
    )
    assert_oauth_error(guessed, 401, "invalid_client")
    assert guessed.headers["www-authenticate"].startswith('Basic error="invalid_client"')

    assert await storage_snapshot() == before


async def test_a_service_client_cannot_use_the_password_grant(http):
    await accounts.sign_up(EMAIL, PASSWORD)
    client, secret = await service_client()
    before = await storage_snapshot()

    response = await http.post(
        TOKEN,
        data={"grant_type": "password", "username": EMAIL, "password": PASSWORD},
        auth=(client.client_id, secret),
    )

    assert_oauth_error(
        response,
        400,
        "unauthorized_client",
        "The client is not authorized to use 'grant_type=password'",
    )
    assert await storage_snapshot() == before


async def test_tokens_and_secrets_are_stored_only_as_sha256_hashes(http):
    tokens = await signed_in_user(http, EMAIL)
    client, secret = await service_client()
    service_access = await client_token(http, client, secret)

    user_row = await Token.get(access_hash=sha256(tokens["access_token"]))
    assert user_row.refresh_hash == sha256(tokens["refresh_token"])
    service_row = await Token.get(access_hash=sha256(service_access))
    assert service_row.refresh_hash is None
    assert (await OAuthClient.get(id=client.id)).secret_hash == sha256(secret)

    stored = repr(await storage_snapshot())
    for raw in (tokens["access_token"], tokens["refresh_token"], service_access, secret):
        random_part = raw[len("dc_xx_") :]
        assert random_part not in stored


async def test_authorization_server_metadata(http):
    """RFC 8414 and OpenID Connect Discovery serve one document, valid for both."""
    response = await http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata == {
        "issuer": "http://127.0.0.1",
        "authorization_endpoint": "http://127.0.0.1/oauth/authorize",
        "token_endpoint": "http://127.0.0.1/oauth/token",
        "userinfo_endpoint": "http://127.0.0.1/oauth/userinfo",
        "jwks_uri": "http://127.0.0.1/oauth/jwks",
        "revocation_endpoint": "http://127.0.0.1/oauth/revoke",
        "introspection_endpoint": "http://127.0.0.1/oauth/introspect",
        "grant_types_supported": [
            "authorization_code", "password", "refresh_token", "client_credentials"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": ["openid", "profile", "email", "devices:read", "events:read",
                             "devices:call"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                             "at_hash", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
    }
    discovery = await http.get("/.well-known/openid-configuration")
    assert (discovery.status_code, discovery.json()) == (200, metadata)
    AuthorizationServerMetadata(metadata).validate()
    OpenIDProviderMetadata(metadata).validate()


async def test_a_refresh_refused_for_bad_input_leaves_the_token_usable(http):
    tokens = await signed_in_user(http, "ada@example.com")
    refused = await http.post(TOKEN, data={
        "grant_type": "refresh_token", "client_id": FIRST_PARTY_CLIENT_ID,
        "refresh_token": tokens["refresh_token"], "scope": "devices:write"})
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_scope")
    retried = await refresh(http, tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    await assert_acts_as(http, retried.json()["access_token"], "ada@example.com")


UNKNOWN_SCOPE = ("Unknown scope; the scopes are openid, profile, email, devices:read, events:read, "
                 "devices:call.")
NOT_REGISTERED = "The client is not registered for the requested scope."


@pytest.mark.parametrize(
    ("scope", "description"),
    [("admin", UNKNOWN_SCOPE), ("devices:read admin", UNKNOWN_SCOPE),
     ("devices:read", NOT_REGISTERED)],
)
async def test_client_credentials_issue_only_the_scopes_the_client_may_have(
        http, scope, description):
    client, secret = await service_client()
    response = await http.post(
        TOKEN, data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_scope", description)
    assert await TokenFamily.all().count() == 0
