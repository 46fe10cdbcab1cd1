"""GraphQL client libraries as apps use them, with their defaults, against the live server:
urql (queries over GET while they fit in a URL) and graphql-ws (retries on)."""

from __future__ import annotations

import logging

import pytest

from models.organizations import Organization
from tests.support.accounts import signed_in_user
from tests.support.node_clients import run_script
from tests.support.polling import eventually


def graphql_requests(caplog: pytest.LogCaptureFixture, method: str | None = None
                     ) -> list[tuple[str, int]]:
    """The requests to /graphql the server logged: (method, status)."""
    return [(record.method, record.status) for record in caplog.records
            if record.name == "devicecloud.request" and record.path == "/graphql"
            and (method is None or record.method == method)]


async def test_urql_queries_over_get_and_mutates_over_post(http, live_server, caplog):
    token = (await signed_in_user(http, "ada@example.com"))["access_token"]
    with caplog.at_level(logging.INFO, logger="devicecloud.request"):
        results = await run_script("urql-get.mjs", f"{live_server.url}/graphql", token)
    assert results == [
        {"name": "query", "data": {"me": {"email": "ada@example.com"}}, "error": None},
        {"name": "mutation", "data": {"createOrganization": {
            "organization": {"slug": "urql-org"}, "userErrors": []}}, "error": None},
        {"name": "long query", "data": {"me": {"email": "ada@example.com"}}, "error": None},
    ]
    # One after the other: the short query over GET, the mutation and the query too long for
    # a URL over POST.
    assert graphql_requests(caplog) == [("GET", 200), ("POST", 200), ("POST", 200)]
    assert await Organization.filter(slug="urql-org").count() == 1


async def test_graphql_ws_does_not_retry_after_a_bad_token(live_server, caplog):
    url = live_server.url.replace("http://", "ws://") + "/graphql"

    async def logged() -> bool:
        return bool(graphql_requests(caplog, "WS"))

    with caplog.at_level(logging.INFO, logger="devicecloud.request"):
        (result,) = await run_script("graphql-ws-retry.mjs", url, "dc_at_nope",
                                     node_flags=("--experimental-websocket",))
        # The server logs a socket once it has closed: wait for the one the script opened.
        await eventually(logged)
    assert result == {"connecting": 1, "code": 4401,
                      "reason": "The access token is invalid, expired or revoked."}
    assert graphql_requests(caplog, "WS") == [("WS", 101)]
