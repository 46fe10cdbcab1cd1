"""Events over GraphQL: publishing from servers, the product's and a device's history (filters,
keyset pages), the event data limit, function calls and variable reads."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from fleet import events, products
from models.devices import Device, Event
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import (
    access_token,
    client_token,
)
from tests.support.constants import T
from tests.support.gateway import make_device, session
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.polling import receive
from tests.support.servers import LiveServer
from tests.support.worlds import EventWorld

MINUTE = timedelta(minutes=1)
D1, D2, IN_KETTLE = "d1".ljust(24, "0"), "d2".ljust(24, "0"), "e1".ljust(24, "0")
EVENT_FIELDS = "id name data publishedAt private ttl deviceId"


async def stored_events() -> list[dict[str, Any]]:
    return list(await Event.all().order_by("id").values(
        "product_id", "device_id", "name", "data", "published_at", "private", "message_id"))


async def publish(http: httpx.AsyncClient, token: str | None, input: dict[str, Any]
                  ) -> dict[str, Any]:
    return await run_mutation(http, "publishEvent", "PublishEventInput", input,
                              f"event {{ {EVENT_FIELDS} product {{ slug }} device {{ id }} }}",
                              token=token)


# --- publishing -----------------------------------------------------------------------------


async def test_a_developer_publishes_an_event_stored_exactly(
    http, event_world: EventWorld
) -> None:
    payload = await publish(http, await event_world.token(), {
        "productId": event_world.product_id, "name": "door/open", "data": "ajar é",
        "private": False})
    (row,) = await stored_events()
    assert row == {"product_id": event_world.product.id, "device_id": None, "name": "door/open",
                   "data": "ajar é", "published_at": T, "private": False, "message_id": None}
    event_id = (await Event.get()).id
    assert payload == {"userErrors": [], "event": {
        "id": gid("Event", event_id), "name": "door/open", "data": "ajar é",
        "publishedAt": "2030-01-01T12:00:00+00:00", "private": False, "ttl": 60,
        "deviceId": None, "product": {"slug": "thermostat"}, "device": None}}
    body = await graphql(http, "query($id: ID!) { node(id: $id) { ... on Event { name } } }",
                         {"id": gid("Event", event_id)}, token=await event_world.token("VIEWER"))
    assert body["data"] == {"node": {"name": "door/open"}}
    for key in ("abc", "-1", "99999999999999999999", str(event_id + 1)):
        body = await graphql(http, "query($id: ID!) { node(id: $id) { id } }",
                             {"id": gid("Event", key)}, token=await event_world.token("VIEWER"))
        assert body["data"] == {"node": None}


async def test_events_are_private_by_default_and_cost_by_size(
    http, event_world: EventWorld
) -> None:
    payload = await publish(http, await event_world.token(), {
        "productId": event_world.product_id, "name": "blob", "data": "x" * 1024})
    assert payload["event"]["private"] is True
    await publish(http, await event_world.token(),
                  {"productId": event_world.product_id, "name": "empty"})
    assert [(r["name"], r["data"], r["private"])
            for r in await stored_events()] == [("blob", "x" * 1024, True), ("empty", "", True)]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": ""}, ("name", "INVALID_NAME")),
        ({"name": "x" * 65}, ("name", "INVALID_NAME")),
        ({"name": "two words"}, ("name", "INVALID_NAME")),
        ({"name": "spark/status"}, ("name", "RESERVED_NAME")),
        ({"name": "SPARKLE"}, ("name", "RESERVED_NAME")),
        ({"data": "x" * 1025}, ("data", "DATA_TOO_LARGE")),
        ({"data": "é" * 512 + "x"}, ("data", "DATA_TOO_LARGE")),
        ({"productId": gid("Organization", 1)}, ("productId", "INVALID_ID")),
        ({"productId": gid("Product", 999999)}, ("productId", "NOT_FOUND")),
    ],
)
async def test_bad_publishes_are_refused_and_nothing_is_stored(
    http, event_world: EventWorld, change: dict[str, Any], error: tuple[str, str]
) -> None:
    input = {"productId": event_world.product_id, "name": "ok", "data": "fine", **change}
    payload = await publish(http, await event_world.token(), input)
    assert payload["event"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [error]
    assert await stored_events() == []


async def test_the_products_data_limit_is_changed_and_enforced(
    http, event_world: EventWorld
) -> None:
    update = "product { eventDataLimit }"
    admin = await event_world.token("ADMINISTRATOR")
    assert (await graphql(http, '{ product(idOrSlug: "thermostat") { eventDataLimit } }',
                          token=admin))["data"] == {"product": {"eventDataLimit": 1024}}
    payload = await run_mutation(http, "updateProduct", "UpdateProductInput",
                                 {"productId": event_world.product_id, "eventDataLimit": 2048},
                                 update, token=admin)
    assert payload == {"product": {"eventDataLimit": 2048}, "userErrors": []}
    entry = await AuditEntry.get(action="product.update")
    assert entry.details == {"event_data_limit": [1024, 2048]}

    developer = await event_world.token()
    accepted = await publish(http, developer, {
        "productId": event_world.product_id, "name": "big", "data": "x" * 2048})
    assert accepted["userErrors"] == []
    refused = await publish(http, developer, {
        "productId": event_world.product_id, "name": "big", "data": "x" * 2049})
    assert refused["userErrors"] == [{
        "field": "data", "code": "DATA_TOO_LARGE",
        "message": "The data is 2049 bytes; this product's events carry at most 2048."}]
    assert [r["name"] for r in await stored_events()] == ["big"]

    for limit in (0, 16385):
        payload = await run_mutation(http, "updateProduct", "UpdateProductInput",
                                     {"productId": event_world.product_id, "eventDataLimit": limit},
                                     update, token=admin)
        assert payload["product"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
            ("eventDataLimit", "INVALID")]
    payload = await run_mutation(http, "updateProduct", "UpdateProductInput",
                                 {"productId": event_world.product_id, "eventDataLimit": 16384},
                                 update, token=admin)
    assert payload["product"] == {"eventDataLimit": 16384}
    assert (await Product.get(id=event_world.product.id)).event_data_limit == 16384
    assert await AuditEntry.filter(action="product.update").count() == 2


# --- history --------------------------------------------------------------------------------

LOG = """query($first: Int!, $after: String, $filter: EventFilter) {
  product(idOrSlug: "thermostat") { events(first: $first, after: $after, filter: $filter) {
    edges { cursor node { name deviceId } } pageInfo { hasNextPage endCursor } } } }"""
DEVICE_LOG = """query($id: String!, $filter: DeviceEventFilter) {
  device(deviceId: $id) { events(filter: $filter) { edges { node { name deviceId } } } } }"""


async def record(*specs: tuple[str | None, str, int], product: int | None = None) -> list[int]:
    """Store events (device or None for the server, name, minutes after T), in order."""
    stored = await events.record([
        events.NewEvent(product_id=product, device_id=device, name=name, data=f"#{minutes}",
                        published_at=T + minutes * MINUTE)
        for device, name, minutes in specs])
    return [event.id for event in stored if event is not None]


async def history(event_world: EventWorld) -> None:
    await record((D1, "temp", 1), (D2, "temp", 2), (None, "alert/fire", 3),
                 (D1, "temp/kitchen", 4), (D2, "humidity", 5), product=event_world.product.id)
    await record((IN_KETTLE, "temp", 6), product=event_world.other.id)


async def read_log(http: httpx.AsyncClient, token: str, *, first: int = 20,
                   after: str | None = None, **filter: Any) -> dict[str, Any]:
    body = await graphql(http, LOG, {"first": first, "after": after, "filter": filter},
                         token=token)
    assert "errors" not in body, body
    return body["data"]["product"]["events"]


def names(page: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["node"]["name"], e["node"]["deviceId"]) for e in page["edges"]]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({}, [("humidity", D2), ("temp/kitchen", D1), ("alert/fire", None), ("temp", D2),
              ("temp", D1)]),
        ({"prefix": ""}, [("humidity", D2), ("temp/kitchen", D1), ("alert/fire", None),
                          ("temp", D2), ("temp", D1)]),
        ({"prefix": "temp"}, [("temp/kitchen", D1), ("temp", D2), ("temp", D1)]),
        ({"prefix": "temp/"}, [("temp/kitchen", D1)]),
        ({"prefix": "Temp"}, []),
        ({"prefix": "tem_"}, []),
        ({"deviceId": D1}, [("temp/kitchen", D1), ("temp", D1)]),
        ({"deviceId": D2.upper()}, [("humidity", D2), ("temp", D2)]),
        ({"deviceId": IN_KETTLE}, []),
        ({"since": (T + 2 * MINUTE).isoformat()},
         [("humidity", D2), ("temp/kitchen", D1), ("alert/fire", None), ("temp", D2)]),
        ({"until": (T + 4 * MINUTE).isoformat()},
         [("alert/fire", None), ("temp", D2), ("temp", D1)]),
        ({"since": (T + 2 * MINUTE).isoformat(), "until": (T + 4 * MINUTE).isoformat()},
         [("alert/fire", None), ("temp", D2)]),
        ({"prefix": "temp", "deviceId": D2}, [("temp", D2)]),
    ],
)
async def test_the_products_log_newest_first_and_filtered(
    http, event_world: EventWorld, filter: dict[str, Any], expected: list[tuple[str, str | None]]
) -> None:
    await history(event_world)
    assert names(await read_log(http, await event_world.token("VIEWER"), **filter)) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({}, ["temp/kitchen", "temp"]),
        ({"prefix": "temp/"}, ["temp/kitchen"]),
        ({"since": (T + 2 * MINUTE).isoformat()}, ["temp/kitchen"]),
        ({"until": (T + 4 * MINUTE).isoformat()}, ["temp"]),
    ],
)
async def test_a_devices_events(http, event_world: EventWorld, filter: dict[str, Any],
                                expected: list[str]) -> None:
    await history(event_world)
    body = await graphql(http, DEVICE_LOG, {"id": D1, "filter": filter},
                         token=await event_world.token("VIEWER"))
    edges = body["data"]["device"]["events"]["edges"]
    assert [(e["node"]["name"], e["node"]["deviceId"]) for e in edges] == [
        (name, D1) for name in expected]


async def test_pages_do_not_shift_while_events_arrive(http, event_world: EventWorld) -> None:
    await history(event_world)
    token = await event_world.token("SUPPORT")
    first = await read_log(http, token, first=2)
    assert names(first) == [("humidity", D2), ("temp/kitchen", D1)]
    assert first["pageInfo"]["hasNextPage"] is True
    await record((D1, "late", 7), (None, "later", 8), product=event_world.product.id)
    second = await read_log(http, token, first=2, after=first["pageInfo"]["endCursor"])
    assert names(second) == [("alert/fire", None), ("temp", D2)]
    third = await read_log(http, token, first=2, after=second["pageInfo"]["endCursor"])
    assert names(third) == [("temp", D1)]
    assert third["pageInfo"] == {"hasNextPage": False, "endCursor": third["edges"][0]["cursor"]}
    fresh = await read_log(http, token, first=2)
    assert names(fresh) == [("later", None), ("late", D1)]


@pytest.mark.parametrize(
    ("variables", "code", "message"),
    [
        ({"filter": {"prefix": "two words"}}, "INVALID_NAME",
         "A prefix is at most 64 letters, digits, '_', '-', '/' or '.'."),
        ({"filter": {"prefix": "x" * 65}}, "INVALID_NAME",
         "A prefix is at most 64 letters, digits, '_', '-', '/' or '.'."),
        ({"filter": {"deviceId": "kitchen"}}, "INVALID_DEVICE_ID",
         "'kitchen' is not a device ID: a device ID is 24 hexadecimal characters."),
        ({"after": "garbage"}, "INVALID_CURSOR",
         "The `after` cursor is not one this API gave out."),
        ({"after": "WyJ4Il0="}, "INVALID_CURSOR",  # ["x"]
         "The `after` cursor is not one this API gave out."),
        ({"first": 101}, "INVALID_ARGUMENT", "`first` must be between 0 and 100."),
    ],
)
async def test_bad_history_arguments_are_clear_errors(
    http, event_world: EventWorld, variables: dict[str, Any], code: str, message: str
) -> None:
    await history(event_world)
    body = await graphql(http, LOG, {"first": 20, **variables},
                         token=await event_world.token("VIEWER"))
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        (code, message)]


async def test_an_events_device_and_product(http, event_world: EventWorld) -> None:
    await history(event_world)
    query = """{ product(idOrSlug: "thermostat") { events(first: 3) { edges { node {
        name product { slug } device { deviceId name } } } } } }"""
    token = await event_world.token("VIEWER")
    body = await graphql(http, query, token=token)
    assert [e["node"] for e in body["data"]["product"]["events"]["edges"]] == [
        {"name": "humidity", "product": {"slug": "thermostat"},
         "device": {"deviceId": D2, "name": "Unit d2"}},
        {"name": "temp/kitchen", "product": {"slug": "thermostat"},
         "device": {"deviceId": D1, "name": "Unit d1"}},
        {"name": "alert/fire", "product": {"slug": "thermostat"}, "device": None},
    ]
    # A device that moved to another organization's product is not shown in the old log.
    await Device.filter(id=D2).update(product_id=event_world.other.id)
    body = await graphql(http, query, token=token)
    assert body["data"]["product"]["events"]["edges"][0]["node"] == {
        "name": "humidity", "product": {"slug": "thermostat"}, "device": None}


async def test_a_moved_device_takes_no_history_to_its_new_organization(http, event_world: EventWorld
                                                                         ) -> None:
    (old,) = await record((D1, "temp", 1), product=event_world.product.id)
    await Device.filter(id=D1).update(product_id=event_world.other.id)
    (new,) = await record((D1, "boil", 2), product=event_world.other.id)
    globex = await access_token("outsider@example.com")
    query = """query($id: String!) { device(deviceId: $id) { events { edges { node {
        id name product { slug } device { deviceId } } } } } }"""
    body = await graphql(http, query, {"id": D1}, token=globex)
    assert body["data"] == {"device": {"events": {"edges": [{"node": {
        "id": gid("Event", new), "name": "boil", "product": {"slug": "kettle"},
        "device": {"deviceId": D1}}}]}}}
    node = "query($id: ID!) { node(id: $id) { ... on Event { name } } }"
    assert (await graphql(http, node, {"id": gid("Event", old)}, token=globex))["data"] == {
        "node": None}
    assert (await graphql(http, node, {"id": gid("Event", new)}, token=globex))["data"] == {
        "node": {"name": "boil"}}
    # Acme's team still reads the event in its product's log, not the one published since.
    acme = await event_world.token("VIEWER")
    assert (await graphql(http, node, {"id": gid("Event", old)}, token=acme))["data"] == {
        "node": {"name": "temp"}}
    assert (await graphql(http, node, {"id": gid("Event", new)}, token=acme))["data"] == {
        "node": None}


async def test_event_connections_are_costed_like_other_connections(
    http, event_world: EventWorld
) -> None:
    query = """query($first: Int!) { product(idOrSlug: "thermostat") { events(first: $first) {
        edges { node { name device { events(first: $first) { edges { node { name } } } } } }
        } } }"""
    token = await event_world.token("VIEWER")
    body = await graphql(http, query, {"first": 10}, token=token)
    # product 1 + events 1 + 10 * (edges 1 + node 1 + name 1 + device 1 + events 1 + 10 * 3)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 352
    body = await graphql(http, query, {"first": 40}, token=token)
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COSTLY"}


async def test_a_variable_read_costs_more_than_a_field(http, event_world: EventWorld) -> None:
    query = """query($first: Int!) { product(idOrSlug: "thermostat") { devices(first: $first) {
        edges { node { variable(name: "temperature") { value } } } } } }"""
    token = await event_world.token("VIEWER")
    body = await graphql(http, query, {"first": 2}, token=token)
    # product 1 + devices 1 + 2 * (edges 1 + node 1 + variable 50 + value 1)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 108
    body = await graphql(http, query, {"first": 20}, token=token)
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COSTLY"}


# --- the product's SERVER client ------------------------------------------------------------


async def test_the_server_client_publishes_and_reads_the_log(http, event_world: EventWorld) -> None:
    token = await client_token(http, *event_world.server)
    payload = await publish(http, token, {
        "productId": event_world.product_id, "name": "firmware/rollout", "data": "v2"})
    # It reads the log, but it is not in the team: the product and devices stay hidden.
    assert payload["userErrors"] == []
    assert payload["event"]["product"] is None
    await record((D1, "temp", 1), product=event_world.product.id)
    body = await graphql(
        http, """query($id: ID!, $filter: EventFilter) { productEvents(productId: $id,
        filter: $filter) { edges { node { name data deviceId device { id } product { id } } }
        } }""", {"id": event_world.product_id}, token=token)
    assert [e["node"] for e in body["data"]["productEvents"]["edges"]] == [
        {"name": "temp", "data": "#1", "deviceId": D1, "device": None, "product": None},
        {"name": "firmware/rollout", "data": "v2", "deviceId": None, "device": None,
         "product": None},
    ]
    body = await graphql(
        http, "query($id: ID!, $filter: EventFilter) { productEvents(productId: $id, "
              "filter: $filter) { edges { node { name } } } }",
        {"id": event_world.product_id, "filter": {"deviceId": D1}}, token=token)
    assert body["data"]["productEvents"]["edges"] == [{"node": {"name": "temp"}}]
    assert [(r["name"], r["device_id"]) for r in await stored_events()] == [
        ("firmware/rollout", None), ("temp", D1)]


async def test_another_products_server_client_sees_nothing(http, event_world: EventWorld) -> None:
    client, secret = await products.create_oauth_client(
        event_world.outsider, event_world.other.id, name="Kettle backend", client_type="SERVER",
        redirect_uris=[])
    token = await client_token(http, client, secret)
    await history(event_world)
    body = await graphql(http, "query($id: ID!) { productEvents(productId: $id) { edges { "
                               "cursor } } }", {"id": event_world.product_id}, token=token)
    assert body == {"data": {"productEvents": None}, "extensions": body["extensions"]}
    payload = await publish(http, token, {"productId": event_world.product_id, "name": "x"})
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        ("productId", "NOT_FOUND")]


# --- functions and variables ----------------------------------------------------------------

CALL = "returnValue"
READ = """query($id: String!, $name: String!) { device(deviceId: $id) {
    variable(name: $name) { name value userErrors { field message code } } } }"""


async def call(http: httpx.AsyncClient, token: str, name: str, argument: str = "", *,
               device_id: str = D1) -> dict[str, Any]:
    return await run_mutation(http, "callFunction", "CallFunctionInput",
                              {"deviceId": device_id, "name": name, "argument": argument},
                              CALL, token=token)


async def read(http: httpx.AsyncClient, token: str, name: str, *, device_id: str = D1
               ) -> dict[str, Any]:
    body = await graphql(http, READ, {"id": device_id, "name": name}, token=token)
    assert "errors" not in body, body
    return body["data"]["device"]["variable"]


async def test_an_offline_device_cannot_be_called_or_read(http, event_world: EventWorld) -> None:
    token = await event_world.token("SUPPORT")
    offline = {"field": "deviceId", "message": "The device is offline.",
               "code": "DEVICE_OFFLINE"}
    assert await call(http, token, "reboot") == {"returnValue": None, "userErrors": [offline]}
    # 1024 characters pass the length check (and meet the offline device).
    assert await call(http, token, "reboot", "x" * 1024) == {
        "returnValue": None, "userErrors": [offline]}
    assert await read(http, token, "temp") == {"name": "temp", "value": None,
                                               "userErrors": [offline]}


async def test_an_argument_over_1024_characters_is_refused(http, event_world: EventWorld) -> None:
    payload = await call(http, await event_world.token("SUPPORT"), "reboot", "é" * 1025)
    assert payload == {"returnValue": None, "userErrors": [{
        "field": "argument", "code": "ARGUMENT_TOO_LONG",
        "message": "The argument is 1025 characters; the limit is 1024."}]}


async def test_unknown_functions_and_variables(http, event_world: EventWorld) -> None:
    await Device.filter(id=D1).update(online=True, session_id="elsewhere.session",
                                      functions=["reboot"], variables=["temp"])
    token = await event_world.token("SUPPORT")
    assert await call(http, token, "Reboot") == {"returnValue": None, "userErrors": [{
        "field": "name", "code": "FUNCTION_NOT_FOUND",
        "message": "The device has no function named 'Reboot'."}]}
    assert await read(http, token, "humidity") == {"name": "humidity", "value": None,
                                                   "userErrors": [{
        "field": "name", "code": "VARIABLE_NOT_FOUND",
        "message": "The device has no variable named 'humidity'."}]}


async def answer_next(ws: ClientConnection, value: object, asking: asyncio.Task[Any]
                      ) -> dict[str, Any]:
    """The device's side: read the cloud's next request, answer `value`; the request.
    Fails at once if `asking` ends without the device being asked."""
    receiving = asyncio.ensure_future(receive(ws))
    await asyncio.wait([receiving, asking], return_when=asyncio.FIRST_COMPLETED)
    if not receiving.done():
        receiving.cancel()
        pytest.fail(f"answered without asking the device: {asking.result()}")
    request = receiving.result()
    await ws.send(json.dumps({"type": "reply", "replyTo": request["id"], "value": value}))
    return request


async def test_a_call_and_a_read_reach_an_online_device(
    http, live_server: LiveServer, event_world: EventWorld
) -> None:
    device_id, secret = await make_device(event_world.product)
    url = live_server.url.replace("http://", "ws://") + "/device/v1"
    token = await event_world.token("SUPPORT")
    async with session(url, device_id, secret, event_world.product.id) as (ws, _):
        calling = asyncio.create_task(call(http, token, "setTemp", "22.5", device_id=device_id))
        request = await answer_next(ws, -7, calling)
        assert request == {"type": "call", "id": request["id"], "name": "setTemp",
                           "argument": "22.5"}
        assert await calling == {"returnValue": -7, "userErrors": []}
        for value in (21.25, "on", False):
            reading = asyncio.create_task(read(http, token, "temperature", device_id=device_id))
            request = await answer_next(ws, value, reading)
            assert request == {"type": "get", "id": request["id"], "name": "temperature"}
            assert await reading == {"name": "temperature", "value": value, "userErrors": []}
