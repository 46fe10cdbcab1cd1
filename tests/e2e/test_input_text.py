"""Text no database can store (NUL characters, lone surrogates) and other input that would
fail deep inside is refused at the edge with a clear error, on every transport."""

from __future__ import annotations

import json

import httpx
import pytest

from auth.customer_auth import customer_token_lifetime
from auth.redirect_uris import validate_redirect_uri
from core.errors import InvalidInput
from core.text import REFUSAL
from models.oauth import ClientType, OAuthClient
from models.organizations import Organization
from tests.support.accounts import access_token, make_user
from tests.support.graphql import graphql
from tests.support.oauth import assert_oauth_error

BAD_TEXT = ["a\x00b", "\ud800"]


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_graphql_refuses_unstorable_variables(http: httpx.AsyncClient, bad: str) -> None:
    await make_user("ada@example.com")
    token = await access_token("ada@example.com")
    query = "mutation($name: String!) { createOrganization(input: {name: $name}) " \
            "{ userErrors { code } } }"
    # JSON escapes (\u0000, \ud800) as a client library writes them.
    response = await http.post(
        "/graphql", content=json.dumps({"query": query, "variables": {"name": bad}}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    body = response.json()
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (REFUSAL, {"code": "INVALID_TEXT"})]
    assert await Organization.all().count() == 0


async def test_graphql_refuses_unstorable_literals(http: httpx.AsyncClient) -> None:
    await make_user("ada@example.com")
    token = await access_token("ada@example.com")
    query = 'mutation { createOrganization(input: {name: "a\\u0000b"}) { userErrors { code } } }'
    body = await graphql(http, query, token=token)
    assert [e["extensions"] for e in body["errors"]] == [{"code": "INVALID_TEXT"}]
    assert await Organization.all().count() == 0


async def test_the_token_endpoint_refuses_unstorable_parameters(http: httpx.AsyncClient) -> None:
    for form in ({"grant_type": "password", "client_id": "devicecloud",
                  "username": "ada\x00@example.com", "password": "x"},
                 {"grant_type": "client_credentials", "client_id": "a\x00b"}):
        response = await http.post("/oauth/token", data=form)
        assert_oauth_error(response, 400, "invalid_request", REFUSAL)


async def test_the_authorization_endpoint_refuses_unstorable_parameters(
    http: httpx.AsyncClient
) -> None:
    response = await http.get("/oauth/authorize", params={
        "response_type": "code", "client_id": "a\x00b", "redirect_uri": "https://a.example/cb"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert REFUSAL in response.text


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("https://a.example/cb\r\nSet-Cookie: x=1", "contains spaces or control characters"),
        ("https://a.example/c b", "contains spaces or control characters"),
        ("https://a.example/" + "x" * 2000, "is longer than 2000 characters"),
    ],
)
def test_redirect_uris_are_plain_and_bounded(uri: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_redirect_uri(uri, ClientType.WEB)
    assert refused.value.message == f"The redirect URI '{uri[:200]}' {problem}."
    assert validate_redirect_uri("https://a.example/" + "x" * 1982, ClientType.WEB)


@pytest.mark.parametrize("requested", ["9" * 19, "9" * 5000, "-1", "0", "1e3"])
def test_a_token_lifetime_is_a_bounded_whole_number(requested: str) -> None:
    from authlib.oauth2.rfc6749.errors import InvalidRequestError

    client = OAuthClient(max_token_lifetime=7200)
    with pytest.raises(InvalidRequestError):
        customer_token_lifetime(client, requested, 3600)
    assert customer_token_lifetime(client, "9" * 18, 3600) == 7200

