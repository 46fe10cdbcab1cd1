"""Queries over HTTP GET: the same limits, cost, authentication and answers as over POST;
mutations refused with 405; caches told what they may keep."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from models.accounts import User
from tests.support.accounts import signed_in_user
from tests.support.graphql import malformed

SESSIONS_PAGE = """
query Sessions($first: Int!) {
  me { sessions(first: $first) { edges { node {
    id clientName clientId createdAt lastUsedAt expiresAt userAgent ipAddress current
  } } } }
}
"""
DEEP = ('{ device(deviceId: "a1") { product { devices { edges { node { product { devices { '
        "edges { node { product { devices { edges { node { id } } } } } } } } } } } } } }")


def assert_request_id(response: httpx.Response) -> None:
    assert len(response.headers["x-request-id"]) >= 16


def varies_on(response: httpx.Response) -> list[str]:
    """The request headers the answer varies on (CORS adds `Origin` to them)."""
    return [name.strip() for name in response.headers["vary"].split(",")]


async def get(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, *,
              token: str | None = None, **params: str) -> httpx.Response:
    """A GraphQL request over GET, as clients send one: `variables` as JSON in the URL."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if variables is not None:
        params["variables"] = json.dumps(variables)
    return await http.get("/graphql", params={"query": query, **params}, headers=headers)


async def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, *,
               token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query, "variables": variables or {}},
                           headers=headers)


@pytest.mark.parametrize(("query", "variables", "first_error"), [
    (SESSIONS_PAGE, {"first": 5}, None),
    (SESSIONS_PAGE, {"first": 100}, {
        "message": "The query costs 1102, more than the limit of 1000. Ask for fewer items per "
                   "page or fewer nested connections.",
        "extensions": {"code": "QUERY_TOO_COSTLY"}}),
    ("{ node(id: [" + " 1" * 2001 + "]) { id } }", None, {
        "message": "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
        "locations": [{"line": 1, "column": 4002}]}),
    ("{ " + " ".join(f"a{i}: me {{ id }}" for i in range(16)) + " }", None,
     {"message": "16 aliases found. Allowed: 15"}),
    ("{ me { id id id id id id } }", None, {
        "message": "`id` is selected more than 5 times in one selection set. Select each "
                   "field once.",
        "extensions": {"code": "QUERY_TOO_BROAD"}}),
    (DEEP, None, {"message": "'anonymous' exceeds maximum operation depth of 10"}),
])
async def test_get_answers_exactly_as_post(http, query, variables, first_error):
    token = (await signed_in_user(http, "ada@example.com"))["access_token"]
    over_get = await get(http, query, variables, token=token)
    over_post = await post(http, query, variables, token=token)
    assert (over_get.status_code, over_post.status_code) == (200, 200)
    assert over_get.json() == over_post.json()
    body = over_get.json()
    if first_error is None:
        assert "errors" not in body
        assert len(body["data"]["me"]["sessions"]["edges"]) == 1
        # me 1 + sessions 1 + 5 * (edges 1 + node 1 + 9 fields)
        assert body["extensions"]["cost"] == {"requestedQueryCost": 57, "maximumAvailable": 1000}
    else:
        assert body["data"] is None
        assert {key: body["errors"][0][key] for key in first_error} == first_error


async def test_get_authenticates_the_bearer_token_as_post_does(http):
    token = (await signed_in_user(http, "ada@example.com"))["access_token"]
    signed_in = await get(http, "{ me { email } }", token=token)
    assert signed_in.json()["data"] == {"me": {"email": "ada@example.com"}}
    assert (await get(http, "{ me { email } }")).json()["data"] == {"me": None}
    refused = await get(http, "{ me { email } }", token="dc_at_unknown")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "Authorization" in varies_on(refused)
    assert refused.json() == {"errors": [{
        "message": "The access token is invalid, expired or revoked.",
        "extensions": {"code": "INVALID_TOKEN"}}]}


async def test_caches_keep_no_answer_to_a_token_and_revalidate_anonymous_ones(http):
    token = (await signed_in_user(http, "ada@example.com"))["access_token"]
    for response in (await get(http, "{ me { id } }", token=token),
                     await post(http, "{ me { id } }", token=token)):
        assert response.headers["cache-control"] == "private, no-store"
        assert "Authorization" in varies_on(response)
    for response in (await get(http, "{ me { id } }"), await post(http, "{ me { id } }")):
        assert response.headers["cache-control"] == "no-cache"
        assert "Authorization" in varies_on(response)


MUTATION_REFUSED = {"errors": [{
    "message": "Mutations are not allowed over GET: send them with POST.",
    "extensions": {"code": "MUTATION_OVER_GET"}}]}
SIGN_UP = ('mutation SignUp { signUp(input: {email: "eve@example.com", '
           'password: "long enough password"}) { userErrors { code } } }')


@pytest.mark.parametrize("params", [
    {"query": SIGN_UP},
    {"query": "query Me { me { id } } " + SIGN_UP, "operationName": "SignUp"},
])
async def test_a_mutation_over_get_gets_405_and_does_not_run(http, params):
    response = await http.get("/graphql", params=params)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["cache-control"] == "no-store"
    assert "Authorization" in varies_on(response)
    assert response.json() == MUTATION_REFUSED
    assert_request_id(response)
    assert await User.filter(email="eve@example.com").count() == 0


async def test_a_subscription_over_get_is_refused_as_over_post(http):
    query = 'subscription { deviceEvents(deviceId: "a1") { missed } }'
    over_get, over_post = await get(http, query), await post(http, query)
    assert over_get.json() == over_post.json() == {"data": None, "errors": [{
        "message": "Subscriptions run over the WebSocket at /graphql (graphql-transport-ws), "
                   "not over HTTP.",
        "extensions": {"code": "SUBSCRIPTION_OVER_HTTP"}}]}


@pytest.mark.parametrize(("params", "message"), [
    ({"variables": "{nope"}, "`variables` in the query string is not valid JSON."),
    ({"variables": "[1]"}, "`variables` in the query string must be a JSON object."),
    ({"variables": "[" * 40 + "]" * 40},
     "`variables` in the query string nests JSON deeper than 32 levels."),
    ({"extensions": "nope"}, "`extensions` in the query string is not valid JSON."),
    ({"extensions": '"persisted"'}, "`extensions` in the query string must be a JSON object."),
])
async def test_bad_json_in_the_query_string_gets_400(http, params, message):
    response = await http.get("/graphql", params={"query": "{ me { id } }", **params})
    assert malformed(response) == (400, message)
    assert "Authorization" in varies_on(response)
    assert_request_id(response)


async def test_get_variables_reach_the_query(http):
    token = (await signed_in_user(http, "ada@example.com"))["access_token"]
    body = (await get(http, SESSIONS_PAGE, {"first": 1}, token=token)).json()
    assert len(body["data"]["me"]["sessions"]["edges"]) == 1
    assert body["extensions"]["cost"] == {"requestedQueryCost": 13, "maximumAvailable": 1000}


@pytest.mark.parametrize("accept", [
    "text/html", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])
async def test_graphiql_is_still_served_on_get_with_accept_html(http, accept):
    response = await http.get("/graphql", headers={"accept": accept})
    assert response.status_code == 200
    assert "<title>Strawberry GraphiQL</title>" in response.text


@pytest.mark.parametrize("accept", ["*/*", "application/json", ""])
async def test_a_get_without_a_query_from_a_non_browser_is_told_it_has_none(http, accept):
    response = await http.get("/graphql", headers={"accept": accept})
    assert malformed(response) == (400, "No GraphQL query found in the request")
