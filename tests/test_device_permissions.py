"""Who may read and manage devices: every device field and mutation against every caller."""

from __future__ import annotations

from typing import Any

import pytest

from models.devices import Device
from tests.support.accounts import TEAM_ROLES, make_user
from tests.support.graphql import gid
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if
from tests.support.sims import iccid
from tests.support.worlds import Fleet, device_id

CALLERS = ("anonymous", "client", "outsider", "claimer", *TEAM_ROLES)
NQ, NIP = "NOT_QUARANTINED", "NOT_IN_PRODUCT"
_ = None

# The world: the fleet (tests.support.worlds: Acme's product "thermostat" with ten
# devices, two quarantined (Q0, Q1) and one denied; Globex's product "kettle"; CLAIMED, in no
# product, claimed by Acme's DEVELOPER), plus a device claimed by "claimer", a signed-in user
# in no organization.
#
# Callers: anonymous; client (a client-credentials token of a service client); outsider (owner
# of Globex); claimer; then the Acme member with each role.
# Query cells: None = null; OK = the expected value; a code = a GraphQL error.
# Mutation cells: OK (and exactly one audit entry when the device is in a product), or the
# code of the userError (and no audit entry). Non-members never see FORBIDDEN.
# Rows run top to bottom in one world per caller; each mutation has its own target device.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                               anon clnt out  clmr OWN  ADM  DEV  SUP  VIEW
    "device(deviceId)":             (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(quarantined)":          (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device(claimed)":              (_,  _,   _,   OK,  _,   _,   _,   _,   _),
    "node(Device)":                 (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "device.product":               (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.devices":              (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.deviceStats":          (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.deviceErrors":         (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.errorSummary":         (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "updateDevice":                 (NF, NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "updateDevice(claimed)":        (NF, NF,  NF,  OK,  NF,  NF,  NF,  NF,  NF),
    "removeDeviceFromProduct":      (NF, NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "removeDeviceFromProduct(clm)": (NF, NF,  NF,  NIP, NF,  NF,  NF,  NF,  NF),
    "approveQuarantinedDevice":     (NF, NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "denyQuarantinedDevice":        (NF, NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "approveQuarantinedDevice(no)": (NF, NF,  NF,  NF,  NQ,  NQ,  NQ,  FB,  FB),
    "device(cellular)":             (_,  _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "setSimActive":                 (NF, NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "setSimActive(claimed)":        (NF, NF,  NF,  NIP, NF,  NF,  NF,  NF,  NF),
})
# fmt: on
MINE = device_id("c1a1")  # claimed by "claimer"
OWN0, OWN1, OWN2, Q0, Q1 = (device_id(p) for p in ("a0", "a1", "a2", "e0", "e1"))
CELLULAR, SIM_TARGET = iccid(1), device_id("b0")  # OWN0's ICCID; the device setSimActive changes


async def _mutate(p: Probe[Fleet], name: str, input_type: str, input: dict[str, Any]) -> str:
    """One audit entry when the device is in a product (or leaves it), none otherwise."""
    in_product = (await Device.get(id=input["deviceId"])).product_id is not None
    return await p.audited(name, input_type, input, "device { deviceId }",
                           entries=1 if in_product else 0)


@MATRIX.operation("device(deviceId)")
async def _device(p: Probe[Fleet]) -> Any:
    return ok_if(await p.device(OWN0, "deviceId name"),
                 {"deviceId": OWN0, "name": "Kitchen sensor"})


@MATRIX.operation("device(quarantined)")
async def _device_quarantined(p: Probe[Fleet]) -> Any:
    return ok_if(await p.device(Q0, "quarantined"), {"quarantined": True})


@MATRIX.operation("device(claimed)")
async def _device_claimed(p: Probe[Fleet]) -> Any:
    return ok_if(await p.device(MINE, "deviceId product { id }"),
                 {"deviceId": MINE, "product": None})


@MATRIX.operation("node(Device)")
async def _node(p: Probe[Fleet]) -> Any:
    return await p.node(gid("Device", OWN0))


@MATRIX.operation("device.product")
async def _device_product(p: Probe[Fleet]) -> Any:
    return ok_if(await p.device(OWN0, "product { slug }"), {"product": {"slug": "thermostat"}})


@MATRIX.operation("product.devices")
async def _devices(p: Probe[Fleet]) -> Any:
    found = await p.product("devices(first: 2, orderBy: DEVICE_ID) { edges { node "
                            "{ deviceId } } }", "devices")
    return ok_if(found, {"edges": [{"node": {"deviceId": OWN0}}, {"node": {"deviceId": OWN1}}]})


@MATRIX.operation("product.deviceStats")
async def _stats(p: Probe[Fleet]) -> Any:
    return ok_if(await p.product("deviceStats { total }", "deviceStats"), {"total": 10})


@MATRIX.operation("product.deviceErrors")
async def _errors(p: Probe[Fleet]) -> Any:
    found = await p.product("deviceErrors(first: 1) { edges { node { code } } }",
                            "deviceErrors")
    return ok_if(found, {"edges": [{"node": {"code": "E_BOOT"}}]})


@MATRIX.operation("product.errorSummary")
async def _summary(p: Probe[Fleet]) -> Any:
    found = await p.product("errorSummary { code }", "errorSummary")
    return ok_if(found, [{"code": "E_CRASH"}, {"code": "E_WIFI"}, {"code": "E_BOOT"}])


@MATRIX.operation("updateDevice")
async def _update(p: Probe[Fleet]) -> str:
    return await _mutate(p, "updateDevice", "UpdateDeviceInput",
                         {"deviceId": OWN1, "name": f"Renamed {p.token and p.token[-4:]}"})


@MATRIX.operation("updateDevice(claimed)")
async def _update_claimed(p: Probe[Fleet]) -> str:
    return await _mutate(p, "updateDevice", "UpdateDeviceInput",
                         {"deviceId": MINE, "notes": f"Notes {p.token and p.token[-4:]}"})


@MATRIX.operation("removeDeviceFromProduct", "removeDeviceFromProduct", OWN2)
@MATRIX.operation("removeDeviceFromProduct(clm)", "removeDeviceFromProduct", MINE)
@MATRIX.operation("approveQuarantinedDevice", "approveQuarantinedDevice", Q0)
@MATRIX.operation("denyQuarantinedDevice", "denyQuarantinedDevice", Q1)
@MATRIX.operation("approveQuarantinedDevice(no)", "approveQuarantinedDevice", OWN0)
async def _on_device(p: Probe[Fleet], mutation: str, device: str) -> str:
    return await _mutate(p, mutation, "DeviceInput", {"deviceId": device})


@MATRIX.operation("device(cellular)")
async def _device_cellular(p: Probe[Fleet]) -> Any:
    found = await p.device(OWN0, "cellular iccid simActive simChanges { edges { node { active "
                                 "} } }")
    return ok_if(found, {"cellular": True, "iccid": CELLULAR, "simActive": True,
                         "simChanges": {"edges": []}})


@MATRIX.operation("setSimActive", SIM_TARGET)
@MATRIX.operation("setSimActive(claimed)", MINE)
async def _set_sim(p: Probe[Fleet], device: str) -> str:
    return await _mutate(p, "setSimActive", "SetSimActiveInput",
                         {"deviceId": device, "active": False, "iccid": iccid(2)})


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, fleet: Fleet, caller: str) -> None:
    claimer = await make_user("claimer@example.com")
    await Device.create(id=MINE, secret_hash="0" * 64, platform="Photon",
                        provisioned_at=fleet.product.created_at, claimed_by=claimer)
    await Device.filter(id=OWN0).update(iccid=CELLULAR)
    await MATRIX.check(caller, Probe(http, await caller_token(http, caller, fleet.acme), fleet))
