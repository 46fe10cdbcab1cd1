"""Claim codes (made by a customer, presented by a device in its hello) and the team assigning
or removing a device's customer: the rules, and who may do what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from auth import tokens
from fleet import claim_codes, devices, gateway, products
from fleet.gateway import Hello
from models.customers import ClaimCode, Customer
from models.devices import Device, Quarantine
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import TEAM_ROLES, Team, access_token, make_user, organization_with_team
from tests.support.constants import T
from tests.support.customers import customer_token, make_customer
from tests.support.graphql import audit_trail, gid, graphql, run_mutation
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token
from tests.support.servers import Clock
from tests.support.worlds import two_organizations

DAY = timedelta(hours=24)
P1, P2, P3, P4 = ("a1", "a2", "a3", "a4")
D = {name: name.ljust(24, "0") for name in (P1, P2, P3, P4, "b1", "c1", "d1")}
OWNED, SPARE, QUARANTINED, LOOSE, ELSEWHERE = D[P1], D[P2], D["b1"], D["c1"], D["d1"]
OTHER_OWNED, MOVABLE = D[P3], D[P4]


@dataclass
class World:
    acme: Team
    thermostat: Product
    kettle: Product  # Globex's
    alice: Customer  # thermostat's
    bob: Customer  # thermostat's
    carol: Customer  # kettle's


@pytest.fixture
async def world(frozen_clock: Clock) -> World:
    frozen_clock.current = T
    orgs = await two_organizations()
    acme, thermostat, kettle = orgs.acme, orgs.thermostat, orgs.kettle
    alice = await make_customer(thermostat, "alice@customers.example")
    bob = await make_customer(thermostat, "bob@customers.example")
    carol = await make_customer(kettle, "carol@customers.example")
    claimer = await make_user("claimer@example.com")
    for device_id, product, quarantine, customer, claimed_by in (
        (OWNED, thermostat, "NONE", bob, None),
        (SPARE, thermostat, "NONE", None, None),
        (OTHER_OWNED, thermostat, "NONE", bob, None),
        (MOVABLE, thermostat, "NONE", None, None),
        (QUARANTINED, thermostat, "QUARANTINED", None, None),
        (LOOSE, None, "NONE", None, claimer),
        (ELSEWHERE, kettle, "NONE", carol, None),
    ):
        await Device.create(
            id=device_id, secret_hash="0" * 64, platform="Photon", provisioned_at=T,
            product=product, imported_at=T if product else None, quarantine=quarantine,
            customer=customer, claimed_at=T if customer else None, claimed_by=claimer if
            claimed_by else None)
    return World(acme, thermostat, kettle, alice, bob, carol)


async def new_code(customer: Customer) -> str:
    principal = await _principal(customer)
    return (await claim_codes.create_claim_code(principal, customer.product_id)).code


async def _principal(customer: Customer) -> Any:
    return await tokens.authenticate(await customer_token(customer))


def hello(product_id: int | None, code: str | None) -> Hello:
    return Hello(product_id, "1", "5.6.0", [], [], claim_code=code)


async def owner_of(device_id: str) -> tuple[int | None, Any]:
    device = await Device.get(id=device_id)
    return device.customer_id, device.claimed_at


async def code_row(code: str) -> dict[str, Any]:
    (row,) = await ClaimCode.filter(code_hash=tokens.digest(code)).values(
        "customer_id", "created_at", "expires_at", "used_at", "device_id")
    return row


# --- Creating codes -----------------------------------------------------------------------


async def test_a_customer_gets_a_random_code_stored_hashed(http, world: World) -> None:
    token = await customer_token(world.alice)
    created = []
    for _ in range(2):
        payload = await run_mutation(
            http, "createClaimCode", "CreateClaimCodeInput",
            {"productId": gid("Product", world.thermostat.id)}, "claimCode expiresAt",
            token=token)
        assert payload["userErrors"] == []
        assert payload["expiresAt"] == (T + DAY).isoformat()
        created.append(payload["claimCode"])
    first, second = created
    assert first != second
    assert first.startswith("dc_cc_") and len(first) == 49
    assert await code_row(first) == {"customer_id": world.alice.id, "created_at": T,
                                     "expires_at": T + DAY, "used_at": None, "device_id": None}
    assert await ClaimCode.filter(code_hash=first).count() == 0  # never in clear


async def test_claim_code_input_errors(http, world: World) -> None:
    token = await customer_token(world.alice)
    for product_id, expected in (
        (gid("Organization", world.acme.organization.id),
         {"field": "productId", "code": "INVALID_ID",
          "message": "This is not the ID of a Product."}),
        (gid("Product", 999999),
         {"field": "productId", "code": "NOT_FOUND", "message": "No such product."}),
    ):
        payload = await run_mutation(http, "createClaimCode", "CreateClaimCodeInput",
                                     {"productId": product_id}, "claimCode", token=token)
        assert payload == {"claimCode": None, "userErrors": [expected]}
    assert await ClaimCode.all().count() == 0


# --- Presenting codes ---------------------------------------------------------------------


async def test_a_device_of_the_product_presenting_a_code_is_claimed(world: World) -> None:
    code = await new_code(world.alice)
    welcome = await gateway.welcome(SPARE, hello(world.thermostat.id, code))
    assert welcome.claimed is True
    assert await owner_of(SPARE) == (world.alice.id, T)
    assert await code_row(code) == {"customer_id": world.alice.id, "created_at": T,
                                    "expires_at": T + DAY, "used_at": T, "device_id": SPARE}
    assert (await Customer.get(id=world.alice.id)).last_active_at == T


async def test_generic_firmware_of_an_imported_device_claims_too(world: World) -> None:
    code = await new_code(world.alice)
    assert (await gateway.welcome(SPARE, hello(None, code))).claimed is True
    assert await owner_of(SPARE) == (world.alice.id, T)


async def test_a_code_is_single_use(world: World, frozen_clock: Clock) -> None:
    code = await new_code(world.alice)
    assert (await gateway.welcome(SPARE, hello(world.thermostat.id, code))).claimed is True
    frozen_clock.advance(minutes=1)
    assert (await gateway.welcome(MOVABLE, hello(world.thermostat.id, code))).claimed is False
    assert await owner_of(MOVABLE) == (None, None)
    assert (await code_row(code))["device_id"] == SPARE


async def test_a_code_expires_after_24_hours(world: World, frozen_clock: Clock) -> None:
    early, late = await new_code(world.alice), await new_code(world.alice)
    frozen_clock.advance(hours=24, seconds=-1)
    assert (await gateway.welcome(SPARE, hello(world.thermostat.id, early))).claimed is True
    frozen_clock.advance(seconds=1)
    assert (await gateway.welcome(MOVABLE, hello(world.thermostat.id, late))).claimed is False
    assert await owner_of(MOVABLE) == (None, None)
    assert (await code_row(late))["used_at"] is None


async def test_an_unknown_code_claims_nothing(world: World) -> None:
    await new_code(world.alice)
    welcome = await gateway.welcome(SPARE, hello(world.thermostat.id, "dc_cc_not-a-code"))
    assert welcome.claimed is False
    assert welcome.assignment == gateway.Assignment(world.thermostat.id,
                                                    Quarantine.NONE)
    assert await owner_of(SPARE) == (None, None)
    assert await ClaimCode.filter(used_at__not_isnull=True).count() == 0


async def test_a_device_outside_the_codes_product_is_not_claimed(world: World) -> None:
    code = await new_code(world.alice)
    # In another organization's product, reporting it: it stays there, unclaimed.
    welcome = await gateway.welcome(ELSEWHERE, hello(world.kettle.id, code))
    assert (welcome.claimed, welcome.assignment.product_id) == (False, world.kettle.id)
    assert await owner_of(ELSEWHERE) == (world.carol.id, T)
    # In no product and reporting the code's product: it waits in the quarantine, unclaimed.
    welcome = await gateway.welcome(LOOSE, hello(world.thermostat.id, code))
    assert (welcome.claimed, welcome.assignment.quarantined) == (False, True)
    assert await owner_of(LOOSE) == (None, None)
    assert (await code_row(code))["used_at"] is None
    # Once the team approves it, the same code claims it.
    await devices.approve_quarantined_device(world.acme.principals["DEVELOPER"], LOOSE)
    assert (await gateway.welcome(LOOSE, hello(world.thermostat.id, code))).claimed is True
    assert await owner_of(LOOSE) == (world.alice.id, T)


async def test_a_quarantined_device_of_the_product_is_not_claimed(world: World) -> None:
    code = await new_code(world.alice)
    welcome = await gateway.welcome(QUARANTINED, hello(world.thermostat.id, code))
    assert (welcome.claimed, welcome.assignment.quarantined) == (False, True)
    assert await owner_of(QUARANTINED) == (None, None)
    assert (await code_row(code))["used_at"] is None


async def test_a_code_of_another_products_customer_claims_nothing(world: World) -> None:
    code = await new_code(world.carol)
    assert (await gateway.welcome(SPARE, hello(world.thermostat.id, code))).claimed is False
    assert await owner_of(SPARE) == (None, None)
    assert (await code_row(code))["used_at"] is None


async def test_another_customers_device_is_not_taken(world: World, frozen_clock: Clock
                                                     ) -> None:
    code = await new_code(world.alice)
    frozen_clock.advance(minutes=5)
    assert (await gateway.welcome(OWNED, hello(world.thermostat.id, code))).claimed is False
    assert await owner_of(OWNED) == (world.bob.id, T)
    assert (await code_row(code))["used_at"] is None
    # Its own customer's code is used, and changes nothing else.
    own_code = await new_code(world.bob)
    assert (await gateway.welcome(OWNED, hello(world.thermostat.id, own_code))).claimed is True
    assert await owner_of(OWNED) == (world.bob.id, T)
    assert (await code_row(own_code))["used_at"] == T + timedelta(minutes=5)


async def test_a_device_moving_to_another_product_loses_its_customer(world: World) -> None:
    welcome = await gateway.welcome(OWNED, hello(world.kettle.id, None))
    assert welcome.assignment == gateway.Assignment(world.kettle.id,
                                                    Quarantine.QUARANTINED)
    assert await owner_of(OWNED) == (None, None)


async def test_a_welcome_makes_the_devices_customer_active(world: World, frozen_clock: Clock
                                                           ) -> None:
    frozen_clock.advance(hours=3)
    await gateway.welcome(OWNED, hello(world.thermostat.id, None))
    assert (await Customer.get(id=world.bob.id)).last_active_at == T + timedelta(hours=3)
    assert (await Customer.get(id=world.alice.id)).last_active_at is None


# --- The team assigns and removes customers -------------------------------------------------


CALLERS = ("anonymous", "client", "outsider", "claimer", "customer", *TEAM_ROLES)
NIP, NPD, NC = "NOT_IN_PRODUCT", "NOT_PRODUCT_DEVICE", "NO_CUSTOMER"

# Callers: anonymous; client (a platform service client's token); outsider (Globex's owner);
# claimer (the user who claimed LOOSE, in no product); customer (alice, of thermostat); then
# the Acme member with each role. Cells: OK (one audit entry, the change made) or the
# userError's code (no audit entry, nothing changed). Each row has its own target device.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                                  anon clnt out  clmr cust OWN  ADM  DEV  SUP  VIEW
    "assignDeviceCustomer":            (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "assignDeviceCustomer(taken)":     (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "assignDeviceCustomer(foreign)":   (NF, NF,  NF,  NF,  NF,  NF,  NF,  NF,  FB,  FB),
    "assignDeviceCustomer(quarantine)": (NF, NF, NF,  NF,  NF,  NPD, NPD, NPD, FB,  FB),
    "assignDeviceCustomer(no product)": (NF, NF, NF,  NIP, NF,  NF,  NF,  NF,  NF,  NF),
    "assignDeviceCustomer(elsewhere)": (NF, NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF,  NF),
    "removeDeviceCustomer":            (NF, NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "removeDeviceCustomer(none)":      (NF, NF,  NF,  NF,  NF,  NC,  NC,  NC,  FB,  FB),
})
# fmt: on


async def _change(p: Probe[World], name: str, input_type: str, input: dict[str, Any],
                  expected_owner: Customer | None) -> str:
    """OK when exactly one audit entry is written, the device's customer is `expected_owner`
    and the device comes back; the userError's code when nothing changed."""
    device_id = input["deviceId"]
    before_owner = await owner_of(device_id)
    before_audit = await AuditEntry.all().count()
    payload, code = await p.mutate(name, input_type, input, "device { deviceId }")
    written = await AuditEntry.all().count() - before_audit
    owner = (await owner_of(device_id))[0]
    if code:
        unchanged = written == 0 and await owner_of(device_id) == before_owner
        return code if unchanged and payload["device"] is None else f"{code}, yet changed"
    done = written == 1 and owner == (expected_owner and expected_owner.id) and (
        payload["device"] == {"deviceId": device_id})
    return OK if done else f"OK, yet {written} entries and owner {owner}"


@MATRIX.operation("assignDeviceCustomer", SPARE, "alice", "alice")
@MATRIX.operation("assignDeviceCustomer(taken)", OWNED, "alice", "alice")
@MATRIX.operation("assignDeviceCustomer(foreign)", MOVABLE, "carol", None)
@MATRIX.operation("assignDeviceCustomer(quarantine)", QUARANTINED, "alice", None)
@MATRIX.operation("assignDeviceCustomer(no product)", LOOSE, "alice", None)
@MATRIX.operation("assignDeviceCustomer(elsewhere)", ELSEWHERE, "alice", None)
async def _assign(p: Probe[World], device_id: str, customer: str, owner: str | None) -> str:
    return await _change(
        p, "assignDeviceCustomer", "AssignDeviceCustomerInput",
        {"deviceId": device_id, "customerId": gid("Customer", getattr(p.world, customer).id)},
        getattr(p.world, owner) if owner else None)


@MATRIX.operation("removeDeviceCustomer", OTHER_OWNED)
@MATRIX.operation("removeDeviceCustomer(none)", MOVABLE)
async def _remove(p: Probe[World], device_id: str) -> str:
    return await _change(p, "removeDeviceCustomer", "RemoveDeviceCustomerInput",
                         {"deviceId": device_id}, None)


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_assigning_and_removing_customers_matrix(http, world: World, caller: str
                                                       ) -> None:
    token = await caller_token(http, caller, world.acme, customers={"customer": world.alice})
    await MATRIX.check(caller, Probe(http, token, world, caller))


async def test_assignments_are_audited_and_reach_the_customer(http, world: World,
                                                              frozen_clock: Clock) -> None:
    frozen_clock.advance(hours=1)
    developer = await access_token(world.acme.email("DEVELOPER"))
    payload = await run_mutation(
        http, "assignDeviceCustomer", "AssignDeviceCustomerInput",
        {"deviceId": OWNED, "customerId": gid("Customer", world.alice.id)},
        "device { deviceId claimedAt }", token=developer)
    assert payload == {"userErrors": [], "device": {
        "deviceId": OWNED, "claimedAt": (T + timedelta(hours=1)).isoformat()}}
    alice, bob = await customer_token(world.alice), await customer_token(world.bob)
    mine = "{ customerDevices { edges { node { deviceId } } } }"
    assert (await graphql(http, mine, token=alice))["data"] == {
        "customerDevices": {"edges": [{"node": {"deviceId": OWNED}}]}}
    assert (await graphql(http, mine, token=bob))["data"] == {
        "customerDevices": {"edges": [{"node": {"deviceId": OTHER_OWNED}}]}}
    payload = await run_mutation(http, "removeDeviceCustomer", "RemoveDeviceCustomerInput",
                                 {"deviceId": OWNED}, "device { deviceId claimedAt }",
                                 token=developer)
    assert payload == {"userErrors": [], "device": {"deviceId": OWNED, "claimedAt": None}}
    assert (await graphql(http, mine, token=alice))["data"] == {
        "customerDevices": {"edges": []}}
    trail = await audit_trail(http, "acme", token=await access_token(world.acme.email("OWNER")))
    assert [(entry["action"], entry["actorEmail"], entry["targetType"], entry["targetId"],
             entry["details"]) for entry in trail[:2]] == [
        ("device.customer.remove", "developer@example.com", "Device", OWNED,
         {"customer": ["alice@customers.example", None]}),
        ("device.customer.assign", "developer@example.com", "Device", OWNED,
         {"customer": ["bob@customers.example", "alice@customers.example"]}),
    ]


async def test_a_customer_id_must_be_a_customers(http, world: World) -> None:
    payload = await run_mutation(
        http, "assignDeviceCustomer", "AssignDeviceCustomerInput",
        {"deviceId": SPARE, "customerId": gid("Product", world.thermostat.id)},
        "device { deviceId }", token=await access_token(world.acme.email("DEVELOPER")))
    assert payload == {"device": None, "userErrors": [{
        "field": "customerId", "code": "INVALID_ID",
        "message": "This is not the ID of a Customer."}]}


async def test_a_device_imported_into_another_product_leaves_its_customer_behind() -> None:
    from fleet import device_import

    team = await organization_with_team("Movers", "movers", domain="movers.example",
                                        roles=("OWNER",))
    owner = team.principals["OWNER"]
    first, second = [
        await products.create_product(owner, team.organization.id, name=name, slug=None,
                                      description="", platform="Photon", customer_auth="SIMPLE")
        for name in ("Kettle", "Toaster")
    ]
    device = await Device.create(id="e1".ljust(24, "0"), secret_hash="0" * 64,
                                 platform="Photon", provisioned_at=T, product=first)
    bob = await make_customer(first, "bob@example.com")
    await Device.filter(id=device.id).update(customer=bob, claimed_at=T)

    # Importing it again into its own product changes nothing.
    await device_import.import_devices(owner, first.id, [device.id], None, force=False,
                                       development=False)
    kept = await Device.get(id=device.id)
    assert (kept.customer_id, kept.claimed_at) == (bob.id, T)

    await device_import.import_devices(owner, second.id, [device.id], None, force=False,
                                       development=False)
    moved = await Device.get(id=device.id)
    assert (moved.product_id, moved.customer_id, moved.claimed_at) == (second.id, None, None)


async def test_a_new_owner_sees_the_device_s_events_only_since_they_got_it(
    http: httpx.AsyncClient, world: World, frozen_clock: Clock
) -> None:
    from fleet import events

    async def publish(name: str) -> int:
        (event,) = await events.record([events.NewEvent(
            product_id=world.thermostat.id, device_id=OWNED, name=name, data="",
            published_at=frozen_clock.current)])
        assert event is not None
        return event.id

    bobs = await publish("while-bob")
    frozen_clock.advance(minutes=1)
    await devices.assign_device_customer(world.acme.principals["OWNER"], OWNED, world.alice.id)
    alices = await publish("while-alice")
    query = """query($id: String!) {
        device(deviceId: $id) { events { edges { node { name } } } } }"""

    async def seen(customer: Customer) -> list[str]:
        body = await graphql(http, query, {"id": OWNED}, token=await customer_token(customer))
        return [edge["node"]["name"] for edge in body["data"]["device"]["events"]["edges"]]

    assert await seen(world.alice) == ["while-alice"]
    node = "query($id: ID!) { node(id: $id) { id } }"
    token = await customer_token(world.alice)
    for event_id, expected in ((alices, {"id": gid("Event", alices)}), (bobs, None)):
        body = await graphql(http, node, {"id": gid("Event", event_id)}, token=token)
        assert body["data"]["node"] == expected
    team = await graphql(http, query, {"id": OWNED}, token=await access_token(
        world.acme.email("VIEWER")))
    assert [e["node"]["name"] for e in team["data"]["device"]["events"]["edges"]] == [
        "while-alice", "while-bob"]
