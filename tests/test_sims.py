"""SIMs: the ICCID check, `setSimActive` (its changes, no-ops and userErrors, its audit
entries) and the device's SIM fields, through the live API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.errors import InvalidInput
from fleet import products, sims
from fleet.errors import FleetCode
from models.devices import Device
from models.organizations import AuditEntry
from models.products import Product
from models.usage import SimChange
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.constants import T
from tests.support.customers import customer_token, make_customer
from tests.support.gateway import make_device
from tests.support.graphql import graphql, run_mutation
from tests.support.servers import Clock
from tests.support.sims import iccid

# A real one from a SIM card's back, and the same with its check digit changed.
GOOD = "89014103211118510720"
MISTYPED = "89014103211118510721"
SIM_FIELDS = "cellular iccid simActive"


# --- The ICCID check ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [GOOD, f"  {GOOD} ", iccid(0),
                                  iccid(99_999_999_999_999)])
def test_valid_iccids_pass(text: str) -> None:
    assert sims.check_iccid(text) == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("", "An ICCID is made of digits only (19 or 20 of them)."),
    ("8901 4103 2111 1851 0720", "An ICCID is made of digits only (19 or 20 of them)."),
    ("8901410321111851072x", "An ICCID is made of digits only (19 or 20 of them)."),
    ("\uff18\uff19" + "0" * 18, "An ICCID is made of digits only (19 or 20 of them)."),
    ("890141032111185107", "An ICCID is 19 or 20 digits long; this one has 18."),
    ("890141032111185107200", "An ICCID is 19 or 20 digits long; this one has 21."),
    ("79014103211118510729", "An ICCID starts with 89; this one starts with 79."),
    (MISTYPED, "The ICCID's last digit is not its check digit (Luhn): look for a mistyped "
               "digit."),
])
def test_invalid_iccids_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        sims.check_iccid(text)
    assert (raised.value.message, raised.value.field, raised.value.code) == (
        message, "iccid", FleetCode.INVALID_ICCID)


def test_every_single_digit_change_breaks_the_check_digit() -> None:
    for position in range(len(GOOD)):
        for digit in "0123456789":
            changed = GOOD[:position] + digit + GOOD[position + 1:]
            assert sims.luhn_valid(changed) is (changed == GOOD)


# --- setSimActive -------------------------------------------------------------------------------


@pytest.fixture
async def team(frozen_clock: Clock) -> Team:
    frozen_clock.current = T
    return await organization_with_team(roles=("OWNER", "DEVELOPER"))


@pytest.fixture
async def tracker(team: Team) -> Product:
    return await products.create_product(team.principals["OWNER"], team.organization.id,
                                         name="Tracker", slug=None, description="",
                                         platform="Photon", customer_auth="SIMPLE")


async def set_sim(http: httpx.AsyncClient, team: Team, device_id: str, active: bool,
                  iccid: str | None = None, *, role: str = "DEVELOPER") -> dict[str, Any]:
    """`setSimActive` as the team member with `role` (signed in now: the clock moves)."""
    input: dict[str, Any] = {"deviceId": device_id, "active": active}
    if iccid is not None:
        input["iccid"] = iccid
    return await run_mutation(http, "setSimActive", "SetSimActiveInput", input,
                              f"device {{ deviceId {SIM_FIELDS} }}",
                              token=await access_token(team.email(role)))


async def changes(device_id: str) -> list[tuple[bool, Any]]:
    return list(await SimChange.filter(device_id=device_id).order_by("id")
                .values_list("active", "changed_at"))


async def sim_audit() -> list[tuple[str, str, dict[str, Any]]]:
    return list(await AuditEntry.filter(action="device.sim").order_by("id")
                .values_list("actor_label", "target_id", "details"))


async def test_an_iccid_makes_a_device_cellular_and_changes_are_recorded(
    http: httpx.AsyncClient, team: Team, tracker: Product, frozen_clock: Clock
) -> None:
    device_id, _ = await make_device(tracker)
    token = await access_token(team.email("DEVELOPER"))
    read = await graphql(http, f'{{ device(deviceId: "{device_id}") {{ {SIM_FIELDS} }} }}',
                         token=token)
    assert read["data"]["device"] == {"cellular": False, "iccid": None, "simActive": None}

    payload = await set_sim(http, team, device_id, True, f" {GOOD} ")
    assert payload == {"device": {"deviceId": device_id, "cellular": True, "iccid": GOOD,
                                  "simActive": True}, "userErrors": []}
    frozen_clock.advance(days=3)
    assert (await set_sim(http, team, device_id, False))["device"]["simActive"] is False
    # The state it already has: nothing recorded, nothing audited.
    assert (await set_sim(http, team, device_id, False))["device"]["simActive"] is False
    assert (await set_sim(http, team, device_id, False, GOOD))["userErrors"] == []
    # A new SIM in the same state: the ICCID changes, no SIM change.
    other = iccid(42)
    assert (await set_sim(http, team, device_id, False, other))["device"]["iccid"] == other
    frozen_clock.advance(days=1)
    assert (await set_sim(http, team, device_id, True))["device"]["simActive"] is True

    assert await changes(device_id) == [(True, T), (False, T + timedelta(days=3)),
                                        (True, T + timedelta(days=4))]
    developer = team.email("DEVELOPER")
    assert await sim_audit() == [
        (developer, device_id, {"iccid": [None, GOOD], "simActive": [None, True]}),
        (developer, device_id, {"simActive": [True, False]}),
        (developer, device_id, {"iccid": [GOOD, other]}),
        (developer, device_id, {"simActive": [False, True]}),
    ]
    assert (await Device.get(id=device_id)).iccid == other


async def test_a_device_may_become_cellular_with_its_sim_off(
    http: httpx.AsyncClient, team: Team, tracker: Product
) -> None:
    device_id, _ = await make_device(tracker)
    payload = await set_sim(http, team, device_id, False, GOOD, role="OWNER")
    assert payload["device"] == {"deviceId": device_id, "cellular": True, "iccid": GOOD,
                                 "simActive": False}
    assert [active for active, _ in await changes(device_id)] == [False]


@pytest.mark.parametrize(("input", "error"), [
    ({"active": True, "iccid": MISTYPED},
     {"field": "iccid", "code": "INVALID_ICCID", "message": "The ICCID's last digit is not its "
      "check digit (Luhn): look for a mistyped digit."}),
    ({"active": True, "iccid": "12345"},
     {"field": "iccid", "code": "INVALID_ICCID",
      "message": "An ICCID is 19 or 20 digits long; this one has 5."}),
    ({"active": True},
     {"field": "iccid", "code": "ICCID_REQUIRED",
      "message": "The device is not cellular yet: give its SIM's ICCID (`iccid`)."}),
    ({"active": False},
     {"field": "iccid", "code": "ICCID_REQUIRED",
      "message": "The device is not cellular yet: give its SIM's ICCID (`iccid`)."}),
])
async def test_set_sim_active_user_errors(
    http: httpx.AsyncClient, team: Team, tracker: Product, input: dict[str, Any],
    error: dict[str, str]
) -> None:
    device_id, _ = await make_device(tracker)
    payload = await run_mutation(http, "setSimActive", "SetSimActiveInput",
                                 {"deviceId": device_id, **input}, "device { deviceId }",
                                 token=await access_token(team.email("DEVELOPER")))
    assert payload == {"device": None, "userErrors": [error]}
    assert await changes(device_id) == []
    assert await sim_audit() == []
    assert (await Device.get(id=device_id)).iccid is None


async def test_a_bad_iccid_leaves_a_cellular_device_as_it_was(
    http: httpx.AsyncClient, team: Team, tracker: Product
) -> None:
    device_id, _ = await make_device(tracker)
    await set_sim(http, team, device_id, True, GOOD)
    payload = await set_sim(http, team, device_id, False, MISTYPED)
    assert [e["code"] for e in payload["userErrors"]] == ["INVALID_ICCID"]
    assert (await Device.get(id=device_id)).iccid == GOOD
    assert [active for active, _ in await changes(device_id)] == [True]


@pytest.mark.parametrize(("device_id", "error"), [
    ("0" * 24, {"field": "deviceId", "code": "NOT_FOUND", "message": "No such device."}),
    ("not-a-device", {"field": "deviceId", "code": "INVALID_DEVICE_ID",
                      "message": "'not-a-device' is not a device ID: a device ID is 24 "
                                 "hexadecimal characters."}),
])
async def test_an_unknown_device_is_not_found(
    http: httpx.AsyncClient, team: Team, device_id: str, error: dict[str, str]
) -> None:
    payload = await run_mutation(http, "setSimActive", "SetSimActiveInput",
                                 {"deviceId": device_id, "active": True, "iccid": GOOD},
                                 "device { deviceId }",
                                 token=await access_token(team.email("DEVELOPER")))
    assert payload == {"device": None, "userErrors": [error]}


# --- The device's SIM fields ----------------------------------------------------------------------


async def test_sim_changes_are_paged_newest_first(
    http: httpx.AsyncClient, team: Team, tracker: Product, frozen_clock: Clock
) -> None:
    device_id, _ = await make_device(tracker)
    owner = team.principals["OWNER"]
    await sims.set_sim_active(owner, device_id, active=True, iccid=GOOD)
    for day in range(1, 5):
        frozen_clock.advance(days=1)
        await sims.set_sim_active(owner, device_id, active=day % 2 == 0)
    query = ("query($id: String!, $after: String) { device(deviceId: $id) { simChanges("
             "first: 2, after: $after) { edges { node { active changedAt changedBy } } "
             "pageInfo { hasNextPage endCursor } } } }")
    token = await access_token(team.email("DEVELOPER"))
    seen, after = [], None
    while True:
        body = await graphql(http, query, {"id": device_id, "after": after}, token=token)
        page = body["data"]["device"]["simChanges"]
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [{"active": day % 2 == 0, "changedAt": (T + timedelta(days=day)).isoformat(),
                     "changedBy": team.email("OWNER")} for day in (4, 3, 2, 1, 0)]


async def test_the_devices_customer_sees_it_is_cellular_and_nothing_more(
    http: httpx.AsyncClient, team: Team, tracker: Product
) -> None:
    device_id, _ = await make_device(tracker)
    customer = await make_customer(tracker, "buyer@customers.example")
    await Device.filter(id=device_id).update(customer_id=customer.id, claimed_at=T)
    await sims.set_sim_active(team.principals["OWNER"], device_id, active=False, iccid=GOOD)
    query = (f'{{ device(deviceId: "{device_id}") {{ {SIM_FIELDS} simChanges {{ edges {{ '
             f'node {{ active }} }} }} }} }}')
    as_customer = await graphql(http, query, token=await customer_token(customer))
    assert as_customer["data"]["device"] == {"cellular": True, "iccid": None,
                                             "simActive": None, "simChanges": None}
    as_team = await graphql(http, query, token=await access_token(team.email("DEVELOPER")))
    assert as_team["data"]["device"] == {
        "cellular": True, "iccid": GOOD, "simActive": False,
        "simChanges": {"edges": [{"node": {"active": False}}]}}
