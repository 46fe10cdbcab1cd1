"""Inputs an attacker sends: each gets a 4xx or a GraphQL error with a stable code, a message a
person can act on, a request ID, and nothing above WARNING in the log; none stalls the server."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from graphql import GraphQLError, parse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.graphql.context import Context
from api.graphql.limits import MAX_REPEATS, BoundedParser, Breadth
from api.graphql.schema import Schema, build_schema
from auth import tokens as auth_tokens
from auth.principals import AnyPrincipal
from core.settings import Environment, get_settings
from tests.support.accounts import signed_in_user
from tests.support.graphql import gid, graphql, malformed
from tests.support.live import graphql_ws
from tests.support.polling import receive
from tests.support.servers import LiveServer

REPEATS = " ".join(["me { id }"] * 489)


def stalling_query() -> str:
    """The stalling query of the report, with a fresh operation name each time."""
    return f"query Q{secrets.token_hex(8)} {{ {REPEATS} }}"


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if anything above WARNING was logged."""
    with caplog.at_level(logging.INFO):
        yield
    loud = [r for r in caplog.records if r.levelno > logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]


def assert_request_id(response: httpx.Response) -> None:
    assert len(response.headers["x-request-id"]) >= 16


# --- A. Validation cannot be made expensive --------------------------------------------------


async def test_repeated_fields_are_refused_before_validation(http, quiet_log):
    response = await http.post("/graphql", json={"query": stalling_query()})
    assert response.status_code == 200
    assert_request_id(response)
    assert response.json() == {"data": None, "errors": [{
        "message": f"`me` is selected more than {MAX_REPEATS} times in one selection set. "
                   "Select each field once.",
        "extensions": {"code": "QUERY_TOO_BROAD"},
    }]}


def test_parsing_stops_at_the_bound():
    query = stalling_query()
    parser = BoundedParser(query, 2000)
    with pytest.raises(GraphQLError, match="more than 5 times"):
        parser.parse_document()
    # It stopped at the seventh `me`, having read six: the 482 after it were never read.
    mes = [match.start() for match in re.finditer(r"\bme\b", query)]
    assert parser._lexer.token.start == mes[6]


def test_the_bound_refuses_a_parsed_stalling_document():
    assert Breadth(parse(stalling_query())).error is not None


async def test_healthz_answers_while_stalling_queries_are_refused(live_server: LiveServer):
    """Four clients send the stalling query five times each while a fifth, in a thread of its
    own (its work does not wait for the server's event loop), polls `/healthz`."""
    # The app freezes its start-up heap; this process also carries what every earlier test
    # left, which a server process does not, and whose full collections would be measured here.
    gc.freeze()
    attacking = threading.Event()
    attacking.set()

    def poll() -> float:
        slowest = 0.0
        with httpx.Client(base_url=live_server.url, timeout=30) as probe:
            while attacking.is_set():
                started = time.perf_counter()
                assert probe.get("/healthz").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
        return slowest

    async with live_server.client() as attacker:
        async def attack() -> None:
            for _ in range(5):
                response = await attacker.post("/graphql", json={"query": stalling_query()})
                assert response.json()["errors"][0]["extensions"] == {"code": "QUERY_TOO_BROAD"}

        polling = asyncio.create_task(asyncio.to_thread(poll))
        try:
            await asyncio.gather(*(attack() for _ in range(4)))
        finally:
            attacking.clear()
        assert await polling < 0.1


@pytest.mark.parametrize(("query", "message"), [
    ("{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }",
     "A selection set has more than 100 fields. Split the query."),
    ("fragment F on Query { me { id } } { ...F " + " ".join(["me { id }"] * 5) + " }",
     "`me` is selected more than 5 times in one selection set. Select each field once."),
    ("{ " + " ".join("... on Query { me { id } }" for _ in range(6)) + " }",
     "`me` is selected more than 5 times in one selection set. Select each field once."),
    ("{ " + " ".join(f"x{j}: me {{ " + " ".join(f"a{i}: id" for i in range(90)) + " }"
                     for j in range(6)) + " }",
     "The query has more than 500 fields. Split it."),
])
async def test_breadth_counts_fragments(http, query, message):
    body = await graphql(http, query)
    assert body["errors"] == [{"message": message, "extensions": {"code": "QUERY_TOO_BROAD"}}]


async def test_the_bound_holds_over_the_websocket(live_server: LiveServer):
    async with graphql_ws(live_server, None) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": stalling_query()}}))
        message = await receive(ws)
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"] == {"code": "QUERY_TOO_BROAD"}


# --- B. Bodies, variables, uploads -------------------------------------------------------------


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b'"x"', "application/json", "The request body must be a JSON object."),
    (b"null", "application/json", "The request body must be a JSON object."),
    (b"42", "application/json", "The request body must be a JSON object."),
    (b'{"query": "{ me { id } }", "variables": {"a": ' + b'{"b": ' * 5000 + b"1"
     + b"}" * 5001 + b"}", "application/json",
     "The request body nests JSON deeper than 32 levels."),
    (b'{"query": "{ me { id } }", "x": "\xff\xfe"}', "application/json",
     "The request body is not valid UTF-8."),
])
async def test_malformed_json_bodies_get_400(http, quiet_log, body, content_type, message):
    response = await http.post("/graphql", content=body, headers={"content-type": content_type})
    assert malformed(response) == (400, message)
    assert_request_id(response)


@pytest.mark.parametrize(("operations", "files_map", "message"), [
    ('{"query": "mutation($f: Upload!) { x }", "variables": {"f": null}}', "[1]",
     "`map` must be a JSON object of file names to lists of variable paths."),
    ('{"query": "{ me { id } }", "variables": {"a": {"b": {"c": null}}}}',
     '{"0": ["variables.a.b.c.d.e"]}', "File(s) missing in form data"),
    ('[{"query": "{ me { id } }"}]', '{"0": ["0.variables.f"]}',
     "`operations` must be a JSON object."),
    ('{"query": {"query": "{ me { id } }"}}', "{}",
     "The GraphQL operation's `query` must be a string or null, if provided."),
])
async def test_malformed_multipart_gets_400(http, quiet_log, operations, files_map, message):
    response = await http.post(
        "/graphql",
        data={"operations": operations, "map": files_map},
        files={"0": ("a.csv", b"x", "text/csv")},
    )
    assert malformed(response) == (400, message)
    assert_request_id(response)


async def test_long_product_slug_in_the_event_stream_gets_400(http, quiet_log):
    tokens = await signed_in_user(http, "ada@example.com")
    response = await http.get(f"/v1/products/{'a' * 70}/events",
                              headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_SLUG"}
    assert_request_id(response)


# --- C. Arguments that reached the database, node types, subscriptions over HTTP ---------------


@pytest.mark.parametrize("query", [
    '{ product(idOrSlug: "%s") { id } }' % ("a" * 70),
    '{ organization(slug: "%s") { id } }' % ("a" * 70),
])
async def test_long_slugs_are_refused_before_any_query(http, quiet_log, query):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(http, query, token=tokens["access_token"])
    assert body["errors"][0]["message"] == "A slug is at most 63 characters."
    assert body["errors"][0]["extensions"] == {"code": "INVALID_SLUG"}


@pytest.mark.parametrize("type_name", ["Query", "OAuthClient", "App", "ClaimCode", "Nope"])
async def test_node_of_a_type_that_is_not_a_node(http, quiet_log, type_name):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(http, "query($id: ID!) { node(id: $id) { id } }",
                         {"id": gid(type_name, 1)}, token=tokens["access_token"])
    assert body["errors"][0]["message"] == f"{type_name} is not a type of node."
    assert body["errors"][0]["extensions"] == {"code": "INVALID_ID"}


SUBSCRIPTION = 'subscription { productEvents(productId: "x") { __typename } }'


async def test_subscriptions_over_http_are_refused(http, quiet_log):
    posted = await http.post("/graphql", json={"query": SUBSCRIPTION})
    got = await http.get("/graphql", params={"query": SUBSCRIPTION})
    for response in (posted, got):
        assert response.status_code == 200
        assert response.json()["errors"] == [{
            "message": "Subscriptions run over the WebSocket at /graphql (graphql-transport-ws), "
                       "not over HTTP.",
            "extensions": {"code": "SUBSCRIPTION_OVER_HTTP"},
        }]
        assert_request_id(response)


async def test_deeply_nested_connection_init_closes_with_4400(live_server: LiveServer, quiet_log):
    url = live_server.url.replace("http://", "ws://") + "/graphql"
    payload = '{"a": ' * 5000 + "1" + "}" * 5000
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send('{"type": "connection_init", "payload": ' + payload + "}")
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


async def test_string_subscribe_payload_closes_with_4400(live_server: LiveServer, quiet_log):
    async with graphql_ws(live_server, None) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": "{ me { id } }"}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


# --- E. Production defaults ----------------------------------------------------------------


def _schema(environment: Environment) -> Schema:
    return build_schema(get_settings().model_copy(update={"environment": environment}))


def _context(principal: AnyPrincipal = None) -> Context:
    return Context(request=None, response=None, principal=principal, request_id="r")


INTROSPECTION = "{ __schema { queryType { name } } }"
ORDERED = ("query($o: DeviceOrder!) "
           '{ product(idOrSlug: "x") { devices(orderBy: $o) { __typename } } }')


async def test_production_refuses_anonymous_introspection_and_hides_suggestions():
    schema = _schema(Environment.PRODUCTION)
    refused = await schema.execute(INTROSPECTION, context_value=_context())
    assert [(e.message, e.extensions) for e in refused.errors or []] == [(
        "Introspection needs an access token: sign in, or use the published schema.graphql.",
        {"code": "INTROSPECTION_DISABLED"},
    )]
    typo = await schema.execute("{ nodes }", context_value=_context())
    assert [e.message for e in typo.errors or []] == ["Cannot query field 'nodes' on type 'Query'."]
    bad_value = await schema.execute(ORDERED, variable_values={"o": "DEVICE"},
                                     context_value=_context())
    assert [e.message for e in bad_value.errors or []] == [
        "Variable '$o' has invalid value: Value 'DEVICE' does not exist in "
        "'DeviceOrder' enum."
    ]
    assert (await schema.execute("{ __typename }", context_value=_context())).errors is None


async def test_production_keeps_introspection_for_signed_in_callers(http):
    tokens = await signed_in_user(http, "ada@example.com")
    principal = await auth_tokens.authenticate(tokens["access_token"])
    schema = _schema(Environment.PRODUCTION)
    result = await schema.execute(INTROSPECTION, context_value=_context(principal))
    assert result.errors is None


async def test_development_keeps_introspection_and_suggestions():
    schema = _schema(Environment.DEVELOPMENT)
    assert (await schema.execute(INTROSPECTION, context_value=_context())).errors is None
    typo = await schema.execute("{ nodes }", context_value=_context())
    assert [e.message for e in typo.errors or []] == [
        "Cannot query field 'nodes' on type 'Query'. Did you mean 'node'?"
    ]
    bad_value = await schema.execute(ORDERED, variable_values={"o": "DEVICE"},
                                     context_value=_context())
    assert [e.message for e in bad_value.errors or []] == [
        "Variable '$o' has invalid value: Value 'DEVICE' does not exist in "
        "'DeviceOrder' enum. Did you mean the enum value 'DEVICE_ID'?"
    ]
