"""The GraphQL conventions every feature relies on: transport rules, limits, cost, masking."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import strawberry
import websockets

from api.app import create_app
from api.graphql.context import Context
from api.graphql.errors import MaskUnexpectedErrors, log_errors
from api.graphql.limits import PREPARED
from api.graphql.schema import build_schema
from core.settings import get_settings
from tests.support.accounts import signed_in_user
from tests.support.graphql import graphql, malformed

SESSIONS_PAGE = """
query Sessions($first: Int!) {
  me { sessions(first: $first) { edges { node {
    id clientName clientId createdAt lastUsedAt expiresAt userAgent ipAddress current
  } } } }
}
"""


async def test_cost_is_reported_in_extensions(http):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(http, SESSIONS_PAGE, {"first": 5}, token=tokens["access_token"])
    # me 1 + sessions 1 + 5 * (edges 1 + node 1 + 9 fields)
    assert body["extensions"]["cost"] == {"requestedQueryCost": 57, "maximumAvailable": 1000}
    assert len(body["data"]["me"]["sessions"]["edges"]) == 1


async def test_over_costly_query_is_refused_before_it_runs(http):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(http, SESSIONS_PAGE, {"first": 100}, token=tokens["access_token"])
    assert body["data"] is None
    assert body["errors"][0]["message"] == (
        "The query costs 1102, more than the limit of 1000. "
        "Ask for fewer items per page or fewer nested connections."
    )
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COSTLY"}


async def test_page_size_over_100_is_a_clear_error(http):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(
        http, "{ me { sessions(first: 101) { edges { cursor } } } }", token=tokens["access_token"]
    )
    assert body["errors"][0]["message"] == "`first` must be between 0 and 100."
    assert body["errors"][0]["extensions"] == {"code": "INVALID_ARGUMENT"}


async def test_too_many_aliases(http):
    aliases = " ".join(f"a{i}: me {{ id }}" for i in range(16))
    body = await graphql(http, f"{{ {aliases} }}")
    assert body == {"data": None, "errors": [{"message": "16 aliases found. Allowed: 15"}]}


async def test_too_many_tokens(http):
    # A long list, not repeated fields: those meet the breadth bound first.
    values = " ".join(["1"] * 2001)
    body = await graphql(http, f"{{ node(id: [{values}]) {{ id }} }}")
    assert body["data"] is None
    assert body["errors"][0]["message"] == (
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    )


async def test_depth_limit_ignores_introspection():
    settings = get_settings().model_copy(update={"graphql_max_depth": 2})
    schema = build_schema(settings)
    context = Context(request=None, response=None, principal=None, request_id="r")
    deep = await schema.execute("{ me { sessions { edges { cursor } } } }", context_value=context)
    assert [e.message for e in deep.errors] == ["'anonymous' exceeds maximum operation depth of 2"]
    introspection = await schema.execute(
        "{ __schema { types { fields { type { ofType { name } } } } } }", context_value=context
    )
    assert introspection.errors is None


async def test_malformed_and_unknown_queries_are_explained(http):
    syntax = await graphql(http, "{ me { ")
    assert syntax["errors"][0]["message"] == "Syntax Error: Expected Name, found <EOF>."
    unknown = await graphql(http, "{ nope }")
    assert unknown["errors"][0]["message"] == (
        "Cannot query field 'nope' on type 'Query'. Did you mean 'node'?"
    )
    response = await http.post(
        "/graphql", content=b"not json", headers={"content-type": "application/json"}
    )
    assert malformed(response) == (400, "Unable to parse request body as JSON")


async def test_graphiql_is_served_in_development(http):
    response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "<title>Strawberry GraphiQL</title>" in response.text


async def test_no_graphiql_in_production():
    settings = get_settings().model_copy(update={"environment": "production"})
    app = create_app(settings, manage_database=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        for accept in ("text/html", "*/*"):
            response = await client.get("/graphql", headers={"accept": accept})
            assert malformed(response) == (400, "No GraphQL query found in the request")


async def test_revoked_or_unknown_token_gets_401(http):
    for header in ("Bearer dc_at_unknown", "Bearer", "Basic abc"):
        response = await http.post(
            "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": header}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_TOKEN"}


async def test_anonymous_sees_public_fields_only(http):
    body = await graphql(http, "{ me { id } }")
    assert body["data"] == {"me": None}


async def test_validation_is_cached_across_requests(http):
    query = "query CacheProbe { me { id email } }"
    await graphql(http, query)
    before = (PREPARED.hits, PREPARED.misses)
    await graphql(http, query)
    after = (PREPARED.hits, PREPARED.misses)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


async def test_unexpected_errors_are_masked_with_the_request_id(caplog):
    @strawberry.type
    class Query:
        @strawberry.field
        def broken(self) -> int:
            raise RuntimeError("database password is hunter2")

        @strawberry.field
        def refused(self) -> int:
            from graphql import GraphQLError

            raise GraphQLError("You asked for something invalid.")

    class Schema(strawberry.Schema):
        def process_errors(self, errors, execution_context=None):
            log_errors(errors)

    schema = Schema(query=Query, extensions=[MaskUnexpectedErrors])
    context = Context(request=None, response=None, principal=None, request_id="req-42")
    with caplog.at_level(logging.ERROR, logger="devicecloud.graphql"):
        result = await schema.execute("{ broken }", context_value=context)
    error = result.errors[0]
    assert error.message == "Internal server error (request ID req-42)."
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "hunter2" in caplog.records[0].exc_text
    refused = await schema.execute("{ refused }", context_value=context)
    assert refused.errors[0].message == "You asked for something invalid."


async def test_subscriptions_only_over_graphql_transport_ws(live_server):
    url = live_server.url.replace("http", "ws") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    async with websockets.connect(url, subprotocols=["graphql-ws"]) as legacy:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await legacy.recv()
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4406,
        "Subprotocol not acceptable",
    )


async def test_the_real_schema_masks_unexpected_errors_with_the_callers_request_id(
    http, caplog, monkeypatch
):
    from api.logs import JsonFormatter
    from auth import accounts

    async def broken(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(accounts, "revoke_all_sessions", broken)
    tokens = await signed_in_user(http, "ada@example.com")
    caplog.handler.setFormatter(JsonFormatter())
    with caplog.at_level(logging.ERROR, logger="devicecloud.graphql"):
        response = await http.post(
            "/graphql",
            json={"query": "mutation { revokeAllSessions(input: {}) { revokedCount } }"},
            headers={"Authorization": f"Bearer {tokens['access_token']}",
                     "X-Request-ID": "trace-77"},
        )
    [error] = response.json()["errors"]
    assert error["message"] == "Internal server error (request ID trace-77)."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "trace-77"}
    assert "hunter2" not in response.text
    [line] = [json.loads(text) for text in caplog.text.splitlines() if text.startswith("{")]
    assert (line["request_id"], line["message"]) == (
        "trace-77", "unexpected error in GraphQL execution"
    )
    assert "hunter2" in line["exception"]
