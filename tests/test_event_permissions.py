"""Who may read event history, publish events, call functions, read variables and change the
event data limit: every such field and mutation against every kind of caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fleet import events
from models.devices import Device, Event
from models.organizations import AuditEntry
from models.products import Product
from tests.helpers import (
    TEAM_ROLES,
    access_token,
    client_token,
    gid,
    graphql,
    make_user,
    service_client,
)
from tests.test_device_permissions import ok_if
from tests.test_events_api import D1, T, World, world  # noqa: F401 - the fixture

CALLERS = ("anonymous", "client", "server", "outsider", "claimer", *TEAM_ROLES)
OK, NF, FB, OFF = "OK", "NOT_FOUND", "FORBIDDEN", "DEVICE_OFFLINE"
_ = None

# The world: tests.test_events_api's (Acme's product "thermostat" with devices D1 and D2, its
# SERVER client; Globex's product "kettle"), with one event from D1 in thermostat's log, plus
# MINE, a device in no product claimed by "claimer" (a signed-in user in no organization), with
# one event of its own. Every device is offline.
#
# Callers: anonymous; client (a client-credentials token of a platform service client); server
# (a client-credentials token of thermostat's SERVER client); outsider (owner of Globex);
# claimer; then the Acme member with each role.
# Query cells: None = null; OK = the expected value; a code = a GraphQL error.
# Mutation cells: OK (and its effect: an event stored, an audit entry written) or the code of
# the userError (and no effect). Support and up may call an offline device: they are told
# DEVICE_OFFLINE, where the viewer is told FORBIDDEN and outsiders NOT_FOUND.
# fmt: off
MATRIX_ROWS: dict[str, tuple[Any, ...]] = {
    #                             anon clnt srvr out  clmr OWN  ADM  DEV  SUP  VIEW
    "product.events":             (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents":              (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents.product":      (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents.device":       (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device.events":              (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(claimed).events":     (_,  _,   _,   _,   OK,  _,   _,   _,   _,   _),
    "node(Event)":                (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Event, claimed)":       (_,  _,   _,   _,   OK,  _,   _,   _,   _,   _),
    "publishEvent":               (NF, NF,  OK,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "callFunction":               (NF, NF,  OFF, NF,  NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(claimed)":      (NF, NF,  NF,  NF,  OFF, NF,  NF,  NF,  NF,  NF),
    "device.variable":            (_,  _,   _,   _,   _,   OFF, OFF, OFF, OFF, FB),
    "device(claimed).variable":   (_,  _,   _,   _,   OFF, _,   _,   _,   _,   _),
    "updateProduct(eventDataLimit)": (NF, NF, NF, NF, NF,  OK,  OK,  FB,  FB,  FB),
}
# fmt: on
MATRIX = {
    operation: dict(zip(CALLERS, cells, strict=True)) for operation, cells in MATRIX_ROWS.items()
}
MINE = "c1a1".ljust(24, "0")


@dataclass
class Probe:
    http: httpx.AsyncClient
    token: str | None
    world: World
    event_id: str  # the global ID of D1's event
    claimed_event_id: str  # MINE's

    async def read(self, query: str, variables: dict[str, Any], *path: str) -> Any:
        body = await graphql(self.http, query, variables, token=self.token)
        if body.get("errors"):
            return body["errors"][0].get("extensions", {}).get("code", body["errors"])
        value = body["data"]
        for key in path:
            if value is None:
                return None
            value = value[int(key)] if isinstance(value, list) else value[key]
        return value

    async def device(self, device_id: str, selection: str, *path: str) -> Any:
        return await self.read(f"query($id: String!) {{ device(deviceId: $id) {{ {selection} }} }}",
                               {"id": device_id}, "device", *path)

    async def log(self, selection: str, *path: str) -> Any:
        return await self.read(
            f"query($id: ID!) {{ productEvents(productId: $id) {{ edges {{ node {{ {selection} "
            "} } } }", {"id": self.world.product_id}, "productEvents", "edges", "0", "node",
            *path)

    async def mutate(self, name: str, input_type: str, input: dict[str, Any],
                     selection: str = "") -> tuple[dict[str, Any], str | None]:
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       f"{{ {selection} userErrors {{ code }} }} }}",
            {"input": input}, token=self.token)
        assert "errors" not in body, body
        payload = body["data"][name]
        return payload, payload["userErrors"][0]["code"] if payload["userErrors"] else None


Operation = Callable[[Probe], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


@operation("product.events")
async def _product_events(p: Probe) -> Any:
    found = await p.read('{ product(idOrSlug: "thermostat") { events { edges { node { name '
                         "deviceId } } } } }", {}, "product", "events", "edges")
    return ok_if(found, [{"node": {"name": "temp", "deviceId": D1}}])


@operation("productEvents")
async def _log(p: Probe) -> Any:
    return ok_if(await p.log("id name"), {"id": p.event_id, "name": "temp"})


@operation("productEvents.product")
async def _log_product(p: Probe) -> Any:
    return ok_if(await p.log("product { slug }", "product"), {"slug": "thermostat"})


@operation("productEvents.device")
async def _log_device(p: Probe) -> Any:
    return ok_if(await p.log("device { deviceId }", "device"), {"deviceId": D1})


@operation("device.events")
async def _device_events(p: Probe) -> Any:
    found = await p.device(D1, "events { edges { node { id } } }", "events", "edges")
    return ok_if(found, [{"node": {"id": p.event_id}}])


@operation("device(claimed).events")
async def _claimed_events(p: Probe) -> Any:
    found = await p.device(MINE, "events { edges { node { id product { id } device { "
                                 "deviceId } } } }", "events", "edges")
    return ok_if(found, [{"node": {"id": p.claimed_event_id, "product": None,
                                   "device": {"deviceId": MINE}}}])


async def _node(p: Probe, node_id: str) -> Any:
    found = await p.read("query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, "node")
    return ok_if(found, {"id": node_id})


@operation("node(Event)")
async def _event_node(p: Probe) -> Any:
    return await _node(p, p.event_id)


@operation("node(Event, claimed)")
async def _claimed_event_node(p: Probe) -> Any:
    return await _node(p, p.claimed_event_id)


@operation("publishEvent")
async def _publish(p: Probe) -> Any:
    before = await Event.all().count()
    payload, code = await p.mutate(
        "publishEvent", "PublishEventInput",
        {"productId": p.world.product_id, "name": "note", "data": "hello"}, "event { name }")
    stored = await Event.all().count() - before
    if code is not None:
        return code if stored == 0 and payload["event"] is None else f"{code}, yet stored"
    return OK if stored == 1 and payload["event"] == {"name": "note"} else payload


async def _call(p: Probe, device_id: str) -> Any:
    payload, code = await p.mutate("callFunction", "CallFunctionInput",
                                   {"deviceId": device_id, "name": "reboot"}, "returnValue")
    return code if payload["returnValue"] is None else payload


@operation("callFunction")
async def _call_function(p: Probe) -> Any:
    return await _call(p, D1)


@operation("callFunction(claimed)")
async def _call_claimed(p: Probe) -> Any:
    return await _call(p, MINE)


async def _variable(p: Probe, device_id: str) -> Any:
    found = await p.device(device_id, 'variable(name: "temp") { value userErrors { code } }',
                           "variable")
    if found is None or found["value"] is not None:
        return found
    return found["userErrors"][0]["code"]


@operation("device.variable")
async def _read_variable(p: Probe) -> Any:
    return await _variable(p, D1)


@operation("device(claimed).variable")
async def _read_claimed_variable(p: Probe) -> Any:
    return await _variable(p, MINE)


@operation("updateProduct(eventDataLimit)")
async def _update_limit(p: Probe) -> Any:
    before = await AuditEntry.all().count()
    limit = (await Product.get(id=p.world.product.id)).event_data_limit + 1
    payload, code = await p.mutate(
        "updateProduct", "UpdateProductInput",
        {"productId": p.world.product_id, "eventDataLimit": limit},
        "product { eventDataLimit }")
    written = await AuditEntry.all().count() - before
    stored = (await Product.get(id=p.world.product.id)).event_data_limit
    if code is not None:
        return code if written == 0 and stored == limit - 1 else f"{code}, yet changed"
    expected = {"eventDataLimit": limit}
    return OK if written == 1 and stored == limit and payload["product"] == expected else payload


def test_the_table_covers_every_operation_and_caller():
    assert list(OPERATIONS) == list(MATRIX)
    assert all(len(cells) == len(CALLERS) for cells in MATRIX.values())


async def _token(http: httpx.AsyncClient, caller: str, scene: World) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "client":
        return await client_token(http, *await service_client())
    if caller == "server":
        return await client_token(http, *scene.server)
    if caller in TEAM_ROLES:
        return await scene.token(caller)
    return await access_token(f"{caller}@example.com")


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world: World, caller: str) -> None:  # noqa: F811
    claimer = await make_user("claimer@example.com")
    await Device.create(id=MINE, secret_hash="0" * 64, platform="Photon", provisioned_at=T,
                        claimed_by=claimer)
    (event, claimed) = await events.record([
        events.NewEvent(product_id=world.product.id, device_id=D1, name="temp", data="21",
                        published_at=T),
        events.NewEvent(product_id=None, device_id=MINE, name="temp", data="19",
                        published_at=T),
    ])
    assert event is not None and claimed is not None
    probe = Probe(http, await _token(http, caller, world), world, gid("Event", event.id),
                  gid("Event", claimed.id))
    differences = {}
    for name, run in OPERATIONS.items():
        found = await run(probe)
        if found != MATRIX[name][caller]:
            differences[name] = (MATRIX[name][caller], found)
    assert differences == {}, "expected vs found: " + repr(differences)
