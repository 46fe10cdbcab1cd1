"""What a customer token reaches: its own claimed devices (state, events, functions, variables,
live streams), nothing of another customer's, nothing product-wide. Every device-level and
product-level field, mutation and stream against every kind of caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.settings import get_settings
from fleet import devices, events, organizations, products
from models.customers import Customer
from models.devices import Device, Event, Quarantine
from models.organizations import AuditEntry
from models.products import Product
from tests.conftest import Clock, LiveServer
from tests.customer_helpers import customer_token, make_customer
from tests.e2e.test_live_events import (
    Sse,
    graphql_ws,
    particle,
    publish,
    receive,
    refused,
    sse,
    subscribe,
    until_subscribed,
)
from tests.helpers import (
    TEAM_ROLES,
    Team,
    access_token,
    acting_as,
    gid,
    graphql,
    make_user,
    organization_with_team,
    run_mutation,
)
from tests.test_events_api import T

CALLERS = ("anonymous", "outsider", "customerA", "customerB", "customerC", *TEAM_ROLES)
OK, NF, FB, OFF, UN = "OK", "NOT_FOUND", "FORBIDDEN", "DEVICE_OFFLINE", "UNAUTHENTICATED"
CUS = "OK, without the product"  # what a customer sees: the device, not its product
_ = None

D1, D2, M1 = "a1".ljust(24, "0"), "a2".ljust(24, "0"), "a3".ljust(24, "0")
Q1, LOOSE, E1 = "b1".ljust(24, "0"), "b2".ljust(24, "0"), "c1".ljust(24, "0")
AT = T.isoformat()

# The world: Acme (one member per role) and its product "thermostat" with devices D1 and M1
# (customer A's), D2 (customer B's) and Q1 (in its quarantine); Globex's product "kettle"
# (owned by "outsider") with E1 (customer C's); LOOSE, in no product. Every device is
# offline. D1, D2 and E1 each published an event "temp" in their product.
#
# Callers: anonymous; outsider; customers A and B of thermostat and C of kettle (customer
# tokens); then the Acme member with each role.
# Query cells: None = null; OK (CUS) = the expected value (as a customer sees it); a code = a
# GraphQL error. Mutation cells: OK (and its effect) or the userError's code (and no effect).
# Streams: OK = opened and delivered a new event; an HTTP status or an error code otherwise.
# Rows run top to bottom in one world per caller; mutations come last, each on its own device.
# fmt: off
MATRIX_ROWS: dict[str, tuple[Any, ...]] = {
    #                              anon out  cusA cusB cusC OWN  ADM  DEV  SUP  VIEW
    "device(D1)":                  (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D2)":                  (_,  _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "device(E1)":                  (_,  OK,  _,   _,   OK,  _,   _,   _,   _,   _),
    "device(Q1)":                  (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Device D1)":             (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).product":          (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).events":           (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(E1).events":           (_,  OK,  _,   _,   CUS, _,   _,   _,   _,   _),
    "node(Event D1)":              (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).variable":         (_,  _,   OFF, _,   _,   OFF, OFF, OFF, OFF, FB),
    "callFunction(D1)":            (NF, NF,  OFF, NF,  NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(D2)":            (NF, NF,  NF,  OFF, NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(E1)":            (NF, OFF, NF,  NF,  OFF, NF,  NF,  NF,  NF,  NF),
    "SSE device D1":               (401, 404, OK, 404, 404, OK,  OK,  OK,  OK,  OK),
    "SSE device E1":               (401, OK, 404, 404, OK,  404, 404, 404, 404, 404),
    "deviceEvents(D1)":            (NF, NF,  OK,  NF,  NF,  OK,  OK,  OK,  OK,  OK),
    "deviceEvents(D2)":            (NF, NF,  NF,  OK,  NF,  OK,  OK,  OK,  OK,  OK),
    "customerDevices":             (_,  _,   [D1, M1], [D2], [E1], _, _, _,   _,   _),
    "product(thermostat)":         (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Product)":               (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.devices":             (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.events":              (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents":               (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "SSE product":                 (401, 404, 404, 404, 404, OK, OK,  OK,  OK,  OK),
    "productEvents subscription":  (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  OK,  OK),
    "publishEvent":                (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createClaimCode(thermostat)": (UN, NF,  OK,  OK,  NF,  NF,  NF,  NF,  NF,  NF),
    "createClaimCode(kettle)":     (UN, NF,  NF,  NF,  OK,  NF,  NF,  NF,  NF,  NF),
    "importDevices":               (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "approveQuarantinedDevice":    (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "updateDevice(D1)":            (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "removeDeviceFromProduct(M1)": (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
}
# fmt: on
MATRIX = {
    operation: dict(zip(CALLERS, cells, strict=True)) for operation, cells in MATRIX_ROWS.items()
}


@dataclass
class World:
    acme: Team
    thermostat: Product
    kettle: Product
    customers: dict[str, Customer]  # "customerA" …
    event_ids: dict[str, str]  # device ID -> the global ID of its event


@pytest.fixture
async def world(frozen_clock: Clock) -> World:
    frozen_clock.current = T
    acme = await organization_with_team("Acme", "acme")
    thermostat = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    outsider = await acting_as(await make_user("outsider@example.com"))
    globex = await organizations.create_organization(outsider, "Globex", "globex")
    kettle = await products.create_product(
        outsider, globex.id, name="Kettle", slug="kettle", description="", platform="Photon",
        customer_auth="TWO_LEGGED")
    customers = {
        "customerA": await make_customer(thermostat, "a@customers.example"),
        "customerB": await make_customer(thermostat, "b@customers.example"),
        "customerC": await make_customer(kettle, "c@customers.example"),
    }
    for device_id, product, owner, quarantine in (
        (D1, thermostat, "customerA", "NONE"), (M1, thermostat, "customerA", "NONE"),
        (D2, thermostat, "customerB", "NONE"), (Q1, thermostat, None, "QUARANTINED"),
        (E1, kettle, "customerC", "NONE"), (LOOSE, None, None, "NONE"),
    ):
        await Device.create(
            id=device_id, secret_hash="0" * 64, platform="Photon", provisioned_at=T,
            product=product, quarantine=quarantine, functions=["reboot"], variables=["temp"],
            customer=customers[owner] if owner else None, claimed_at=T if owner else None)
    stored = await events.record([
        events.NewEvent(product_id=product.id, device_id=device_id, name="temp", data="21",
                        published_at=T)
        for device_id, product in ((D1, thermostat), (D2, thermostat), (E1, kettle))
    ])
    event_ids = {event.device_id: gid("Event", event.id) for event in stored if event}
    return World(acme, thermostat, kettle, customers, event_ids)


async def caller_token(caller: str, world: World) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "outsider":
        return await access_token("outsider@example.com")
    if caller in world.customers:
        return await customer_token(world.customers[caller])
    return await access_token(world.acme.email(caller))


@dataclass
class Probe:
    http: httpx.AsyncClient
    live_server: LiveServer
    token: str | None
    world: World

    async def read(self, query: str, variables: dict[str, Any], *path: str) -> Any:
        body = await graphql(self.http, query, variables, token=self.token)
        if body.get("errors"):
            return body["errors"][0].get("extensions", {}).get("code", body["errors"])
        value = body["data"]
        for key in path:
            if value is None:
                return None
            value = value[key]
        return value

    async def device(self, device_id: str, selection: str) -> Any:
        return await self.read(
            f"query($id: String!) {{ device(deviceId: $id) {{ {selection} }} }}",
            {"id": device_id}, "device")

    async def product(self, selection: str, *path: str) -> Any:
        return await self.read(f'{{ product(idOrSlug: "thermostat") {{ {selection} }} }}', {},
                               "product", *path)

    async def mutate(self, name: str, input_type: str, input: dict[str, Any], selection: str
                     ) -> tuple[dict[str, Any], str | None]:
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       f"{{ {selection} userErrors {{ code }} }} }}",
            {"input": input}, token=self.token)
        assert "errors" not in body, body
        payload = body["data"][name]
        return payload, payload["userErrors"][0]["code"] if payload["userErrors"] else None

    async def sse(self, path: str, device_id: str, product: Product | None) -> Any:
        """OK if the stream opens and delivers an event `device_id` publishes now."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                body = json.loads(await response.aread())
                expected = "UNAUTHENTICATED" if response.status_code == 401 else "NOT_FOUND"
                assert body["errors"][0]["extensions"] == {"code": expected}, body
                return response.status_code
            stream = Sse(response)
            assert await stream.message() == b":ok\n\n"
            event = await publish(product, device_id, "live", "1")
            found = await stream.event()
            return OK if found == particle(event, device_id) else found

    async def subscription(self, query: str, channel: str, variables: dict[str, Any],
                           device_id: str, product: Product | None) -> Any:
        """OK if the subscription starts and delivers an event `device_id` publishes now."""
        async with graphql_ws(self.live_server, self.token) as ws:
            await subscribe(ws, query, **variables)
            outcome = await _started_or_refused(ws, channel)
            if outcome is None:
                await publish(product, device_id, "live", "1")
                message = await receive(ws)
                event = next(iter(message["payload"]["data"].values()))["event"]
                outcome = OK if event == {"name": "live", "deviceId": device_id} else message
        await until_subscribed(channel, 0)
        return outcome


async def _started_or_refused(ws: Any, channel: str) -> str | None:
    """None once the stream listens on `channel`; the error code if the server refused it.
    (Cancelling a websockets `recv` loses nothing.)"""
    broker = events.event_log().broker
    deadline = asyncio.get_running_loop().time() + 10
    while broker.local_subscribers(channel) == 0:
        assert asyncio.get_running_loop().time() < deadline, "neither started nor refused"
        try:
            async with asyncio.timeout(0.02):
                message = json.loads(await ws.recv())
        except TimeoutError:
            continue
        assert message["type"] == "error", message
        return message["payload"][0]["extensions"]["code"]
    return None


Operation = Callable[[Probe], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


def ok_if(value: Any, expected: Any) -> Any:
    return OK if value is not None and value == expected else value


def _seen(device_id: str) -> dict[str, Any]:
    return {"deviceId": device_id, "claimedAt": AT, "functions": ["reboot"]}


@operation("device(D1)")
async def _device_d1(p: Probe) -> Any:
    return ok_if(await p.device(D1, "deviceId claimedAt functions"), _seen(D1))


@operation("device(D2)")
async def _device_d2(p: Probe) -> Any:
    return ok_if(await p.device(D2, "deviceId claimedAt functions"), _seen(D2))


@operation("device(E1)")
async def _device_e1(p: Probe) -> Any:
    return ok_if(await p.device(E1, "deviceId claimedAt functions"), _seen(E1))


@operation("device(Q1)")
async def _device_q1(p: Probe) -> Any:
    return ok_if(await p.device(Q1, "deviceId quarantined claimedAt"),
                 {"deviceId": Q1, "quarantined": True, "claimedAt": None})


@operation("node(Device D1)")
async def _device_node(p: Probe) -> Any:
    node_id = gid("Device", D1)
    found = await p.read("query($id: ID!) { node(id: $id) { id ... on Device { deviceId } } }",
                         {"id": node_id}, "node")
    return ok_if(found, {"id": node_id, "deviceId": D1})


def _product_or_customer(found: Any, team_view: Any, customer_view: Any) -> Any:
    if found is not None and found == customer_view:
        return CUS
    return ok_if(found, team_view)


@operation("device(D1).product")
async def _device_product(p: Probe) -> Any:
    found = await p.device(D1, "deviceId product { slug }")
    return _product_or_customer(found, {"deviceId": D1, "product": {"slug": "thermostat"}},
                                {"deviceId": D1, "product": None})


def _events_seen(p: Probe, device_id: str, slug: str | None) -> dict[str, Any]:
    return {"events": {"edges": [{"node": {
        "id": p.world.event_ids[device_id], "name": "temp", "data": "21",
        "device": {"deviceId": device_id}, "product": {"slug": slug} if slug else None}}]}}


async def _device_events(p: Probe, device_id: str, slug: str) -> Any:
    found = await p.device(device_id, 'events(filter: {prefix: "temp"}) { edges { node { id '
                                      "name data device { deviceId } product { slug } } } }")
    return _product_or_customer(found, _events_seen(p, device_id, slug),
                                _events_seen(p, device_id, None))


@operation("device(D1).events")
async def _device_events_d1(p: Probe) -> Any:
    return await _device_events(p, D1, "thermostat")


@operation("device(E1).events")
async def _device_events_e1(p: Probe) -> Any:
    return await _device_events(p, E1, "kettle")


@operation("node(Event D1)")
async def _event_node(p: Probe) -> Any:
    node_id = p.world.event_ids[D1]
    found = await p.read("query($id: ID!) { node(id: $id) { id ... on Event { name device { "
                         "deviceId } product { slug } } } }", {"id": node_id}, "node")
    team_view = {"id": node_id, "name": "temp", "device": {"deviceId": D1},
                 "product": {"slug": "thermostat"}}
    return _product_or_customer(found, team_view, {**team_view, "product": None})


@operation("device(D1).variable")
async def _variable(p: Probe) -> Any:
    found = await p.device(D1, 'variable(name: "temp") { value userErrors { code } }')
    if found is None or isinstance(found, str) or found["variable"]["value"] is not None:
        return found
    return found["variable"]["userErrors"][0]["code"]


async def _call(p: Probe, device_id: str) -> Any:
    payload, code = await p.mutate("callFunction", "CallFunctionInput",
                                   {"deviceId": device_id, "name": "reboot"}, "returnValue")
    return code if payload["returnValue"] is None else payload


@operation("callFunction(D1)")
async def _call_d1(p: Probe) -> Any:
    return await _call(p, D1)


@operation("callFunction(D2)")
async def _call_d2(p: Probe) -> Any:
    return await _call(p, D2)


@operation("callFunction(E1)")
async def _call_e1(p: Probe) -> Any:
    return await _call(p, E1)


@operation("SSE device D1")
async def _sse_d1(p: Probe) -> Any:
    return await p.sse(f"/v1/devices/{D1}/events", D1, p.world.thermostat)


@operation("SSE device E1")
async def _sse_e1(p: Probe) -> Any:
    return await p.sse(f"/v1/devices/{E1}/events", E1, p.world.kettle)


DEVICE_EVENTS = ("subscription($id: String!) { deviceEvents(deviceId: $id) { missed event { "
                 "name deviceId } } }")
PRODUCT_EVENTS = ("subscription($id: ID!) { productEvents(productId: $id) { missed event { "
                  "name deviceId } } }")


@operation("deviceEvents(D1)")
async def _subscribe_d1(p: Probe) -> Any:
    return await p.subscription(DEVICE_EVENTS, events.device_channel(D1), {"id": D1}, D1,
                                p.world.thermostat)


@operation("deviceEvents(D2)")
async def _subscribe_d2(p: Probe) -> Any:
    return await p.subscription(DEVICE_EVENTS, events.device_channel(D2), {"id": D2}, D2,
                                p.world.thermostat)


@operation("customerDevices")
async def _customer_devices(p: Probe) -> Any:
    found = await p.read("{ customerDevices { edges { node { deviceId } } } }", {},
                         "customerDevices")
    return None if found is None else [edge["node"]["deviceId"] for edge in found["edges"]]


@operation("product(thermostat)")
async def _product(p: Probe) -> Any:
    return ok_if(await p.product("slug"), {"slug": "thermostat"})


@operation("node(Product)")
async def _product_node(p: Probe) -> Any:
    node_id = gid("Product", p.world.thermostat.id)
    found = await p.read("query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, "node")
    return ok_if(found, {"id": node_id})


@operation("product.devices")
async def _product_devices(p: Probe) -> Any:
    found = await p.product("devices(orderBy: DEVICE_ID) { edges { node { deviceId } } }",
                            "devices")
    return ok_if(found, {"edges": [{"node": {"deviceId": D1}}, {"node": {"deviceId": D2}},
                                   {"node": {"deviceId": M1}}]})


@operation("product.events")
async def _product_events(p: Probe) -> Any:
    found = await p.product('events(filter: {prefix: "temp"}) { edges { node { deviceId } } }',
                            "events")
    return ok_if(found, {"edges": [{"node": {"deviceId": D2}}, {"node": {"deviceId": D1}}]})


@operation("productEvents")
async def _log(p: Probe) -> Any:
    found = await p.read(
        'query($id: ID!) { productEvents(productId: $id, filter: {prefix: "temp"}) { edges { '
        "node { deviceId } } } }",
        {"id": gid("Product", p.world.thermostat.id)}, "productEvents")
    return ok_if(found, {"edges": [{"node": {"deviceId": D2}}, {"node": {"deviceId": D1}}]})


@operation("SSE product")
async def _sse_product(p: Probe) -> Any:
    return await p.sse("/v1/products/thermostat/events", D1, p.world.thermostat)


@operation("productEvents subscription")
async def _subscribe_product(p: Probe) -> Any:
    return await p.subscription(PRODUCT_EVENTS, events.product_channel(p.world.thermostat.id),
                                {"id": gid("Product", p.world.thermostat.id)}, D1,
                                p.world.thermostat)


@operation("publishEvent")
async def _publish(p: Probe) -> Any:
    before = await Event.all().count()
    payload, code = await p.mutate(
        "publishEvent", "PublishEventInput",
        {"productId": gid("Product", p.world.thermostat.id), "name": "note"}, "event { name }")
    stored = await Event.all().count() - before
    if code is not None:
        return code if stored == 0 and payload["event"] is None else f"{code}, yet stored"
    return OK if stored == 1 and payload["event"] == {"name": "note"} else payload


async def _claim_code(p: Probe, product: Product) -> Any:
    payload, code = await p.mutate(
        "createClaimCode", "CreateClaimCodeInput", {"productId": gid("Product", product.id)},
        "claimCode expiresAt")
    if code is not None:
        return code if payload["claimCode"] is None else payload
    return OK if payload["claimCode"].startswith("dc_cc_") else payload


@operation("createClaimCode(thermostat)")
async def _claim_code_thermostat(p: Probe) -> Any:
    return await _claim_code(p, p.world.thermostat)


@operation("createClaimCode(kettle)")
async def _claim_code_kettle(p: Probe) -> Any:
    return await _claim_code(p, p.world.kettle)


async def _audited(p: Probe, name: str, input_type: str, input: dict[str, Any],
                   selection: str, changed: Callable[[], Awaitable[bool]]) -> Any:
    """A team mutation: OK with one audit entry and its effect, or its code and neither."""
    before = await AuditEntry.all().count()
    payload, code = await p.mutate(name, input_type, input, selection)
    written = await AuditEntry.all().count() - before
    effect = await changed()
    if code is not None:
        return code if written == 0 and not effect else f"{code}, yet changed"
    return OK if written == 1 and effect else (payload, written, effect)


@operation("importDevices")
async def _import(p: Probe) -> Any:
    async def imported() -> bool:
        return (await Device.get(id=LOOSE)).product_id == p.world.thermostat.id

    return await _audited(p, "importDevices", "ImportDevicesInput", {
        "productId": gid("Product", p.world.thermostat.id), "deviceIds": [LOOSE]},
        "importedDeviceIds", imported)


@operation("approveQuarantinedDevice")
async def _approve(p: Probe) -> Any:
    async def approved() -> bool:
        return (await Device.get(id=Q1)).quarantine == Quarantine.NONE

    return await _audited(p, "approveQuarantinedDevice", "DeviceInput", {"deviceId": Q1},
                          "device { deviceId }", approved)


@operation("updateDevice(D1)")
async def _update(p: Probe) -> Any:
    async def renamed() -> bool:
        return (await Device.get(id=D1)).name == "Mine now"

    return await _audited(p, "updateDevice", "UpdateDeviceInput",
                          {"deviceId": D1, "name": "Mine now"}, "device { deviceId }", renamed)


@operation("removeDeviceFromProduct(M1)")
async def _remove(p: Probe) -> Any:
    async def removed() -> bool:
        device = await Device.get(id=M1)
        return device.product_id is None and device.customer_id is None

    return await _audited(p, "removeDeviceFromProduct", "DeviceInput", {"deviceId": M1},
                          "device { deviceId claimedAt }", removed)


def test_the_table_covers_every_operation_and_caller() -> None:
    assert list(OPERATIONS) == list(MATRIX)
    assert all(len(cells) == len(CALLERS) for cells in MATRIX_ROWS.values())


@pytest.mark.parametrize("caller", CALLERS)
async def test_customer_isolation_matrix(http, live_server, world: World, caller: str) -> None:
    probe = Probe(http, live_server, await caller_token(caller, world), world)
    differences = {}
    for name, run in OPERATIONS.items():
        found = await run(probe)
        if found != MATRIX[name][caller]:
            differences[name] = (MATRIX[name][caller], found)
    assert differences == {}, "expected vs found: " + repr(differences)


# --- Access ends with the claim --------------------------------------------------------------


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams opened from now on re-check their subscriber's access every 0.2 s."""
    monkeypatch.setattr(get_settings(), "stream_access_check_interval", 0.2)


async def test_removing_the_customer_ends_their_streams_and_access(
    http, live_server, world: World, quick_checks
) -> None:
    token = await customer_token(world.customers["customerA"])
    async with graphql_ws(live_server, token) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        await until_subscribed(events.device_channel(D1))
        async with sse(http, f"/v1/devices/{D1}/events", token) as stream:
            await devices.remove_device_customer(world.acme.principals["DEVELOPER"], D1)
            await stream.ends()
        message = await receive(ws)
        assert message["type"] == "next"
        assert [(e["message"], e["extensions"]) for e in message["payload"]["errors"]] == [
            ("No such device.", {"code": "NOT_FOUND"})]
        assert await receive(ws) == {"id": "1", "type": "complete"}
    await until_subscribed(events.device_channel(D1), 0)
    query = ("query($id: String!) { device(deviceId: $id) { deviceId } customerDevices { "
             "edges { node { deviceId } } } }")
    assert (await graphql(http, query, {"id": D1}, token=token))["data"] == {
        "device": None, "customerDevices": {"edges": [{"node": {"deviceId": M1}}]}}


@pytest.mark.parametrize("change", [
    {"product_id": None}, {"quarantine": "QUARANTINED"}, {"quarantine": "DENIED"},
])
async def test_a_device_out_of_the_customers_product_is_out_of_reach(
    http, world: World, change: dict[str, Any]
) -> None:
    # Whatever moved it (the services also clear its customer), the customer's product and
    # the device's must agree, and it must be one of the product's own devices.
    if change == {"product_id": None}:
        change = {"product_id": world.kettle.id}
    await Device.filter(id=D1).update(**change)
    token = await customer_token(world.customers["customerA"])
    body = await graphql(http, "query($id: String!) { device(deviceId: $id) { deviceId } "
                               "customerDevices { edges { node { deviceId } } } }",
                         {"id": D1}, token=token)
    assert body["data"] == {"device": None,
                            "customerDevices": {"edges": [{"node": {"deviceId": M1}}]}}
    payload = await run_mutation(http, "callFunction", "CallFunctionInput",
                                 {"deviceId": D1, "name": "reboot"}, "returnValue", token=token)
    assert payload == {"returnValue": None, "userErrors": [
        {"field": "deviceId", "message": "No such device.", "code": "NOT_FOUND"}]}
    assert (await refused(http, f"/v1/devices/{D1}/events", token)).status_code == 404
