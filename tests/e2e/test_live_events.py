"""Live events end to end: SSE streams (Particle's format) and GraphQL subscriptions
(graphql-transport-ws) against the real server, on whichever database the run uses."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest

from auth import tokens
from core.settings import get_settings
from fleet import events, live, products, team
from fleet.events import LiveEvent
from models.devices import Device
from models.organizations import Membership
from models.products import Product
from tests.support.accounts import (
    TEAM_ROLES,
    access_token,
    client_token,
    make_user,
    user_with_token,
)
from tests.support.graphql import gid
from tests.support.live import (
    Sse,
    auth_headers,
    graphql_ws,
    particle,
    publish,
    refused,
    sse,
    subscribe,
    until_subscribed,
)
from tests.support.oauth import revoke
from tests.support.polling import WITHIN, receive
from tests.support.servers import Clock
from tests.support.worlds import CLAIMED, ELSEWHERE, Fleet, own

# The world: the fleet (tests.support.worlds: Acme, one member per role, and its product
# "thermostat"; Globex's "kettle", owned by outsider@example.com, with device ELSEWHERE;
# CLAIMED, in no product, claimed by Acme's DEVELOPER). D1 and D2 are thermostat's devices.
D1, D2 = own(0, 1)
AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
PRODUCT_EVENTS = (
    "subscription($id: ID!, $prefix: String) { productEvents(productId: $id, prefix: $prefix) "
    "{ missed event { id name data publishedAt private ttl deviceId } } }"
)
DEVICE_EVENTS = (
    "subscription($id: String!, $prefix: String) { deviceEvents(deviceId: $id, prefix: $prefix) "
    "{ missed event { name deviceId } } }"
)


@pytest.fixture
def world(fleet: Fleet) -> Fleet:
    return fleet


# --- SSE client ----------------------------------------------------------------------------


# --- GraphQL subscriptions client ------------------------------------------------------------


# --- SSE: the wire format ---------------------------------------------------------------------


async def test_product_stream_speaks_particles_format(http, world: Fleet) -> None:
    path = "/v1/products/thermostat/events"
    async with http.stream("GET", path, headers=auth_headers(await world.token())) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        stream = Sse(response)
        assert await stream.message() == b":ok\n\n"
        device = await publish(world.product, D1, "temp", '21.5 "C"\nok', AT)
        server = await publish(world.product, None, "config/set", "", AT.replace(microsecond=0))
        assert await stream.message() == (
            f"id: {device.id}\nevent: temp\n"
            'data: {"data":"21.5 \\"C\\"\\nok","ttl":60,'
            f'"published_at":"2026-01-02T03:04:05.678Z","coreid":"{D1}"}}\n\n'
        ).encode()
        assert await stream.message() == (
            f"id: {server.id}\nevent: config/set\n"
            'data: {"data":"","ttl":60,"published_at":"2026-01-02T03:04:05.000Z",'
            '"coreid":"particle-internal"}\n\n'
        ).encode()


async def test_server_published_events_reach_the_stream(http, world: Fleet,
                                                        frozen_clock: Clock) -> None:
    developer = world.acme.principals["DEVELOPER"]
    async with sse(http, f"/v1/products/{world.product.id}/events", await world.token()) as s:
        event = await events.publish_from_server(developer, world.product.id, name="hello",
                                                 data="world", private=False)
        assert event.published_at == frozen_clock.current
        assert await s.event() == particle(event, "particle-internal")


async def test_keep_alive_comments_while_idle(http, world: Fleet,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "sse_keepalive", 0.05)
    async with sse(http, "/v1/products/thermostat/events", await world.token()) as stream:
        assert await stream.message() == b":\n\n"
        assert await stream.message() == b":\n\n"
        event = await publish(world.product, D1, "temp")
        assert await stream.event() == particle(event, D1)


async def test_every_team_member_sees_private_and_public_events(http, world: Fleet) -> None:
    async with sse(http, "/v1/products/thermostat/events", await world.token()) as stream:
        secret = await events.publish_from_server(
            world.acme.principals["OWNER"], world.product.id, name="a", data="", private=True)
        public = await events.publish_from_server(
            world.acme.principals["OWNER"], world.product.id, name="b", data="", private=False)
        assert [await stream.event(), await stream.event()] == [
            particle(secret, "particle-internal"), particle(public, "particle-internal")]


# --- SSE: what each stream carries --------------------------------------------------------------


async def test_product_stream_prefix(http, world: Fleet) -> None:
    token = await world.token()
    async with sse(http, "/v1/products/thermostat/events/temp", token) as stream:
        await publish(world.product, D1, "humidity")
        await publish(world.product, D1, "Temp")  # names are case-sensitive
        await publish(world.other, ELSEWHERE, "temp")
        wanted = [await publish(world.product, D1, "temp/kitchen"),
                  await publish(world.product, D2, "temperature"),
                  await publish(world.product, None, "temp")]
        assert [await stream.event() for _ in wanted] == [
            particle(wanted[0], D1), particle(wanted[1], D2),
            particle(wanted[2], "particle-internal")]


async def test_device_stream_and_its_prefix(http, world: Fleet) -> None:
    token = await world.token()
    async with (sse(http, f"/v1/devices/{D1}/events", token) as every,
                sse(http, f"/v1/devices/{D1}/events/temp/", token) as prefixed):
        await publish(world.product, D2, "temp/kitchen")  # another device
        await publish(world.product, None, "temp/server")  # the product's, not the device's
        ignored = await publish(world.product, D1, "temperature")
        wanted = await publish(world.product, D1, "temp/kitchen")
        assert [await every.event(), await every.event()] == [
            particle(ignored, D1), particle(wanted, D1)]
        assert await prefixed.event() == particle(wanted, D1)


async def test_last_event_id_resumes_without_gaps_or_duplicates(
    http, world: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History is read two events a page; an event is published after each page is read:
    some arrive live while history still holds them, the last only live."""
    old = [await publish(world.product, D1, f"temp/{n}") for n in range(4)]
    await publish(world.product, D1, "humidity")
    new: list[LiveEvent] = []
    read_history = live.EventStream._read_history

    async def read_then_publish(stream: live.EventStream) -> None:
        await read_history(stream)
        if len(new) < 3:
            new.append(await publish(world.product, D1, f"temp/new{len(new)}"))

    monkeypatch.setattr(live, "HISTORY_PAGE", 2)
    monkeypatch.setattr(live.EventStream, "_read_history", read_then_publish)
    headers = {"Last-Event-ID": str(old[0].id)}
    async with sse(http, "/v1/products/thermostat/events/temp", await world.token(),
                   **headers) as stream:
        received = [await stream.event() for _ in range(6)]
        assert len(new) == 3
        assert received == [particle(event, D1) for event in [*old[1:], *new]]
        after = await publish(world.product, D1, "temp/after")
        assert await stream.event() == particle(after, D1)


async def test_resuming_a_device_stream(http, world: Fleet) -> None:
    first, second = [await publish(world.product, D1, name) for name in ("a", "b")]
    await publish(world.product, D2, "c")
    async with sse(http, f"/v1/devices/{D1}/events", await world.token(),
                   **{"Last-Event-ID": str(first.id)}) as stream:
        assert await stream.event() == particle(second, D1)
        third = await publish(world.product, D1, "d")
        assert await stream.event() == particle(third, D1)


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "+1", "0x10", "9" * 20])
async def test_a_bad_last_event_id_is_refused(http, world: Fleet, value: str) -> None:
    response = await refused(http, "/v1/products/thermostat/events", await world.token(),
                             **{"Last-Event-ID": value})
    assert response.status_code == 400
    assert response.json() == {"errors": [{
        "message": "An event ID is a non-negative integer.",
        "extensions": {"code": "INVALID_EVENT_ID"}}]}


@pytest.mark.parametrize("path", ["/v1/products/thermostat/events/bad%20name",
                                  "/v1/devices/" + D1 + "/events/" + "x" * 65])
async def test_a_bad_prefix_is_refused(http, world: Fleet, path: str) -> None:
    response = await refused(http, path, await world.token())
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_NAME"}


# --- SSE: who may watch -----------------------------------------------------------------------


async def test_anonymous_callers_must_authenticate(http, world: Fleet) -> None:
    response = await refused(http, "/v1/products/thermostat/events", None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"errors": [{"message": "An access token is required.",
                                           "extensions": {"code": "UNAUTHENTICATED"}}]}


@pytest.mark.parametrize("how", ["invalid", "revoked", "expired", "empty query"])
async def test_dead_tokens_are_refused(http, world: Fleet, frozen_clock: Clock,
                                       how: str) -> None:
    token = await world.token()
    path = "/v1/products/thermostat/events"
    if how == "revoked":
        assert (await revoke(http, token)).status_code == 200
    elif how == "expired":
        frozen_clock.advance(seconds=get_settings().access_token_lifetime + 1)
    elif how == "invalid":
        token = "dc_at_" + "A" * 43
    else:
        token, path = None, path + "?access_token="
    response = await refused(http, path, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_TOKEN"}


async def test_the_token_may_come_in_the_query_and_is_not_logged(
    http, world: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    token = await world.token()
    with caplog.at_level(logging.INFO):
        async with sse(http, f"/v1/products/thermostat/events?access_token={token}", None) as s:
            event = await publish(world.product, D1, "temp")
            assert await s.event() == particle(event, D1)
        response = await refused(http, "/v1/products/kettle/events?access_token=" + token, None)
        assert response.status_code == 404
        # The stream's request is logged once the server has seen the client leave.
        deadline = asyncio.get_running_loop().time() + WITHIN
        while len(paths := [r.path for r in caplog.records if r.name == "devicecloud.request"]
                  ) < 2:
            assert asyncio.get_running_loop().time() < deadline, paths
            await asyncio.sleep(0.01)
    assert sorted(paths) == ["/v1/products/kettle/events", "/v1/products/thermostat/events"]
    server_records = [r for r in caplog.records if r.name != "httpx"]  # httpx: the client
    assert not [r for r in server_records if token in json.dumps(r.__dict__, default=str)]


@pytest.mark.parametrize("role", TEAM_ROLES)
async def test_every_team_role_may_watch(http, world: Fleet, role: str) -> None:
    token = await world.token(role)
    async with (sse(http, "/v1/products/thermostat/events", token) as product_stream,
                sse(http, f"/v1/devices/{D1}/events", token) as device_stream):
        event = await publish(world.product, D1, "temp")
        assert await product_stream.event() == particle(event, D1)
        assert await device_stream.event() == particle(event, D1)


async def test_the_products_server_client_may_watch(http, world: Fleet) -> None:
    client, secret = await products.create_oauth_client(
        world.acme.principals["OWNER"], world.product.id, name="Backend",
        client_type="SERVER", redirect_uris=[])
    token = await client_token(http, client, secret)
    async with (sse(http, f"/v1/products/{world.product.id}/events", token) as product_stream,
                sse(http, f"/v1/devices/{D1}/events", token) as device_stream):
        event = await publish(world.product, D1, "temp")
        assert await product_stream.event() == particle(event, D1)
        assert await device_stream.event() == particle(event, D1)
    for path in ("/v1/products/kettle/events", f"/v1/devices/{ELSEWHERE}/events",
                 f"/v1/devices/{CLAIMED}/events"):
        assert (await refused(http, path, token)).status_code == 404


async def test_outsiders_get_not_found(http, world: Fleet) -> None:
    outsider = await access_token("outsider@example.com")  # owner of Globex
    stranger = (await user_with_token(http, "stranger@example.com"))[1]
    for token in (outsider, stranger):
        for path, message in (("/v1/products/thermostat/events", "No such product."),
                              (f"/v1/products/{world.product.id}/events/temp",
                               "No such product."),
                              ("/v1/products/nothing-here/events", "No such product."),
                              (f"/v1/devices/{D1}/events", "No such device."),
                              (f"/v1/devices/{CLAIMED}/events", "No such device."),
                              (f"/v1/devices/{'f' * 24}/events", "No such device.")):
            response = await refused(http, path, token)
            assert response.status_code == 404, path
            assert response.json() == {"errors": [{"message": message,
                                                   "extensions": {"code": "NOT_FOUND"}}]}


async def test_the_claimer_watches_a_claimed_device_in_no_product(http, world: Fleet) -> None:
    token = await world.token("DEVELOPER")
    async with sse(http, f"/v1/devices/{CLAIMED}/events", token) as stream:
        event = await publish(None, CLAIMED, "blink")
        assert await stream.event() == particle(event, CLAIMED)
    assert (await refused(http, f"/v1/devices/{CLAIMED}/events",
                          await world.token("OWNER"))).status_code == 404


async def test_a_claimer_outside_the_team_cannot_watch_a_product_device(http, world: Fleet
                                                                         ) -> None:
    await Device.filter(id=D1).update(claimed_by_id=(await make_user("c2@example.com")).id)
    response = await refused(http, f"/v1/devices/{D1}/events",
                             await access_token("c2@example.com"))
    assert response.status_code == 404


# --- SSE: access that ends, clients that leave ----------------------------------------------


async def test_removal_from_the_team_ends_the_stream(http, world: Fleet, quick_checks) -> None:
    membership = await Membership.get(user_id=world.acme.users["VIEWER"].id)
    async with sse(http, "/v1/products/thermostat/events", await world.token()) as stream:
        await team.remove_team_member(world.acme.principals["OWNER"], membership.id)
        assert await stream.ends() == {"code": "NOT_FOUND", "message": "No such product."}


async def test_revoking_the_token_ends_the_stream(http, world: Fleet, quick_checks) -> None:
    token = await world.token()
    async with sse(http, f"/v1/devices/{D1}/events", token) as stream:
        assert (await revoke(http, token)).status_code == 200
        assert await stream.ends() == {
            "code": "INVALID_TOKEN", "message": "The access token is invalid, expired or revoked."}


MOVED = {"code": "DEVICE_MOVED",
         "message": "The device moved to another product; open its stream again."}


async def sibling_product(world: Fleet) -> int:
    """Another product of Acme's, which the team sees as well as thermostat."""
    product = await products.create_product(
        world.acme.principals["OWNER"], world.acme.organization.id, name="Boiler",
        slug="boiler", description="", platform="Photon", customer_auth="SIMPLE")
    return product.id


async def test_a_device_stream_ends_at_once_when_the_device_publishes_elsewhere(
    http, world: Fleet
) -> None:
    """The device moved (here, say, by its hello): its first event in the other product ends
    the stream, which never carries it."""
    boiler = await sibling_product(world)
    async with sse(http, f"/v1/devices/{D1}/events", await world.token()) as stream:
        await until_subscribed(events.device_channel(D1))
        await Device.filter(id=D1).update(product_id=boiler)
        await publish(await Product.get(id=boiler), D1, "temp")
        assert await stream.ends() == MOVED


async def test_a_device_stream_ends_at_its_access_check_after_a_move(
    http, live_server, world: Fleet, quick_checks
) -> None:
    boiler = await sibling_product(world)
    async with sse(http, f"/v1/devices/{D1}/events", await world.token()) as stream, \
            graphql_ws(live_server, await world.token()) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        await until_subscribed(events.device_channel(D1), 2)
        await Device.filter(id=D1).update(product_id=boiler)
        assert await stream.ends() == MOVED
        message = await receive(ws)
        assert [(e["message"], e["extensions"]) for e in message["payload"]["errors"]] == [
            (MOVED["message"], {"code": "DEVICE_MOVED"})]
        assert await receive(ws) == {"id": "1", "type": "complete"}


async def test_a_client_that_leaves_is_unsubscribed(http, world: Fleet) -> None:
    channel = events.product_channel(world.product.id)
    async with sse(http, "/v1/products/thermostat/events", await world.token()):
        await until_subscribed(channel)
    await until_subscribed(channel, 0)


async def test_a_token_holds_at_most_the_cap_of_open_streams(
    http, live_server, world: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSE and subscriptions share the cap: two open, the third refused, one closing frees a
    place; another token has places of its own."""
    monkeypatch.setattr(get_settings(), "streams_per_token", 2)
    token, other = await world.token(), await world.token("SUPPORT")
    message = ("This access token has 2 event streams open, the most at once; close one "
               "first.")
    product_channel = events.product_channel(world.product.id)
    async with sse(http, "/v1/products/thermostat/events", token), \
            graphql_ws(live_server, token) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        await until_subscribed(events.device_channel(D1))
        response = await refused(http, f"/v1/devices/{D2}/events", token)
        assert response.status_code == 429
        assert response.json() == {
            "errors": [{"message": message, "extensions": {"code": "LIMIT_REACHED"}}]}
        async with sse(http, "/v1/products/thermostat/events", other):
            await until_subscribed(product_channel, 2)
        await until_subscribed(product_channel, 1)
        async with graphql_ws(live_server, token) as second:
            await subscribe(second, PRODUCT_EVENTS, id=gid("Product", world.product.id))
            ended = await receive(second)
            assert [(e["message"], e["extensions"]) for e in ended["payload"]["errors"]] == [
                (message, {"code": "LIMIT_REACHED"})]
            assert await receive(second) == {"id": "1", "type": "complete"}
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await until_subscribed(events.device_channel(D1), 0)
        async with sse(http, f"/v1/devices/{D2}/events", token):  # the freed place
            assert (await refused(http, f"/v1/devices/{D2}/events", token)).status_code == 429
    await until_subscribed(events.device_channel(D2), 0)
    await until_subscribed(product_channel, 0)
    assert live._open_streams == {}  # every place given back


# --- GraphQL subscriptions ------------------------------------------------------------------


async def test_subscription_delivers_product_events(live_server, world: Fleet) -> None:
    async with graphql_ws(live_server, await world.token()) as ws:
        await subscribe(ws, PRODUCT_EVENTS, id=gid("Product", world.product.id), prefix="temp")
        await until_subscribed(events.product_channel(world.product.id))
        await publish(world.product, D1, "humidity")
        event = await publish(world.product, D1, "temp", "21.5", AT)
        assert await receive(ws) == {"id": "1", "type": "next", "payload": {"data": {
            "productEvents": {"missed": 0, "event": {
                "id": gid("Event", event.id), "name": "temp", "data": "21.5",
                "publishedAt": "2026-01-02T03:04:05.678901+00:00", "private": True,
                "ttl": 60, "deviceId": D1}}},
            "extensions": {"cost": {"requestedQueryCost": 10, "maximumAvailable": 1000}}}}
        server = await events.publish_from_server(world.acme.principals["OWNER"],
                                                  world.product.id, name="temp/set", data="",
                                                  private=False)
        message = await receive(ws)
        assert message["payload"]["data"]["productEvents"]["event"]["deviceId"] is None
        assert message["payload"]["data"]["productEvents"]["event"]["id"] == gid("Event",
                                                                                 server.id)


async def test_subscription_delivers_device_events(live_server, world: Fleet) -> None:
    async with graphql_ws(live_server, await world.token("SUPPORT")) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1, prefix="temp")
        await until_subscribed(events.device_channel(D1))
        await publish(world.product, D2, "temp")
        await publish(world.product, D1, "humidity")
        await publish(world.product, D1, "temp/x")
        assert await receive(ws) == {"id": "1", "type": "next", "payload": {"data": {
            "deviceEvents": {"missed": 0, "event": {"name": "temp/x", "deviceId": D1}}},
            "extensions": {"cost": {"requestedQueryCost": 5, "maximumAvailable": 1000}}}}


@pytest.mark.parametrize("caller", ["anonymous", "outsider"])
async def test_subscriptions_to_what_you_cannot_see_fail(live_server, world: Fleet,
                                                         caller: str) -> None:
    # Anonymous callers are told to authenticate, others that the thing does not exist.
    token = None if caller == "anonymous" else await access_token("outsider@example.com")
    sign_in = ("An access token is required to watch events: send it in connection_init's "
               "payload as authorization, Authorization, authToken or headers.Authorization "
               '("Bearer <token>" or the token alone), or as the upgrade request\'s '
               "Authorization: Bearer header.", {"code": "UNAUTHENTICATED"})
    async with graphql_ws(live_server, token) as ws:
        for query, variables, message in (
            (PRODUCT_EVENTS, {"id": gid("Product", world.product.id)}, "No such product."),
            (DEVICE_EVENTS, {"id": D1}, "No such device."),
        ):
            await subscribe(ws, query, **variables)
            error = await receive(ws)
            assert error["type"] == "error", error
            assert [(e["message"], e["extensions"]) for e in error["payload"]] == [
                sign_in if token is None else (message, {"code": "NOT_FOUND"})]
    assert events.event_log().broker.local_subscribers(
        events.product_channel(world.product.id)) == 0


@pytest.mark.parametrize("how", ["removed", "revoked"])
async def test_a_subscription_ends_when_access_ends(http, live_server, world: Fleet,
                                                    quick_checks, how: str) -> None:
    token = await world.token()
    channel = events.product_channel(world.product.id)
    async with graphql_ws(live_server, token) as ws:
        await subscribe(ws, PRODUCT_EVENTS, id=gid("Product", world.product.id))
        await until_subscribed(channel)
        if how == "removed":
            membership = await Membership.get(user_id=world.acme.users["VIEWER"].id)
            await team.remove_team_member(world.acme.principals["OWNER"], membership.id)
            expected = ("No such product.", {"code": "NOT_FOUND"})
        else:
            assert (await revoke(http, token)).status_code == 200
            expected = ("The access token is invalid, expired or revoked.",
                        {"code": "INVALID_TOKEN"})
        message = await receive(ws)
        assert message["type"] == "next"
        assert [(e["message"], e["extensions"]) for e in message["payload"]["errors"]] == [
            expected]
        assert await receive(ws) == {"id": "1", "type": "complete"}
        await until_subscribed(channel, 0)


async def test_completing_a_subscription_unsubscribes(live_server, world: Fleet) -> None:
    channel = events.device_channel(D1)
    async with graphql_ws(live_server, await world.token()) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        await until_subscribed(channel)
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await until_subscribed(channel, 0)


@pytest.mark.parametrize("how", ["revoked", "expired"])
async def test_every_operation_on_a_socket_authenticates_again(
    http, live_server, world: Fleet, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch,
    how: str
) -> None:
    token = await world.token()
    authenticated: list[str] = []
    authenticate = tokens.authenticate

    async def counted(raw: str) -> object:
        authenticated.append(raw)
        return await authenticate(raw)

    monkeypatch.setattr(tokens, "authenticate", counted)
    me = "{ me { email } }"
    async with graphql_ws(live_server, token) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": me}}))
        assert await receive(ws) == {"id": "1", "type": "next", "payload": {
            "data": {"me": {"email": world.acme.email("VIEWER")}},
            "extensions": {"cost": {"requestedQueryCost": 2, "maximumAvailable": 1000}}}}
        assert await receive(ws) == {"id": "1", "type": "complete"}
        assert authenticated == [token, token]  # connection_init, then the operation
        if how == "revoked":
            assert (await revoke(http, token)).status_code == 200
        else:
            frozen_clock.advance(seconds=get_settings().access_token_lifetime + 1)
        invalid = {"message": "The access token is invalid, expired or revoked.",
                   "extensions": {"code": "INVALID_TOKEN"}}
        await subscribe(ws, PRODUCT_EVENTS, id=gid("Product", world.product.id))
        assert await receive(ws) == {"id": "1", "type": "next", "payload": {
            "data": None, "errors": [invalid]}}
        assert await receive(ws) == {"id": "1", "type": "complete"}
        assert events.event_log().broker.local_subscribers(
            events.product_channel(world.product.id)) == 0
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": me}}))
        assert await receive(ws) == {"id": "2", "type": "error", "payload": [invalid]}
    # HTTP requests are authenticated once each, before the endpoint.
    authenticated.clear()
    fresh = await world.token()
    response = await http.post("/graphql", json={"query": me},
                               headers={"Authorization": f"Bearer {fresh}"})
    assert response.json()["data"] == {"me": {"email": world.acme.email("VIEWER")}}
    assert authenticated == [fresh]
