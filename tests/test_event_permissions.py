"""Who may read event history, publish events, call functions, read variables and change the
event data limit: every such field and mutation against every kind of caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fleet import events, locations
from models.devices import Device, Event
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import TEAM_ROLES, make_user
from tests.support.constants import T
from tests.support.graphql import gid
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if
from tests.support.worlds import D1, EventWorld

CALLERS = ("anonymous", "client", "server", "outsider", "claimer", *TEAM_ROLES)
OFF = "DEVICE_OFFLINE"
_ = None

# The world: the event world (tests.support.worlds: Acme's product "thermostat" with devices D1
# and D2, its SERVER client; Globex's product "kettle"), with one event from D1 in thermostat's
# log, plus MINE, a device in no product claimed by "claimer" (a signed-in user in no
# organization), with one event of its own. Every device is offline.
#
# Callers: anonymous; client (a client-credentials token of a platform service client); server
# (a client-credentials token of thermostat's SERVER client); outsider (owner of Globex);
# claimer; then the Acme member with each role.
# Query cells: None = null; OK = the expected value; a code = a GraphQL error.
# Mutation cells: OK (and its effect: an event stored, an audit entry written) or the code of
# the userError (and no effect). Support and up may call an offline device: they are told
# DEVICE_OFFLINE, where the viewer is told FORBIDDEN and outsiders NOT_FOUND.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                             anon clnt srvr out  clmr OWN  ADM  DEV  SUP  VIEW
    "product.events":             (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents":              (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents.product":      (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "productEvents.device":       (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device.events":              (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(claimed).events":     (_,  _,   _,   _,   OK,  _,   _,   _,   _,   _),
    "device.locations":           (_,  _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(claimed).locations":  (_,  _,   _,   _,   OK,  _,   _,   _,   _,   _),
    "node(Event)":                (_,  _,   OK,  _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Event, claimed)":       (_,  _,   _,   _,   OK,  _,   _,   _,   _,   _),
    "publishEvent":               (NF, NF,  OK,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "callFunction":               (NF, NF,  OFF, NF,  NF,  OFF, OFF, OFF, OFF, FB),
    "callFunction(claimed)":      (NF, NF,  NF,  NF,  OFF, NF,  NF,  NF,  NF,  NF),
    "device.variable":            (_,  _,   _,   _,   _,   OFF, OFF, OFF, OFF, FB),
    "device(claimed).variable":   (_,  _,   _,   _,   OFF, _,   _,   _,   _,   _),
    "updateProduct(eventDataLimit)": (NF, NF, NF, NF, NF,  OK,  OK,  FB,  FB,  FB),
})
# fmt: on
MINE = "c1a1".ljust(24, "0")


@dataclass
class EventProbe(Probe[EventWorld]):
    event_id: str = ""  # the global ID of D1's event
    claimed_event_id: str = ""  # MINE's

    async def log(self, selection: str, *path: str) -> Any:
        return await self.read(
            f"query($id: ID!) {{ productEvents(productId: $id) {{ edges {{ node {{ {selection} "
            "} } } }", {"id": self.world.product_id}, "productEvents", "edges", "0", "node",
            *path)


@MATRIX.operation("product.events")
async def _product_events(p: EventProbe) -> Any:
    found = await p.read('{ product(idOrSlug: "thermostat") { events { edges { node { name '
                         "deviceId } } } } }", {}, "product", "events", "edges")
    return ok_if(found, [{"node": {"name": "temp", "deviceId": D1}}])


@MATRIX.operation("productEvents")
async def _log(p: EventProbe) -> Any:
    return ok_if(await p.log("id name"), {"id": p.event_id, "name": "temp"})


@MATRIX.operation("productEvents.product")
async def _log_product(p: EventProbe) -> Any:
    return ok_if(await p.log("product { slug }", "product"), {"slug": "thermostat"})


@MATRIX.operation("productEvents.device")
async def _log_device(p: EventProbe) -> Any:
    return ok_if(await p.log("device { deviceId }", "device"), {"deviceId": D1})


@MATRIX.operation("device.events")
async def _device_events(p: EventProbe) -> Any:
    found = await p.device(D1, "events { edges { node { id } } }", "events", "edges")
    return ok_if(found, [{"node": {"id": p.event_id}}])


@MATRIX.operation("device(claimed).events")
async def _claimed_events(p: EventProbe) -> Any:
    found = await p.device(MINE, "events { edges { node { id product { id } device { "
                                 "deviceId } } } }", "events", "edges")
    return ok_if(found, [{"node": {"id": p.claimed_event_id, "product": None,
                                   "device": {"deviceId": MINE}}}])


@MATRIX.operation("device.locations", D1, 45.5)
@MATRIX.operation("device(claimed).locations", MINE, -12.25)
async def _locations(p: EventProbe, device_id: str, lat: float) -> Any:
    found = await p.device(device_id, "locations { edges { node { lat lon } } }", "locations",
                           "edges")
    return ok_if(found, [{"node": {"lat": lat, "lon": 7.0}}])


@MATRIX.operation("node(Event)")
async def _event_node(p: EventProbe) -> Any:
    return await p.node(p.event_id)


@MATRIX.operation("node(Event, claimed)")
async def _claimed_event_node(p: EventProbe) -> Any:
    return await p.node(p.claimed_event_id)


@MATRIX.operation("publishEvent")
async def _publish(p: EventProbe) -> Any:
    before = await Event.all().count()
    payload, code = await p.mutate(
        "publishEvent", "PublishEventInput",
        {"productId": p.world.product_id, "name": "note", "data": "hello"}, "event { name }")
    stored = await Event.all().count() - before
    if code is not None:
        return code if stored == 0 and payload["event"] is None else f"{code}, yet stored"
    return OK if stored == 1 and payload["event"] == {"name": "note"} else payload


@MATRIX.operation("callFunction", D1)
@MATRIX.operation("callFunction(claimed)", MINE)
async def _call(p: EventProbe, device_id: str) -> Any:
    payload, code = await p.mutate("callFunction", "CallFunctionInput",
                                   {"deviceId": device_id, "name": "reboot"}, "returnValue")
    return code if payload["returnValue"] is None else payload


@MATRIX.operation("device.variable", D1)
@MATRIX.operation("device(claimed).variable", MINE)
async def _variable(p: EventProbe, device_id: str) -> Any:
    found = await p.device(device_id, 'variable(name: "temp") { value userErrors { code } }',
                           "variable")
    if found is None or found["value"] is not None:
        return found
    return found["userErrors"][0]["code"]


@MATRIX.operation("updateProduct(eventDataLimit)")
async def _update_limit(p: EventProbe) -> Any:
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


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, event_world: EventWorld, caller: str) -> None:
    claimer = await make_user("claimer@example.com")
    await Device.create(id=MINE, secret_hash="0" * 64, platform="Photon", provisioned_at=T,
                        claimed_by=claimer)
    (event, claimed) = await events.record([
        events.NewEvent(product_id=event_world.product.id, device_id=D1, name="temp", data="21",
                        published_at=T),
        events.NewEvent(product_id=None, device_id=MINE, name="temp", data="19",
                        published_at=T),
    ])
    assert event is not None and claimed is not None
    assert await locations.store(D1, event_world.product.id, "m1",
                                 [locations.NewPoint(lat=45.5, lon=7)], T)
    assert await locations.store(MINE, None, "m1", [locations.NewPoint(lat=-12.25, lon=7)], T)
    token = await caller_token(http, caller, event_world.acme,
                               clients={"server": event_world.server})
    await MATRIX.check(caller, EventProbe(http, token, event_world, caller=caller,
                                          event_id=gid("Event", event.id),
                                          claimed_event_id=gid("Event", claimed.id)))
