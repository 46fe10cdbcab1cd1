"""Bad requests to the OAuth endpoints: each gets an RFC 6749 §5.2 error (JSON, never cached),
and none of them changes anything in storage."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import pytest

from auth import accounts
from core.text import REFUSAL
from models.oauth import Token, TokenFamily
from tests.support.accounts import password_login, service_client, signed_in_user
from tests.support.constants import FIRST_PARTY_CLIENT_ID, PASSWORD
from tests.support.oauth import (
    BAD_CREDENTIALS,
    FORM,
    INTROSPECT,
    REVOKE,
    TOKEN,
    WRONG_PASSWORD,
    assert_acts_as,
    assert_oauth_error,
    assert_token_response,
    storage_snapshot,
)

EMAIL = "ada@example.com"
LOGIN = {
    "grant_type": "password",
    "client_id": FIRST_PARTY_CLIENT_ID,
    "username": EMAIL,
    "password": PASSWORD,
}
NOT_A_FORM = "Send the parameters as an application/x-www-form-urlencoded body (RFC 6749 §4)."
TOO_LARGE = {
    "error": "request_too_large",
    "error_description": "The request body is larger than 1048576 bytes.",
}


@pytest.fixture
async def unchanged(http):
    """An account that can sign in, and a check that the test changed nothing at all."""
    await accounts.sign_up(EMAIL, PASSWORD)
    before = await storage_snapshot()
    yield
    assert await storage_snapshot() == before
    # The server is still well and the account still signs in.
    assert_token_response(await password_login(http, EMAIL))


@pytest.mark.parametrize("path", [TOKEN, REVOKE, INTROSPECT])
async def test_a_json_body_is_invalid_request(http, unchanged, path):
    response = await http.post(path, json={**LOGIN, "token": "dc_at_x"})
    assert_oauth_error(response, 400, "invalid_request", NOT_A_FORM)


async def test_a_form_body_without_its_content_type_is_invalid_request(http, unchanged):
    body = "&".join(f"{key}={value}" for key, value in LOGIN.items()).encode()
    response = await http.post(TOKEN, content=body)
    assert_oauth_error(response, 400, "invalid_request", NOT_A_FORM)


async def test_a_missing_grant_type_is_unsupported_grant_type(http, unchanged):
    # Authlib finds no grant for the request and answers unsupported_grant_type, without a
    # description.
    response = await http.post(TOKEN, data={k: v for k, v in LOGIN.items() if k != "grant_type"})
    body = assert_oauth_error(response, 400, "unsupported_grant_type")
    assert body == {"error": "unsupported_grant_type"}


@pytest.mark.parametrize(
    "grant_type",
    ["urn:ietf:params:oauth:grant-type:device_code", "PASSWORD", "", "implicit"],
)
async def test_an_unknown_grant_type_is_unsupported_grant_type(http, unchanged, grant_type):
    response = await http.post(TOKEN, data={**LOGIN, "grant_type": grant_type})
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("missing", ["username", "password"])
async def test_a_missing_credential_is_invalid_request(http, unchanged, missing):
    response = await http.post(TOKEN, data={k: v for k, v in LOGIN.items() if k != missing})
    assert_oauth_error(response, 400, "invalid_request", f"Missing '{missing}' in request.")


async def test_a_refresh_without_a_refresh_token_is_invalid_request(http, unchanged):
    response = await http.post(
        TOKEN, data={"grant_type": "refresh_token", "client_id": FIRST_PARTY_CLIENT_ID}
    )
    assert_oauth_error(response, 400, "invalid_request", "Missing 'refresh_token' in request.")


async def test_a_wrong_client_secret_is_invalid_client(http):
    client, secret = await service_client()
    before = await storage_snapshot()

    basic = await http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(client.client_id, secret + "x")
    )
    # Not told whether the client exists: the methods it may use, as for any failed one.
    assert_oauth_error(basic, 401, "invalid_client", "The client cannot authenticate with "
                       "methods: ['client_secret_basic', 'client_secret_post']")
    # RFC 6749 §5.2: a client that used the Authorization header gets a matching challenge.
    assert basic.headers["www-authenticate"].startswith('Basic error="invalid_client"')

    posted = await http.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": "x",
        },
    )
    assert_oauth_error(posted, 401, "invalid_client")

    garbled = await http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!"}
    )
    assert_oauth_error(garbled, 401, "invalid_client")

    assert await storage_snapshot() == before


async def test_an_unknown_client_is_invalid_client(http, unchanged):
    unknown = "The client does not exist on this server."
    # With HTTP Basic: 401 and a Basic challenge.
    basic = await http.post(
        TOKEN, data={k: v for k, v in LOGIN.items() if k != "client_id"}, auth=("dc_nope", "x")
    )
    assert_oauth_error(basic, 401, "invalid_client", unknown)
    assert basic.headers["www-authenticate"].startswith('Basic error="invalid_client"')
    # As a public client (client_id in the body, no secret), Authlib answers 400: RFC 6749
    # §5.2 requires 401 only when the client used the Authorization header.
    public = await http.post(TOKEN, data={**LOGIN, "client_id": "dc_nope"})
    assert_oauth_error(public, 400, "invalid_client", unknown)
    assert "www-authenticate" not in public.headers
    # No client at all.
    anonymous = await http.post(TOKEN, data={k: v for k, v in LOGIN.items() if k != "client_id"})
    assert_oauth_error(anonymous, 401, "invalid_client")


async def test_a_wrong_password_is_invalid_grant_and_issues_nothing(http):
    other = await signed_in_user(http, "bob@example.com")
    await accounts.sign_up(EMAIL, PASSWORD)
    tokens_before = await Token.all().count()
    families_before = await TokenFamily.all().count()

    wrong = await password_login(http, EMAIL, WRONG_PASSWORD)
    assert_oauth_error(wrong, 400, "invalid_grant", BAD_CREDENTIALS)
    # An unknown account gets exactly the same answer: no account enumeration.
    unknown = await password_login(http, "nobody@example.com", PASSWORD)
    assert_oauth_error(unknown, 400, "invalid_grant", BAD_CREDENTIALS)
    assert unknown.json() == wrong.json()

    assert await Token.all().count() == tokens_before == 1
    assert await TokenFamily.all().count() == families_before == 1
    await assert_acts_as(http, other["access_token"], "bob@example.com")


@pytest.mark.parametrize(
    ("body", "repeated"),
    [
        (b"grant_type=password&grant_type=password", "grant_type"),
        (b"grant_type=password&client_id=devicecloud&client_id=dc_other", "client_id"),
        (b"grant_type=password&password=a&password=b", "password"),
    ],
)
async def test_a_repeated_parameter_is_invalid_request(http, unchanged, body, repeated):
    body += f"&client_id=devicecloud&username={EMAIL}&password={PASSWORD}".encode()
    response = await http.post(TOKEN, content=body, headers=FORM)
    assert_oauth_error(
        response,
        400,
        "invalid_request",
        f"Parameters must not be repeated (RFC 6749 §3.2): {repeated}.",
    )


async def test_a_body_over_one_megabyte_is_413(http, unchanged):
    padding = "x" * (1024 * 1024)
    declared = await http.post(TOKEN, data={**LOGIN, "padding": padding})
    assert declared.status_code == 413
    assert declared.json() == TOO_LARGE

    # Without a Content-Length the limit trips while the form is being read.
    async def chunks() -> AsyncIterator[bytes]:
        yield "&".join(f"{key}={value}" for key, value in LOGIN.items()).encode()
        yield b"&padding=" + b"x" * (1024 * 1024)

    streamed = await http.post(TOKEN, content=chunks(), headers=FORM)
    assert streamed.status_code == 413
    assert streamed.json() == TOO_LARGE


async def test_a_form_with_too_many_fields_is_invalid_request(http, unchanged):
    body = "&".join(f"{key}={value}" for key, value in LOGIN.items())
    body += "".join(f"&f{i}=1" for i in range(1000))
    response = await http.post(TOKEN, content=body.encode(), headers=FORM)
    assert_oauth_error(response, 400, "invalid_request", "The request body could not be parsed.")


@pytest.mark.parametrize(
    "body",
    [
        b"this is not a form",
        b"grant_type%3Dpassword%26client_id%3Ddevicecloud",  # the whole body percent-encoded
        b"grant_type=password;client_id=devicecloud;username=ada@example.com",  # ; separators
        b"grant_type=%zz&client_id=devicecloud",
    ],
)
async def test_a_malformed_form_body_carries_no_grant(http, unchanged, body):
    # The form parser is lenient: what it makes of these holds no valid grant_type.
    response = await http.post(TOKEN, content=body, headers=FORM)
    assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_a_binary_body_is_an_invalid_request(http, unchanged):
    response = await http.post(TOKEN, content=b"\x00\xff\xfe\x80binary", headers=FORM)
    assert_oauth_error(response, 400, "invalid_request", REFUSAL)


async def test_undecodable_credentials_are_wrong_credentials(http):
    await accounts.sign_up(EMAIL, PASSWORD)
    tokens_before = await Token.all().count()

    body = b"grant_type=password&client_id=devicecloud&username=%ff%fe%zz&password=%"
    response = await http.post(TOKEN, content=body, headers=FORM)

    assert_oauth_error(response, 400, "invalid_grant", BAD_CREDENTIALS)
    assert await Token.all().count() == tokens_before
    assert_token_response(await password_login(http, EMAIL))


@pytest.mark.parametrize("path", [TOKEN, REVOKE, INTROSPECT])
@pytest.mark.parametrize("credentials", [b"\xff\xfe:\xff", b"caf\xe9:secret", b"\x80"])
async def test_basic_credentials_that_are_not_utf8_are_invalid_client(
        http, unchanged, path, credentials, caplog):
    header = "Basic " + base64.b64encode(credentials).decode()
    response = await http.post(path, data={"grant_type": "client_credentials", "token": "x"},
                               headers={"Authorization": header})
    assert_oauth_error(response, 401, "invalid_client",
                       "The Authorization header's Basic credentials are not valid: send "
                       "base64 of client_id:client_secret, each form-urlencoded UTF-8.")
    assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')
    assert response.headers["x-request-id"]
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]


@pytest.mark.parametrize("path", [TOKEN, REVOKE, INTROSPECT])
async def test_basic_and_a_secret_in_the_body_at_once_are_invalid_request(http, path):
    client, secret = await service_client()
    response = await http.post(
        path, data={"grant_type": "client_credentials", "token": "x",
                    "client_secret": secret},
        auth=(client.client_id, secret))
    assert_oauth_error(response, 400, "invalid_request",
                       "Authenticate the client one way only (RFC 6749 section 2.3.1): "
                       "HTTP Basic or client_secret in the body, not both.")
