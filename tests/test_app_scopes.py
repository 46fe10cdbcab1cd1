"""Third-party apps (Login with Device Cloud) act for a user only within the scopes the user
consented to: devices:read (devices one by one), events:read (a device's events, history and
live), devices:call (functions and variables). Everything else is refused, whatever the
user's role: "This app's token does not allow this." Every field, mutation and stream against
tokens with each set of scopes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from fleet import events
from models.accounts import User
from models.devices import Device, Event
from models.oauth import OAuthClient
from models.organizations import AuditEntry, Invitation
from models.products import Product
from tests.support.accounts import Team, access_token, make_user
from tests.support.constants import T
from tests.support.customers import app_token, make_customer, third_party_app
from tests.support.graphql import gid, graphql
from tests.support.live import graphql_ws, subscribe
from tests.support.matrix import DEVICE_EVENTS, FB, NF, OK, PRODUCT_EVENTS, Matrix, Probe
from tests.support.servers import Clock, LiveServer
from tests.support.sims import iccid
from tests.support.worlds import two_organizations

CALLERS = ("direct", "app", "read", "events", "call", "all", "all(viewer)", "all(outsider)")
OFF = "DEVICE_OFFLINE"
OP = "OWNER_PROTECTED"  # the owner may not leave: the rule behind the scope check
HID = "OK, without the product"  # the device (or event), not its product
EVT = "OK, the event alone"  # neither its device nor its product
_ = None
DENIED = "This app's token does not allow this."

D1, Q1, MINE, SPARE = ("a1".ljust(24, "0"), "b1".ljust(24, "0"), "c1".ljust(24, "0"),
                       "d1".ljust(24, "0"))
D1_ICCID = iccid(1)  # D1 is cellular

# The world: Acme (one member per role) and its product "thermostat" with device D1 and Q1 (in
# its quarantine), MINE (in no product, claimed by Acme's owner) and SPARE (in no product);
# Globex's product "kettle" (owner: outsider), one customer of thermostat. D1 published an
# event "temp". Every device is offline.
#
# Callers: the Acme owner signed in directly (the first-party client: no scopes apply); the
# owner through a third-party app with no scope, with each scope alone, with all three; the
# Acme viewer and the outsider through an app with all three.
# Cells as in tests/test_customer_isolation.py.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                             direct app  read events call all  all(V) all(O)
    "device(D1)":                 (OK,  FB,  OK,  FB,   FB,  OK,  OK,   _),
    "device(MINE)":               (OK,  FB,  OK,  FB,   FB,  OK,  _,    _),
    "node(Device D1)":            (OK,  FB,  OK,  FB,   FB,  OK,  OK,   _),
    "device(D1).product":         (OK,  FB,  HID, FB,   FB,  HID, HID,  _),
    "device(D1).events":          (OK,  FB,  FB,  FB,   FB,  HID, HID,  _),
    "device(D1).sim":             (OK,  FB,  OK,  FB,   FB,  OK,  OK,   _),
    "node(Event D1)":             (OK,  _,   _,   EVT,  _,   HID, HID,  _),
    "device(D1).variable":        (OFF, FB,  FB,  FB,   FB,  OFF, FB,   _),
    "callFunction(D1)":           (OFF, FB,  FB,  FB,   OFF, OFF, FB,   NF),
    "callFunction(MINE)":         (OFF, FB,  FB,  FB,   OFF, OFF, NF,   NF),
    "SSE device D1":              (OK,  403, 403, OK,   403, OK,  OK,   404),
    "SSE device MINE":            (OK,  403, 403, OK,   403, OK,  404,  404),
    "deviceEvents(D1)":           (OK,  FB,  FB,  OK,   FB,  OK,  OK,   NF),
    "customerDevices":            (_,   _,   _,   _,    _,   _,   _,    _),
    "organization(acme)":         (OK,  _,   _,   _,    _,   _,   _,    _),
    "product(thermostat)":        (OK,  FB,  FB,  FB,   FB,  FB,  FB,   _),
    "productEvents":              (OK,  FB,  FB,  FB,   FB,  FB,  FB,   _),
    "SSE product":                (OK,  403, 403, 403,  403, 403, 403,  404),
    "productEvents subscription": (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "publishEvent":               (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "updateDevice(D1)":           (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "updateDevice(MINE)":         (OK,  FB,  FB,  FB,   FB,  FB,  NF,   NF),
    "setSimActive(D1)":           (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "assignDeviceCustomer(D1)":   (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "approveQuarantinedDevice":   (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "importDevices":              (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "createProduct":              (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "createOAuthClient":          (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "updateOrganization":         (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "inviteTeamMember":           (OK,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
    "leaveOrganization":          (OP,  FB,  FB,  FB,   FB,  FB,  FB,   NF),
})
# fmt: on
SCOPES = {"app": "", "read": "devices:read", "events": "events:read", "call": "devices:call",
          "all": "devices:read events:read devices:call"}


@dataclass
class World:
    acme: Team
    thermostat: Product
    kettle: Product
    app: OAuthClient
    event_id: str
    customer_id: str


@pytest.fixture
async def world(frozen_clock: Clock) -> World:
    frozen_clock.current = T
    orgs = await two_organizations()
    acme, thermostat, kettle = orgs.acme, orgs.thermostat, orgs.kettle
    for device_id, product, quarantine, claimed_by in (
        (D1, thermostat, "NONE", None), (Q1, thermostat, "QUARANTINED", None),
        (MINE, None, "NONE", acme.users["OWNER"]), (SPARE, None, "NONE", None),
    ):
        await Device.create(id=device_id, secret_hash="0" * 64, platform="Photon",
                            provisioned_at=T, product=product, quarantine=quarantine,
                            claimed_by=claimed_by, functions=["reboot"], variables=["temp"],
                            iccid=D1_ICCID if device_id == D1 else None)
    (event,) = await events.record([events.NewEvent(
        product_id=thermostat.id, device_id=D1, name="temp", data="21", published_at=T)])
    assert event is not None
    customer = await make_customer(thermostat, "alice@customers.example")
    await make_user("newbie@example.com")
    app = await third_party_app(await make_user("maker@apps.example"))
    return World(acme, thermostat, kettle, app, gid("Event", event.id),
                 gid("Customer", customer.id))


async def caller_token(caller: str, world: World) -> str:
    if caller == "direct":
        return await access_token(world.acme.email("OWNER"))
    if caller in SCOPES:
        return await app_token(world.acme.users["OWNER"], SCOPES[caller], world.app)
    email = "outsider@example.com" if caller == "all(outsider)" else world.acme.email("VIEWER")
    return await app_token(await User.get(email=email), SCOPES["all"], world.app)


@dataclass
class AppProbe(Probe[World]):
    """A probe where a refusal must say why."""

    async def read(self, query: str, variables: dict[str, Any], *path: str) -> Any:
        body = await graphql(self.http, query, variables, token=self.token)
        for error in body.get("errors", ()):
            if error["extensions"] == {"code": "FORBIDDEN"}:
                assert error["message"] in (DENIED, "Your role (viewer) does not allow this."), (
                    error)
        return await super().read(query, variables, *path)


def ok_if(value: Any, expected: Any, without_product: Any = None) -> Any:
    """As `tests.support.matrix.ok_if`, and HID when `value` is `without_product`."""
    if without_product is not None and value == without_product:
        return HID
    return OK if value is not None and value == expected else value


@MATRIX.operation("device(D1)")
async def _device(p: AppProbe) -> Any:
    return ok_if(await p.device(D1, "deviceId functions"),
                 {"deviceId": D1, "functions": ["reboot"]})


@MATRIX.operation("device(D1).sim")
async def _device_sim(p: AppProbe) -> Any:
    return ok_if(await p.device(D1, "cellular iccid simActive"),
                 {"cellular": True, "iccid": D1_ICCID, "simActive": True})


@MATRIX.operation("device(MINE)")
async def _device_mine(p: AppProbe) -> Any:
    return ok_if(await p.device(MINE, "deviceId"), {"deviceId": MINE})


@MATRIX.operation("node(Device D1)")
async def _device_node(p: AppProbe) -> Any:
    return await p.node(gid("Device", D1))


@MATRIX.operation("device(D1).product")
async def _device_product(p: AppProbe) -> Any:
    return ok_if(await p.device(D1, "product { slug }"), {"product": {"slug": "thermostat"}},
                 {"product": None})


@MATRIX.operation("device(D1).events")
async def _device_events(p: AppProbe) -> Any:
    found = await p.device(D1, 'events(filter: {prefix: "temp"}) { edges { node { id device '
                               "{ deviceId } product { slug } } } }")

    def page(slug: str | None) -> dict[str, Any]:
        return {"events": {"edges": [{"node": {
            "id": p.world.event_id, "device": {"deviceId": D1},
            "product": {"slug": slug} if slug else None}}]}}

    return ok_if(found, page("thermostat"), page(None))


@MATRIX.operation("node(Event D1)")
async def _event_node(p: AppProbe) -> Any:
    found = await p.read("query($id: ID!) { node(id: $id) { id ... on Event { device { "
                         "deviceId } product { slug } } } }", {"id": p.world.event_id}, "node")
    expected = {"id": p.world.event_id, "device": {"deviceId": D1},
                "product": {"slug": "thermostat"}}
    if found == {**expected, "device": None, "product": None}:
        return EVT
    return ok_if(found, expected, {**expected, "product": None})


@MATRIX.operation("device(D1).variable")
async def _variable(p: AppProbe) -> Any:
    found = await p.device(D1, 'variable(name: "temp") { value userErrors { code message } }')
    if found is None or isinstance(found, str) or found["variable"]["value"] is not None:
        return found
    (error,) = found["variable"]["userErrors"]
    if error["code"] == FB:
        assert error["message"] in (DENIED, "Your role (viewer) does not allow this."), error
    return error["code"]


async def _mutation(p: AppProbe, name: str, input_type: str, input: dict[str, Any],
                    selection: str) -> tuple[dict[str, Any], str | None]:
    payload, code = await p.mutate(name, input_type, input, selection)
    if code == FB:
        body = await graphql(
            p.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ userErrors "
                    "{ message } } }", {"input": input}, token=p.token)
        assert body["data"][name]["userErrors"][0]["message"] in (
            DENIED, "Your role (viewer) does not allow this."), body
    return payload, code


@MATRIX.operation("callFunction(D1)", D1)
@MATRIX.operation("callFunction(MINE)", MINE)
async def _call(p: AppProbe, device_id: str) -> Any:
    payload, code = await _mutation(p, "callFunction", "CallFunctionInput",
                                    {"deviceId": device_id, "name": "reboot"}, "returnValue")
    return code if payload["returnValue"] is None else payload


async def _sse(p: AppProbe, path: str, device_id: str, product: Product | None) -> Any:
    """As `Probe.sse`, where a refusal (403) must say why."""
    headers = {"Authorization": f"Bearer {p.token}"}
    async with p.http.stream("GET", path, headers=headers) as response:
        if response.status_code == 403:
            body = json.loads(await response.aread())
            assert body == {"errors": [{"message": DENIED,
                                        "extensions": {"code": "FORBIDDEN"}}]}, body
            return 403
    return await p.sse(path, device_id, product)


@MATRIX.operation("SSE device D1")
async def _sse_d1(p: AppProbe) -> Any:
    return await _sse(p, f"/v1/devices/{D1}/events", D1, p.world.thermostat)


@MATRIX.operation("SSE device MINE")
async def _sse_mine(p: AppProbe) -> Any:
    return await _sse(p, f"/v1/devices/{MINE}/events", MINE, None)


@MATRIX.operation("deviceEvents(D1)")
async def _subscribe_d1(p: AppProbe) -> Any:
    return await p.subscription(DEVICE_EVENTS, events.device_channel(D1), {"id": D1}, D1,
                                p.world.thermostat)


@MATRIX.operation("customerDevices")
async def _customer_devices(p: AppProbe) -> Any:
    return await p.read("{ customerDevices { edges { node { deviceId } } } }", {},
                        "customerDevices")


@MATRIX.operation("organization(acme)")
async def _organization(p: AppProbe) -> Any:
    return ok_if(await p.read('{ organization(slug: "acme") { slug } }', {}, "organization"),
                 {"slug": "acme"})


@MATRIX.operation("product(thermostat)")
async def _product(p: AppProbe) -> Any:
    return ok_if(await p.product("slug"), {"slug": "thermostat"})


@MATRIX.operation("productEvents")
async def _log(p: AppProbe) -> Any:
    found = await p.read(
        'query($id: ID!) { productEvents(productId: $id, filter: {prefix: "temp"}) { edges { '
        "node { id } } } }",
        {"id": gid("Product", p.world.thermostat.id)}, "productEvents")
    return ok_if(found, {"edges": [{"node": {"id": p.world.event_id}}]})


@MATRIX.operation("SSE product")
async def _sse_product(p: AppProbe) -> Any:
    return await _sse(p, "/v1/products/thermostat/events", D1, p.world.thermostat)


@MATRIX.operation("productEvents subscription")
async def _subscribe_product(p: AppProbe) -> Any:
    return await p.subscription(PRODUCT_EVENTS, events.product_channel(p.world.thermostat.id),
                                {"id": gid("Product", p.world.thermostat.id)}, D1,
                                p.world.thermostat)


async def _changed(p: AppProbe, name: str, input_type: str, input: dict[str, Any],
                   selection: str) -> Any:
    """OK with an audit entry (or an event stored), or the userError's code and nothing."""
    before = (await AuditEntry.all().count(), await Event.all().count())
    payload, code = await _mutation(p, name, input_type, input, selection)
    after = (await AuditEntry.all().count(), await Event.all().count())
    if code is not None:
        return code if after == before else f"{code}, yet changed"
    return OK if after != before else payload


@MATRIX.operation("publishEvent")
async def _publish(p: AppProbe) -> Any:
    return await _changed(p, "publishEvent", "PublishEventInput", {
        "productId": gid("Product", p.world.thermostat.id), "name": "note"}, "event { name }")


@MATRIX.operation("updateDevice(D1)")
async def _update(p: AppProbe) -> Any:
    return await _changed(p, "updateDevice", "UpdateDeviceInput",
                          {"deviceId": D1, "name": "Renamed"}, "device { name }")


@MATRIX.operation("setSimActive(D1)")
async def _set_sim(p: AppProbe) -> Any:
    return await _changed(p, "setSimActive", "SetSimActiveInput",
                          {"deviceId": D1, "active": False}, "device { simActive }")


@MATRIX.operation("updateDevice(MINE)")
async def _update_mine(p: AppProbe) -> Any:
    before = (await Device.get(id=MINE)).notes
    payload, code = await _mutation(p, "updateDevice", "UpdateDeviceInput",
                                    {"deviceId": MINE, "notes": "mine"}, "device { notes }")
    after = (await Device.get(id=MINE)).notes
    if code is not None:
        return code if after == before else f"{code}, yet changed"
    return OK if after == "mine" else payload


@MATRIX.operation("assignDeviceCustomer(D1)")
async def _assign(p: AppProbe) -> Any:
    return await _changed(p, "assignDeviceCustomer", "AssignDeviceCustomerInput",
                          {"deviceId": D1, "customerId": p.world.customer_id},
                          "device { claimedAt }")


@MATRIX.operation("approveQuarantinedDevice")
async def _approve(p: AppProbe) -> Any:
    return await _changed(p, "approveQuarantinedDevice", "DeviceInput", {"deviceId": Q1},
                          "device { quarantined }")


@MATRIX.operation("importDevices")
async def _import(p: AppProbe) -> Any:
    return await _changed(p, "importDevices", "ImportDevicesInput", {
        "productId": gid("Product", p.world.thermostat.id), "deviceIds": [SPARE]},
        "importedDeviceIds")


@MATRIX.operation("createProduct")
async def _create_product(p: AppProbe) -> Any:
    return await _changed(p, "createProduct", "CreateProductInput", {
        "organizationId": gid("Organization", p.world.acme.organization.id), "name": "Lamp",
        "platform": "Photon", "customerAuth": "SIMPLE"}, "product { slug }")


@MATRIX.operation("createOAuthClient")
async def _create_client(p: AppProbe) -> Any:
    return await _changed(p, "createOAuthClient", "CreateOAuthClientInput", {
        "productId": gid("Product", p.world.thermostat.id), "name": "Backend",
        "type": "SERVER"}, "clientSecret")


@MATRIX.operation("updateOrganization")
async def _update_organization(p: AppProbe) -> Any:
    return await _changed(p, "updateOrganization", "UpdateOrganizationInput", {
        "organizationId": gid("Organization", p.world.acme.organization.id),
        "name": "Acme Renamed"}, "organization { name }")


@MATRIX.operation("inviteTeamMember")
async def _invite(p: AppProbe) -> Any:
    found = await _changed(p, "inviteTeamMember", "InviteTeamMemberInput", {
        "organizationId": gid("Organization", p.world.acme.organization.id),
        "email": "newbie@example.com", "role": "VIEWER"}, "invitation { email }")
    invited = await Invitation.filter(email="newbie@example.com").count()
    return found if invited == (1 if found == OK else 0) else f"{found}, {invited} invitations"


@MATRIX.operation("leaveOrganization")
async def _leave(p: AppProbe) -> Any:
    return await _changed(p, "leaveOrganization", "LeaveOrganizationInput", {
        "organizationId": gid("Organization", p.world.acme.organization.id)}, "left")


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_app_scope_matrix(http, live_server: LiveServer, world: World, caller: str
                                ) -> None:
    token = await caller_token(caller, world)
    await MATRIX.check(caller, AppProbe(http, token, world, caller, live_server))


async def test_a_refused_subscription_says_why(live_server: LiveServer, world: World) -> None:
    token = await app_token(world.acme.users["OWNER"], "devices:read", world.app)
    async with graphql_ws(live_server, token) as ws:
        await subscribe(ws, DEVICE_EVENTS, id=D1)
        error = json.loads(await ws.recv())
        assert error == {"id": "1", "type": "error", "payload": [{
            "message": DENIED, "locations": [{"line": 1, "column": 30}],
            "path": ["deviceEvents"], "extensions": {"code": "FORBIDDEN"}}]}
    assert events.event_log().broker.local_subscribers(events.device_channel(D1)) == 0


ACCOUNT_ACTIONS = {
    "me.sessions": "{ me { sessions { edges { node { id } } } } }",
    "me.organization": "{ me { organization { id } } }",
    "me.invitations": "{ me { invitations { id } } }",
    "createOrganization": 'mutation { createOrganization(input: {name: "Initech"}) '
                          "{ userErrors { code message } } }",
    "revokeAllSessions": "mutation { revokeAllSessions(input: {keepCurrent: true}) "
                         "{ userErrors { code message } } }",
    "claimDevice": f'mutation {{ claimDevice(input: {{deviceId: "{SPARE}"}}) '
                   "{ userErrors { code message } } }",
}


@pytest.mark.parametrize("action", ACCOUNT_ACTIONS)
async def test_account_actions_are_no_apps_to_take(http, world: World, action: str) -> None:
    token = await app_token(world.acme.users["OWNER"], SCOPES["all"], world.app)
    body = await graphql(http, ACCOUNT_ACTIONS[action], token=token)
    errors = body.get("errors") or next(iter(body["data"].values()))["userErrors"]
    assert [(e.get("extensions", {}).get("code", e.get("code")), e["message"]) for e in errors] == [
        ("FORBIDDEN", DENIED)]
    assert await Device.get(id=SPARE).values_list("claimed_by_id", flat=True) is None


async def test_an_app_still_learns_who_the_user_is(http, world: World) -> None:
    token = await app_token(world.acme.users["OWNER"], "", world.app)
    body = await graphql(http, "{ me { email } }", token=token)
    assert body["data"] == {"me": {"email": "owner@example.com"}}


async def test_an_app_cannot_look_up_the_user_s_sessions_or_invitations(
    http, world: World
) -> None:
    from models.oauth import TokenFamily

    owner = world.acme.users["OWNER"]
    direct = await access_token(world.acme.email("OWNER"))
    session = await TokenFamily.filter(user_id=owner.id).order_by("id").first()
    invitation = await Invitation.create(
        organization=world.acme.organization, email=owner.email, role="VIEWER",
        invited_by=world.acme.users["OWNER"], created_at=T, last_sent_at=T,
        expires_at=T + timedelta(days=7))
    query = "query($id: ID!) { node(id: $id) { id } }"
    token = await app_token(owner, SCOPES["all"], world.app)
    for node_id in (gid("Session", session.id), gid("Invitation", invitation.id)):
        assert (await graphql(http, query, {"id": node_id}, token=direct))["data"] == {
            "node": {"id": node_id}}
        assert (await graphql(http, query, {"id": node_id}, token=token))["data"] == {
            "node": None}
