"""How a graphql-transport-ws socket authenticates: the token in connection_init in the forms
clients send it, or in the upgrade request's `Authorization` header; what closes it, with
which code; what an anonymous socket is told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from auth import tokens
from core.settings import get_settings
from fleet import events
from tests.support.live import publish, subscribe, until_subscribed
from tests.support.matrix import DEVICE_EVENTS
from tests.support.polling import receive
from tests.support.servers import Clock, LiveServer
from tests.support.worlds import D1, EventWorld

ACK = {"type": "connection_ack"}
INVALID = (4401, "The access token is invalid, expired or revoked.")
TWO_TOKENS = (4400, "Two different access tokens: send one.")
NOT_A_STRING = (4400, "The access token in connection_init must be a string.")
NOT_BEARER = (4401, "The Authorization header is not Bearer <token>.")


@asynccontextmanager
async def socket(live_server: LiveServer, header: str | None = None
                 ) -> AsyncIterator[ClientConnection]:
    url = live_server.url.replace("http://", "ws://") + "/graphql"
    headers = {"Authorization": header} if header is not None else None
    async with connect(url, subprotocols=["graphql-transport-ws"],
                       additional_headers=headers) as ws:
        yield ws


async def initialised(ws: ClientConnection, payload: Any) -> dict[str, Any] | tuple[int, str]:
    """The server's answer to connection_init: its message, or the close code and reason."""
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    try:
        return await receive(ws)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, closed.rcvd.reason


async def delivers_d1s_event(ws: ClientConnection, world: EventWorld) -> None:
    """The socket's subscription to D1 (only thermostat's team and server may watch it) starts
    and delivers an event D1 publishes."""
    await subscribe(ws, DEVICE_EVENTS, id=D1)
    await until_subscribed(events.device_channel(D1))
    await publish(world.product, D1, "live", "1")
    message = await receive(ws)
    assert (message["id"], message["type"], message["payload"]["data"]) == ("1", "next", {
        "deviceEvents": {"missed": 0, "event": {"name": "live", "deviceId": D1}}})


@pytest.mark.parametrize("form", [
    lambda t: {"authorization": f"Bearer {t}"},
    lambda t: {"Authorization": f"Bearer {t}"},
    lambda t: {"headers": {"Authorization": f"Bearer {t}"}},
    lambda t: {"headers": {"authorization": f"Bearer {t}"}},
    lambda t: {"authToken": t},
    lambda t: {"authorization": t},
    lambda t: {"Authorization": t},
    lambda t: {"headers": {"Authorization": t}},
    lambda t: {"authToken": f"Bearer {t}"},
    lambda t: {"authorization": f"bearer  {t} "},
    lambda t: {"authorization": f"Bearer {t}", "authToken": t, "headers": {"Authorization": t}},
], ids=["authorization", "Authorization", "headers.Authorization", "headers.authorization",
        "authToken", "bare authorization", "bare Authorization", "bare headers.Authorization",
        "authToken with Bearer", "lowercase scheme and spaces", "the same token thrice"])
async def test_each_form_of_connection_init_authenticates_the_socket(
    live_server, event_world: EventWorld, form
) -> None:
    token = await event_world.token()
    async with socket(live_server) as ws:
        assert await initialised(ws, form(token)) == ACK
        await delivers_d1s_event(ws, event_world)
    await until_subscribed(events.device_channel(D1), 0)


@pytest.mark.parametrize("payload", [None, {}, lambda t: {"authorization": f"Bearer {t}"}])
async def test_the_upgrade_requests_authorization_header_authenticates_the_socket(
    live_server, event_world: EventWorld, payload
) -> None:
    token = await event_world.token()
    async with socket(live_server, f"Bearer {token}") as ws:
        assert await initialised(ws, payload(token) if callable(payload) else payload) == ACK
        await delivers_d1s_event(ws, event_world)


@pytest.mark.parametrize("form", [
    {"authorization": "Bearer dc_at_nope"},
    {"Authorization": "dc_at_nope"},
    {"headers": {"authorization": "Bearer dc_at_nope"}},
    {"authToken": "dc_at_nope"},
    {"authorization": "Bearer"},
    {"authorization": "Basic dXNlcjpwYXNz"},
])
async def test_a_bad_token_closes_the_socket_with_4401(live_server, form) -> None:
    async with socket(live_server) as ws:
        assert await initialised(ws, form) == INVALID


async def test_a_bad_token_in_the_upgrade_header_closes_the_socket_with_4401(live_server) -> None:
    async with socket(live_server, "Bearer dc_at_nope") as ws:
        assert await initialised(ws, {}) == INVALID
    async with socket(live_server, "Basic dXNlcjpwYXNz") as ws:
        assert await initialised(ws, {}) == NOT_BEARER


async def test_a_revoked_or_expired_token_closes_the_socket_with_4401(
    live_server, event_world: EventWorld, frozen_clock: Clock
) -> None:
    revoked = await event_world.token()
    found = await tokens.find_access_token(revoked)
    assert found is not None
    await tokens.revoke_token(found)
    async with socket(live_server) as ws:
        assert await initialised(ws, {"authToken": revoked}) == INVALID
    expired = await event_world.token()
    frozen_clock.advance(seconds=get_settings().access_token_lifetime)
    async with socket(live_server, f"Bearer {expired}") as ws:
        assert await initialised(ws, {}) == INVALID


async def test_two_different_tokens_close_the_socket_with_4400(
    live_server, event_world: EventWorld
) -> None:
    developer, viewer = await event_world.token("DEVELOPER"), await event_world.token("VIEWER")
    async with socket(live_server) as ws:
        assert await initialised(ws, {"authorization": f"Bearer {developer}",
                                      "authToken": viewer}) == TWO_TOKENS
    async with socket(live_server, f"Bearer {developer}") as ws:
        assert await initialised(ws, {"headers": {"Authorization": viewer}}) == TWO_TOKENS
    async with socket(live_server) as ws:
        assert await initialised(ws, {"headers": {"Authorization": developer,
                                                  "authorization": viewer}}) == TWO_TOKENS


@pytest.mark.parametrize("payload", [{"authToken": 42}, {"authorization": {"token": "x"}},
                                     {"headers": {"Authorization": ["Bearer x"]}}])
async def test_a_token_that_is_not_a_string_closes_the_socket_with_4400(live_server, payload
                                                                        ) -> None:
    async with socket(live_server) as ws:
        assert await initialised(ws, payload) == NOT_A_STRING


@pytest.mark.parametrize("shape", ["token", "bearer", "number", "list", "boolean"])
async def test_a_payload_that_is_not_an_object_closes_the_socket_with_4400(
    live_server, event_world: EventWorld, shape
) -> None:
    """The protocol's payload is an object (or null): a live token alone is not one."""
    token = await event_world.token()
    payload = {"token": token, "bearer": f"Bearer {token}", "number": 42, "list": [token],
               "boolean": True}[shape]
    async with socket(live_server) as ws:
        assert await initialised(ws, payload) == (4400, "Invalid connection init payload")


@pytest.mark.parametrize("payload", [
    None, {}, {"token": "dc_at_nope"}, {"headers": "Bearer dc_at_nope"}, {"authorization": ""},
    {"authToken": None}, {"headers": {"X-Api-Key": "dc_at_nope"}},
])
async def test_a_payload_without_a_token_is_anonymous_and_told_to_authenticate(
    live_server, event_world: EventWorld, payload
) -> None:
    async with socket(live_server) as ws:
        assert await initialised(ws, payload) == ACK
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        assert await receive(ws) == {"id": "1", "type": "error", "payload": [{
            "message": "An access token is required to watch events: send it in "
                       "connection_init's payload as authorization, Authorization, authToken "
                       'or headers.Authorization ("Bearer <token>" or the token alone), or as '
                       "the upgrade request's Authorization: Bearer header.",
            "locations": [{"line": 1, "column": 30}],
            "path": ["deviceEvents"],
            "extensions": {"code": "UNAUTHENTICATED"}}]}


async def test_a_socket_authenticated_by_its_upgrade_header_authenticates_each_operation(
    live_server, event_world: EventWorld
) -> None:
    token = await event_world.token()
    async with socket(live_server, f"Bearer {token}") as ws:
        assert await initialised(ws, {}) == ACK
        query = {"query": "{ me { email } }"}
        await ws.send(json.dumps({"id": "a", "type": "subscribe", "payload": query}))
        message = await receive(ws)
        assert (message["type"], message["payload"]["data"]) == (
            "next", {"me": {"email": event_world.acme.email("DEVELOPER")}})
        assert await receive(ws) == {"id": "a", "type": "complete"}
        found = await tokens.find_access_token(token)
        assert found is not None
        await tokens.revoke_token(found)
        await ws.send(json.dumps({"id": "b", "type": "subscribe", "payload": query}))
        message = await receive(ws)
        assert (message["type"], message["payload"][0]["extensions"]) == (
            "error", {"code": "INVALID_TOKEN"})
