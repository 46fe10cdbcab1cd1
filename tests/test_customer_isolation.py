"""What a customer token reaches: its own claimed devices (state, events, functions, variables,
live streams), nothing of another customer's, nothing product-wide. Every device-level and
product-level field, mutation and stream against every kind of caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fleet import devices, events
from models.customers import Customer
from models.devices import Device, Event, Quarantine
from models.products import Product
from models.usage import SimChange
from tests.support.accounts import TEAM_ROLES, Team
from tests.support.constants import T
from tests.support.customers import customer_token, make_customer
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.live import graphql_ws, refused, sse, subscribe, until_subscribed
from tests.support.matrix import (
    DEVICE_EVENTS,
    FB,
    NF,
    OK,
    PRODUCT_EVENTS,
    Matrix,
    Probe,
    caller_token,
    ok_if,
)
from tests.support.polling import receive
from tests.support.servers import Clock
from tests.support.sims import iccid
from tests.support.worlds import two_organizations

CALLERS = ("anonymous", "outsider", "customerA", "customerB", "customerC", *TEAM_ROLES)
OFF, UN = "DEVICE_OFFLINE", "UNAUTHENTICATED"
CUS = "OK, without the product"  # what a customer sees: the device, not its product
_ = None

D1, D2, M1 = "a1".ljust(24, "0"), "a2".ljust(24, "0"), "a3".ljust(24, "0")
Q1, LOOSE, E1 = "b1".ljust(24, "0"), "b2".ljust(24, "0"), "c1".ljust(24, "0")
AT = T.isoformat()
D1_ICCID = iccid(1)  # D1 is cellular

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
MATRIX = Matrix(CALLERS, {
    #                              anon out  cusA cusB cusC OWN  ADM  DEV  SUP  VIEW
    "device(D1)":                  (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D2)":                  (_,  _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "device(E1)":                  (_,  OK,  _,   _,   OK,  _,   _,   _,   _,   _),
    "device(Q1)":                  (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Device D1)":             (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).product":          (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).events":           (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).sim":              (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(E1).events":           (_,  OK,  _,   _,   CUS, _,   _,   _,   _,   _),
    "node(Event D1)":              (_,  _,   CUS, _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(D1).variable":         (_,  _,   OFF, _,   _,   OFF, OFF, OFF, OFF, FB),
    "callFunction(D1)":            (NF, NF,  OFF, NF,  NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(D2)":            (NF, NF,  NF,  OFF, NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(E1)":            (NF, OFF, NF,  NF,  OFF, NF,  NF,  NF,  NF,  NF),
    "SSE device D1":               (401, 404, OK, 404, 404, OK,  OK,  OK,  OK,  OK),
    "SSE device E1":               (401, OK, 404, 404, OK,  404, 404, 404, 404, 404),
    "deviceEvents(D1)":            (UN, NF,  OK,  NF,  NF,  OK,  OK,  OK,  OK,  OK),
    "deviceEvents(D2)":            (UN, NF,  NF,  OK,  NF,  OK,  OK,  OK,  OK,  OK),
    "customerDevices":             (_,  _,   [D1, M1], [D2], [E1], _, _, _,   _,   _),
    "product(thermostat)":         (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Product)":               (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.devices":             (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.events":              (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents":               (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "SSE product":                 (401, 404, 404, 404, 404, OK, OK,  OK,  OK,  OK),
    "productEvents subscription":  (UN, NF,  NF,  NF,  NF,  OK,  OK,  OK,  OK,  OK),
    "publishEvent":                (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createClaimCode(thermostat)": (UN, NF,  OK,  OK,  NF,  NF,  NF,  NF,  NF,  NF),
    "createClaimCode(kettle)":     (UN, NF,  NF,  NF,  OK,  NF,  NF,  NF,  NF,  NF),
    "importDevices":               (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "approveQuarantinedDevice":    (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "updateDevice(D1)":            (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "removeDeviceFromProduct(M1)": (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "setSimActive(D1)":            (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
})
# fmt: on


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
    orgs = await two_organizations(kettle_auth="TWO_LEGGED")
    acme, thermostat, kettle = orgs.acme, orgs.thermostat, orgs.kettle
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
            customer=customers[owner] if owner else None, claimed_at=T if owner else None,
            iccid=D1_ICCID if device_id == D1 else None)
    stored = await events.record([
        events.NewEvent(product_id=product.id, device_id=device_id, name="temp", data="21",
                        published_at=T)
        for device_id, product in ((D1, thermostat), (D2, thermostat), (E1, kettle))
    ])
    event_ids = {event.device_id: gid("Event", event.id) for event in stored if event}
    return World(acme, thermostat, kettle, customers, event_ids)


def _seen(device_id: str) -> dict[str, Any]:
    return {"deviceId": device_id, "claimedAt": AT, "functions": ["reboot"]}


@MATRIX.operation("device(D1)", D1)
@MATRIX.operation("device(D2)", D2)
@MATRIX.operation("device(E1)", E1)
async def _device(p: Probe[World], device_id: str) -> Any:
    return ok_if(await p.device(device_id, "deviceId claimedAt functions"), _seen(device_id))


@MATRIX.operation("device(Q1)")
async def _device_q1(p: Probe[World]) -> Any:
    return ok_if(await p.device(Q1, "deviceId quarantined claimedAt"),
                 {"deviceId": Q1, "quarantined": True, "claimedAt": None})


@MATRIX.operation("node(Device D1)")
async def _device_node(p: Probe[World]) -> Any:
    node_id = gid("Device", D1)
    found = await p.read("query($id: ID!) { node(id: $id) { id ... on Device { deviceId } } }",
                         {"id": node_id}, "node")
    return ok_if(found, {"id": node_id, "deviceId": D1})


def _product_or_customer(found: Any, team_view: Any, customer_view: Any) -> Any:
    if found is not None and found == customer_view:
        return CUS
    return ok_if(found, team_view)


@MATRIX.operation("device(D1).product")
async def _device_product(p: Probe[World]) -> Any:
    found = await p.device(D1, "deviceId product { slug }")
    return _product_or_customer(found, {"deviceId": D1, "product": {"slug": "thermostat"}},
                                {"deviceId": D1, "product": None})


def _events_seen(p: Probe[World], device_id: str, slug: str | None) -> dict[str, Any]:
    return {"events": {"edges": [{"node": {
        "id": p.world.event_ids[device_id], "name": "temp", "data": "21",
        "device": {"deviceId": device_id}, "product": {"slug": slug} if slug else None}}]}}


@MATRIX.operation("device(D1).events", D1, "thermostat")
@MATRIX.operation("device(E1).events", E1, "kettle")
async def _device_events(p: Probe[World], device_id: str, slug: str) -> Any:
    found = await p.device(device_id, 'events(filter: {prefix: "temp"}) { edges { node { id '
                                      "name data device { deviceId } product { slug } } } }")
    return _product_or_customer(found, _events_seen(p, device_id, slug),
                                _events_seen(p, device_id, None))


@MATRIX.operation("device(D1).sim")
async def _device_sim(p: Probe[World]) -> Any:
    found = await p.device(D1, "cellular iccid simActive simChanges { edges { node { active } "
                               "} }")
    return _product_or_customer(
        found, {"cellular": True, "iccid": D1_ICCID, "simActive": True,
                "simChanges": {"edges": []}},
        {"cellular": True, "iccid": None, "simActive": None, "simChanges": None})


@MATRIX.operation("node(Event D1)")
async def _event_node(p: Probe[World]) -> Any:
    node_id = p.world.event_ids[D1]
    found = await p.read("query($id: ID!) { node(id: $id) { id ... on Event { name device { "
                         "deviceId } product { slug } } } }", {"id": node_id}, "node")
    team_view = {"id": node_id, "name": "temp", "device": {"deviceId": D1},
                 "product": {"slug": "thermostat"}}
    return _product_or_customer(found, team_view, {**team_view, "product": None})


@MATRIX.operation("device(D1).variable")
async def _variable(p: Probe[World]) -> Any:
    found = await p.device(D1, 'variable(name: "temp") { value userErrors { code } }')
    if found is None or isinstance(found, str) or found["variable"]["value"] is not None:
        return found
    return found["variable"]["userErrors"][0]["code"]


@MATRIX.operation("callFunction(D1)", D1)
@MATRIX.operation("callFunction(D2)", D2)
@MATRIX.operation("callFunction(E1)", E1)
async def _call(p: Probe[World], device_id: str) -> Any:
    payload, code = await p.mutate("callFunction", "CallFunctionInput",
                                   {"deviceId": device_id, "name": "reboot"}, "returnValue")
    return code if payload["returnValue"] is None else payload


@MATRIX.operation("SSE device D1")
async def _sse_d1(p: Probe[World]) -> Any:
    return await p.sse(f"/v1/devices/{D1}/events", D1, p.world.thermostat)


@MATRIX.operation("SSE device E1")
async def _sse_e1(p: Probe[World]) -> Any:
    return await p.sse(f"/v1/devices/{E1}/events", E1, p.world.kettle)


@MATRIX.operation("deviceEvents(D1)", D1)
@MATRIX.operation("deviceEvents(D2)", D2)
async def _subscribe(p: Probe[World], device_id: str) -> Any:
    return await p.subscription(DEVICE_EVENTS, events.device_channel(device_id),
                                {"id": device_id}, device_id, p.world.thermostat)


@MATRIX.operation("customerDevices")
async def _customer_devices(p: Probe[World]) -> Any:
    found = await p.read("{ customerDevices { edges { node { deviceId } } } }", {},
                         "customerDevices")
    return None if found is None else [edge["node"]["deviceId"] for edge in found["edges"]]


@MATRIX.operation("product(thermostat)")
async def _product(p: Probe[World]) -> Any:
    return ok_if(await p.product("slug"), {"slug": "thermostat"})


@MATRIX.operation("node(Product)")
async def _product_node(p: Probe[World]) -> Any:
    node_id = gid("Product", p.world.thermostat.id)
    found = await p.read("query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, "node")
    return ok_if(found, {"id": node_id})


@MATRIX.operation("product.devices")
async def _product_devices(p: Probe[World]) -> Any:
    found = await p.product("devices(orderBy: DEVICE_ID) { edges { node { deviceId } } }",
                            "devices")
    return ok_if(found, {"edges": [{"node": {"deviceId": D1}}, {"node": {"deviceId": D2}},
                                   {"node": {"deviceId": M1}}]})


@MATRIX.operation("product.events")
async def _product_events(p: Probe[World]) -> Any:
    found = await p.product('events(filter: {prefix: "temp"}) { edges { node { deviceId } } }',
                            "events")
    return ok_if(found, {"edges": [{"node": {"deviceId": D2}}, {"node": {"deviceId": D1}}]})


@MATRIX.operation("productEvents")
async def _log(p: Probe[World]) -> Any:
    found = await p.read(
        'query($id: ID!) { productEvents(productId: $id, filter: {prefix: "temp"}) { edges { '
        "node { deviceId } } } }",
        {"id": gid("Product", p.world.thermostat.id)}, "productEvents")
    return ok_if(found, {"edges": [{"node": {"deviceId": D2}}, {"node": {"deviceId": D1}}]})


@MATRIX.operation("SSE product")
async def _sse_product(p: Probe[World]) -> Any:
    return await p.sse("/v1/products/thermostat/events", D1, p.world.thermostat)


@MATRIX.operation("productEvents subscription")
async def _subscribe_product(p: Probe[World]) -> Any:
    return await p.subscription(PRODUCT_EVENTS, events.product_channel(p.world.thermostat.id),
                                {"id": gid("Product", p.world.thermostat.id)}, D1,
                                p.world.thermostat)


@MATRIX.operation("publishEvent")
async def _publish(p: Probe[World]) -> Any:
    before = await Event.all().count()
    payload, code = await p.mutate(
        "publishEvent", "PublishEventInput",
        {"productId": gid("Product", p.world.thermostat.id), "name": "note"}, "event { name }")
    stored = await Event.all().count() - before
    if code is not None:
        return code if stored == 0 and payload["event"] is None else f"{code}, yet stored"
    return OK if stored == 1 and payload["event"] == {"name": "note"} else payload


async def _claim_code(p: Probe[World], product: Product) -> Any:
    payload, code = await p.mutate(
        "createClaimCode", "CreateClaimCodeInput", {"productId": gid("Product", product.id)},
        "claimCode expiresAt")
    if code is not None:
        return code if payload["claimCode"] is None else payload
    return OK if payload["claimCode"].startswith("dc_cc_") else payload


@MATRIX.operation("createClaimCode(thermostat)")
async def _claim_code_thermostat(p: Probe[World]) -> Any:
    return await _claim_code(p, p.world.thermostat)


@MATRIX.operation("createClaimCode(kettle)")
async def _claim_code_kettle(p: Probe[World]) -> Any:
    return await _claim_code(p, p.world.kettle)


@MATRIX.operation("importDevices")
async def _import(p: Probe[World]) -> Any:
    async def imported() -> bool:
        return (await Device.get(id=LOOSE)).product_id == p.world.thermostat.id

    return await p.audited("importDevices", "ImportDevicesInput", {
        "productId": gid("Product", p.world.thermostat.id), "deviceIds": [LOOSE]},
        "importedDeviceIds", effect=imported)


@MATRIX.operation("approveQuarantinedDevice")
async def _approve(p: Probe[World]) -> Any:
    async def approved() -> bool:
        return (await Device.get(id=Q1)).quarantine == Quarantine.NONE

    return await p.audited("approveQuarantinedDevice", "DeviceInput", {"deviceId": Q1},
                           "device { deviceId }", effect=approved)


@MATRIX.operation("updateDevice(D1)")
async def _update(p: Probe[World]) -> Any:
    async def renamed() -> bool:
        return (await Device.get(id=D1)).name == "Mine now"

    return await p.audited("updateDevice", "UpdateDeviceInput",
                           {"deviceId": D1, "name": "Mine now"}, "device { deviceId }",
                           effect=renamed)


@MATRIX.operation("removeDeviceFromProduct(M1)")
async def _remove(p: Probe[World]) -> Any:
    async def removed() -> bool:
        device = await Device.get(id=M1)
        return device.product_id is None and device.customer_id is None

    return await p.audited("removeDeviceFromProduct", "DeviceInput", {"deviceId": M1},
                           "device { deviceId claimedAt }", effect=removed)


@MATRIX.operation("setSimActive(D1)")
async def _set_sim(p: Probe[World]) -> Any:
    async def deactivated() -> bool:
        return await SimChange.filter(device_id=D1, active=False).exists()

    return await p.audited("setSimActive", "SetSimActiveInput",
                           {"deviceId": D1, "active": False}, "device { simActive }",
                           effect=deactivated)


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_customer_isolation_matrix(http, live_server, world: World, caller: str) -> None:
    token = await caller_token(http, caller, world.acme, customers=world.customers)
    await MATRIX.check(caller, Probe(http, token, world, caller, live_server))


# --- Access ends with the claim --------------------------------------------------------------


async def test_removing_the_customer_ends_their_streams_and_access(
    http, live_server, world: World, quick_checks
) -> None:
    token = await customer_token(world.customers["customerA"])
    async with graphql_ws(live_server, token) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        await until_subscribed(events.device_channel(D1))
        async with sse(http, f"/v1/devices/{D1}/events", token) as stream:
            await devices.remove_device_customer(world.acme.principals["DEVELOPER"], D1)
            assert await stream.ends() == {"code": "NOT_FOUND", "message": "No such device."}
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
