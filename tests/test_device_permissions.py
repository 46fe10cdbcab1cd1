"""Who may read and manage devices: every device field and mutation against every caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from models.devices import Device
from models.organizations import AuditEntry
from tests.helpers import (
    TEAM_ROLES,
    Team,
    access_token,
    client_token,
    gid,
    graphql,
    make_user,
    service_client,
)
from tests.test_fleet_queries import Fleet, device_id, fleet  # noqa: F401 - the fixture

CALLERS = ("anonymous", "client", "outsider", "claimer", *TEAM_ROLES)
OK, NF, FB = "OK", "NOT_FOUND", "FORBIDDEN"
NQ, NIP = "NOT_QUARANTINED", "NOT_IN_PRODUCT"
_ = None

# The world: the fleet of tests.test_fleet_queries (Acme's product "thermostat" with ten
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
MATRIX_ROWS: dict[str, tuple[Any, ...]] = {
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
}
# fmt: on
MATRIX = {
    operation: dict(zip(CALLERS, cells, strict=True)) for operation, cells in MATRIX_ROWS.items()
}
MINE = device_id("c1a1")  # claimed by "claimer"
OWN0, OWN1, OWN2, Q0, Q1 = (device_id(p) for p in ("a0", "a1", "a2", "e0", "e1"))


@dataclass
class Probe:
    http: httpx.AsyncClient
    token: str | None
    fleet: Fleet

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

    async def device(self, device: str, selection: str = "deviceId") -> Any:
        return await self.read(f"query($id: String!) {{ device(deviceId: $id) {{ {selection} }} }}",
                               {"id": device}, "device")

    async def product(self, selection: str, *path: str) -> Any:
        return await self.read(f"{{ product(idOrSlug: \"thermostat\") {{ {selection} }} }}", {},
                               "product", *path)

    async def mutate(self, name: str, input_type: str, input: dict[str, Any]) -> str:
        before = await AuditEntry.all().count()
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       "{ device { deviceId } userErrors { code } } }",
            {"input": input}, token=self.token)
        if body.get("errors"):
            return f"GraphQL errors: {body['errors']}"
        payload = body["data"][name]
        written = await AuditEntry.all().count() - before
        in_product = (await Device.get(id=input["deviceId"])).product_id is not None
        if payload["userErrors"]:
            code = payload["userErrors"][0]["code"]
            return code if written == 0 and payload["device"] is None else (
                f"{code}, yet {written} audit entries")
        expected = 1 if in_product or name == "removeDeviceFromProduct" else 0
        return OK if written == expected and payload["device"] else (
            f"OK, yet {written} audit entries and device={payload['device']}")


def ok_if(value: Any, expected: Any) -> Any:
    return OK if value is not None and value == expected else value


Operation = Callable[[Probe], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


@operation("device(deviceId)")
async def _device(p: Probe) -> Any:
    return ok_if(await p.device(OWN0, "deviceId name"),
                 {"deviceId": OWN0, "name": "Kitchen sensor"})


@operation("device(quarantined)")
async def _device_quarantined(p: Probe) -> Any:
    return ok_if(await p.device(Q0, "quarantined"), {"quarantined": True})


@operation("device(claimed)")
async def _device_claimed(p: Probe) -> Any:
    return ok_if(await p.device(MINE, "deviceId product { id }"),
                 {"deviceId": MINE, "product": None})


@operation("node(Device)")
async def _node(p: Probe) -> Any:
    node_id = gid("Device", OWN0)
    found = await p.read("query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, "node")
    return ok_if(found, {"id": node_id})


@operation("device.product")
async def _device_product(p: Probe) -> Any:
    return ok_if(await p.device(OWN0, "product { slug }"), {"product": {"slug": "thermostat"}})


@operation("product.devices")
async def _devices(p: Probe) -> Any:
    found = await p.product("devices(first: 2, orderBy: DEVICE_ID) { edges { node "
                            "{ deviceId } } }", "devices")
    return ok_if(found, {"edges": [{"node": {"deviceId": OWN0}}, {"node": {"deviceId": OWN1}}]})


@operation("product.deviceStats")
async def _stats(p: Probe) -> Any:
    return ok_if(await p.product("deviceStats { total }", "deviceStats"), {"total": 10})


@operation("product.deviceErrors")
async def _errors(p: Probe) -> Any:
    found = await p.product("deviceErrors(first: 1) { edges { node { code } } }",
                            "deviceErrors")
    return ok_if(found, {"edges": [{"node": {"code": "E_BOOT"}}]})


@operation("product.errorSummary")
async def _summary(p: Probe) -> Any:
    found = await p.product("errorSummary { code }", "errorSummary")
    return ok_if(found, [{"code": "E_CRASH"}, {"code": "E_WIFI"}, {"code": "E_BOOT"}])


@operation("updateDevice")
async def _update(p: Probe) -> str:
    return await p.mutate("updateDevice", "UpdateDeviceInput",
                          {"deviceId": OWN1, "name": f"Renamed {p.token and p.token[-4:]}"})


@operation("updateDevice(claimed)")
async def _update_claimed(p: Probe) -> str:
    return await p.mutate("updateDevice", "UpdateDeviceInput",
                          {"deviceId": MINE, "notes": f"Notes {p.token and p.token[-4:]}"})


@operation("removeDeviceFromProduct")
async def _remove(p: Probe) -> str:
    return await p.mutate("removeDeviceFromProduct", "DeviceInput", {"deviceId": OWN2})


@operation("removeDeviceFromProduct(clm)")
async def _remove_claimed(p: Probe) -> str:
    return await p.mutate("removeDeviceFromProduct", "DeviceInput", {"deviceId": MINE})


@operation("approveQuarantinedDevice")
async def _approve(p: Probe) -> str:
    return await p.mutate("approveQuarantinedDevice", "DeviceInput", {"deviceId": Q0})


@operation("denyQuarantinedDevice")
async def _deny(p: Probe) -> str:
    return await p.mutate("denyQuarantinedDevice", "DeviceInput", {"deviceId": Q1})


@operation("approveQuarantinedDevice(no)")
async def _approve_not_quarantined(p: Probe) -> str:
    return await p.mutate("approveQuarantinedDevice", "DeviceInput", {"deviceId": OWN0})


def test_the_table_covers_every_operation_and_caller():
    assert list(OPERATIONS) == list(MATRIX)
    assert all(len(cells) == len(CALLERS) for cells in MATRIX.values())


async def _token(http: httpx.AsyncClient, caller: str, acme: Team) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "client":
        return await client_token(http, *await service_client())
    if caller in TEAM_ROLES:
        return await access_token(acme.email(caller))
    return await access_token(f"{caller}@example.com")


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, fleet, caller):  # noqa: F811 - the fixture
    claimer = await make_user("claimer@example.com")
    await Device.create(id=MINE, secret_hash="0" * 64, platform="Photon",
                        provisioned_at=fleet.product.created_at, claimed_by=claimer)
    probe = Probe(http, await _token(http, caller, fleet.acme), fleet)
    differences = {}
    for name, run in OPERATIONS.items():
        found = await run(probe)
        if found != MATRIX[name][caller]:
            differences[name] = (MATRIX[name][caller], found)
    assert differences == {}, "expected vs found: " + repr(differences)
