"""Fleet queries over the live server: a product's devices (filters, both orders, pages),
its device stats, its errors and their summary, one device, and managing devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from models.devices import Device
from models.organizations import AuditEntry
from tests.support.constants import T
from tests.support.database import recorded_queries
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.worlds import (
    CLAIMED,
    DAY,
    DENIED,
    ELSEWHERE,
    LOOSE,
    MINUTE,
    Q0,
    Q1,
    Fleet,
    device_id,
    device_row,
    own,
)


async def product_field(http, fleet: Fleet, selection: str, variables: dict | None = None,
                        arguments: str = "", role: str = "VIEWER") -> Any:
    declared = f"($slug: String!{arguments})"
    body = await graphql(
        http, f"query{declared} {{ product(idOrSlug: $slug) {{ {selection} }} }}",
        {"slug": "thermostat", **(variables or {})}, token=await fleet.token(role),
    )
    assert "errors" not in body, body
    return body["data"]["product"]


async def device_ids(http, fleet: Fleet, criteria: dict | None = None,
                     order: str = "DEVICE_ID", first: int = 100, after: str | None = None
                     ) -> tuple[list[str], dict[str, Any]]:
    found = await product_field(
        http, fleet,
        "devices(first: $first, after: $after, filter: $filter, orderBy: $order) "
        "{ edges { node { deviceId } } pageInfo { hasNextPage endCursor } }",
        {"first": first, "after": after, "filter": criteria, "order": order},
        ", $first: Int!, $after: String, $filter: DeviceFilter, $order: DeviceOrder!",
    )
    connection = found["devices"]
    return [e["node"]["deviceId"] for e in connection["edges"]], connection["pageInfo"]


async def all_pages(http, fleet: Fleet, order: str, first: int,
                    criteria: dict | None = None) -> list[list[str]]:
    pages, after = [], None
    while True:
        ids, page_info = await device_ids(http, fleet, criteria, order, first, after)
        pages.append(ids)
        if not page_info["hasNextPage"]:
            return pages
        after = page_info["endCursor"]


# --- deviceStats ---------------------------------------------------------------------------


async def test_device_stats_are_exact(http, fleet):
    found = await product_field(
        http, fleet,
        "deviceStats { total online offline neverOnline development quarantined "
        "byFirmwareVersion { version devices online } "
        "bySystemFirmwareVersion { version devices online } }",
    )
    assert found["deviceStats"] == {
        "total": 10, "online": 3, "offline": 4, "neverOnline": 3, "development": 3,
        "quarantined": 2,
        "byFirmwareVersion": [
            {"version": "1.0.0", "devices": 4, "online": 2},
            {"version": None, "devices": 3, "online": 0},
            {"version": "1.1.0", "devices": 2, "online": 1},
            {"version": "2.0.0", "devices": 1, "online": 0},
        ],
        "bySystemFirmwareVersion": [
            {"version": "5.1", "devices": 4, "online": 1},
            {"version": "5.0", "devices": 3, "online": 2},
            {"version": None, "devices": 3, "online": 0},
        ],
    }


async def test_device_stats_split_the_total_in_online_offline_and_never_online(http, fleet):
    """`offline` means "was online, is not now": a device that never connected is only in
    `neverOnline`, so the three always add up to `total`."""
    query = "deviceStats { total online offline neverOnline }"
    for change in (
        {"online": False},
        {"first_online_at": None, "online": False},
        {"first_online_at": T, "online": True},
    ):
        await Device.filter(product_id=fleet.product.id, id__startswith="0").update(**change)
        stats = (await product_field(http, fleet, query))["deviceStats"]
        assert stats["total"] == stats["online"] + stats["offline"] + stats["neverOnline"]
        never = await Device.filter(
            product_id=fleet.product.id, quarantine="NONE", first_online_at=None
        ).count()
        assert stats["neverOnline"] == never


async def test_device_stats_of_an_empty_product(http, fleet):
    await Device.filter(product_id=fleet.product.id).delete()
    found = await product_field(
        http, fleet, "deviceStats { total online offline neverOnline development quarantined "
                     "byFirmwareVersion { version } bySystemFirmwareVersion { version } }")
    assert found["deviceStats"] == {
        "total": 0, "online": 0, "offline": 0, "neverOnline": 0, "development": 0,
        "quarantined": 0, "byFirmwareVersion": [], "bySystemFirmwareVersion": [],
    }


# --- devices: events and variables without a query per device --------------------------------


@pytest.mark.parametrize("field", ["events(first: 1) { edges { node { id } } }",
                                   'variable(name: "temperature") { value userErrors { code } }'])
async def test_a_page_of_devices_checks_access_in_a_fixed_number_of_queries(
    http, fleet, monkeypatch: pytest.MonkeyPatch, field: str
):
    """`Device.events` and `Device.variable` check access for the whole page at once: beyond
    the events pages themselves, a page of six devices runs the queries a page of two does."""
    token = await fleet.token("SUPPORT")

    async def page(first: int) -> list[str]:
        query = ("query($first: Int!) { product(idOrSlug: \"thermostat\") { devices(first: "
                 f"$first) {{ edges {{ node {{ deviceId {field} }} }} }} }} }}")
        with recorded_queries(monkeypatch, serving_requests=True) as seen:
            body = await graphql(http, query, {"first": first}, token=token)
        assert "errors" not in body, body
        assert len(body["data"]["product"]["devices"]["edges"]) == first
        return [sql for sql in seen if '"events"' not in sql]

    six = await page(6)
    assert six and len(six) == len(await page(2))


# --- devices: filters ----------------------------------------------------------------------


@pytest.mark.parametrize(("criteria", "expected"), [
    (None, own(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)),
    ({}, own(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)),
    ({"online": True}, own(0, 1, 3)),
    ({"online": False}, own(2, 4, 5, 6, 7, 8, 9)),
    ({"firmwareVersion": "1.0.0"}, own(0, 1, 2, 9)),
    ({"firmwareVersion": "9.9.9"}, []),
    ({"development": True}, own(1, 4, 7)),
    ({"development": False}, own(0, 2, 3, 5, 6, 8, 9)),
    ({"quarantined": True}, [Q0, Q1]),
    ({"quarantined": False}, own(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)),
    ({"neverOnline": True}, own(6, 7, 8)),
    ({"neverOnline": False}, own(0, 1, 2, 3, 4, 5, 9)),
    ({"search": "kitchen"}, own(0, 1, 8)),
    ({"search": "  KITCHEN "}, own(0, 1, 8)),
    ({"search": "b1"}, own(4)),
    ({"search": "B1"}, own(4)),
    ({"search": device_id("a2")}, own(2)),
    ({"search": "a"}, own(0, 1, 2, 3, 6, 7, 8, 9)),  # ID prefix a…, or a name with an "a"
    ({"search": "%"}, []),
    ({"search": "spare_"}, []),
    ({"search": "e0"}, []),  # quarantined: only with quarantined: true
    ({"search": "e0", "quarantined": True}, [Q0]),
    ({"online": True, "firmwareVersion": "1.0.0"}, own(0, 1)),
    ({"development": True, "neverOnline": True}, own(7)),
    ({"quarantined": True, "online": True}, [Q0]),
    ({"firmwareVersion": "1.0.0", "development": False, "online": False}, own(2, 9)),
    ({"search": "kitchen", "online": True}, own(0, 1)),
    ({"search": "kitchen", "neverOnline": True, "development": False}, own(8)),
])
async def test_device_filters(http, fleet, criteria, expected):
    ids, page_info = await device_ids(http, fleet, criteria)
    assert ids == expected
    assert page_info["hasNextPage"] is False


# --- devices: orders and pages -------------------------------------------------------------

BY_LAST_HEARD = own(0, 3, 1, 4, 5, 2, 9, 6, 7, 8)  # ties by ID; never heard last, by ID


@pytest.mark.parametrize(("first", "pages"), [
    (3, [own(0, 3, 1), own(4, 5, 2), own(9, 6, 7), own(8)]),
    (7, [own(0, 3, 1, 4, 5, 2, 9), own(6, 7, 8)]),
    (8, [own(0, 3, 1, 4, 5, 2, 9, 6), own(7, 8)]),
    (10, [BY_LAST_HEARD]),
    (100, [BY_LAST_HEARD]),
])
async def test_devices_by_last_heard_across_pages(http, fleet, first, pages):
    assert await all_pages(http, fleet, "LAST_HEARD_DESC", first) == pages


async def test_devices_by_last_heard_is_the_default(http, fleet):
    found = await product_field(http, fleet, "devices { edges { node { deviceId } } }")
    assert [e["node"]["deviceId"] for e in found["devices"]["edges"]] == BY_LAST_HEARD


async def test_devices_by_id_across_pages(http, fleet):
    assert await all_pages(http, fleet, "DEVICE_ID", 4) == [
        own(0, 1, 2, 3), own(4, 5, 6, 7), own(8, 9)
    ]


async def test_filtered_pages(http, fleet):
    assert await all_pages(http, fleet, "LAST_HEARD_DESC", 2, {"online": False}) == [
        own(4, 5), own(2, 9), own(6, 7), own(8)
    ]
    assert await all_pages(http, fleet, "DEVICE_ID", 2, {"search": "kitchen"}) == [
        own(0, 1), own(8)
    ]


async def test_pages_stay_stable_while_devices_are_heard(http, fleet):
    ids, page_info = await device_ids(http, fleet, order="LAST_HEARD_DESC", first=3)
    assert ids == own(0, 3, 1)
    await Device.bulk_create([device_row("99", fleet.product, last_heard_at=T + MINUTE)])
    ids, _ = await device_ids(http, fleet, order="LAST_HEARD_DESC", first=3,
                              after=page_info["endCursor"])
    assert ids == own(4, 5, 2)


@pytest.mark.parametrize("cursor", ["not base64!", "W10=", "WyJ4IiwgMV0=", "WzEsIDJd"])
async def test_a_foreign_cursor_is_refused(http, fleet, cursor):
    body = await graphql(
        http, "query($after: String) { product(idOrSlug: \"thermostat\") "
              "{ devices(after: $after) { edges { cursor } } } }",
        {"after": cursor}, token=await fleet.token())
    assert body["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_first_is_bounded(http, fleet):
    body = await graphql(
        http, "{ product(idOrSlug: \"thermostat\") { devices(first: 101) { edges { cursor } } } }",
        token=await fleet.token())
    assert body["errors"][0]["extensions"]["code"] in ("INVALID_ARGUMENT", "QUERY_TOO_COSTLY")


# --- deviceErrors and errorSummary ---------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def error_codes(http, fleet: Fleet, criteria: dict | None = None, first: int = 20,
                      after: str | None = None) -> tuple[list[tuple[str, str]], dict]:
    found = await product_field(
        http, fleet,
        "deviceErrors(first: $first, after: $after, filter: $filter) { edges { node "
        "{ deviceId code message resetReason occurredAt } } pageInfo { hasNextPage endCursor } }",
        {"first": first, "after": after, "filter": criteria},
        ", $first: Int!, $after: String, $filter: DeviceErrorFilter",
    )
    connection = found["deviceErrors"]
    nodes = [e["node"] for e in connection["edges"]]
    for node in nodes:
        assert node["message"] == f"{node['code']} happened"
        assert node["resetReason"] == "panic"
    return [(n["deviceId"], n["code"]) for n in nodes], connection["pageInfo"]


E1, E2, E3 = (own(0)[0], "E_CRASH"), (own(0)[0], "E_CRASH"), (own(1)[0], "E_CRASH")
E4, E5, E6 = (own(1)[0], "E_WIFI"), (own(2)[0], "E_WIFI"), (Q0, "E_BOOT")


@pytest.mark.parametrize(("criteria", "expected"), [
    (None, [E6, E5, E4, E3, E2, E1]),
    ({"deviceId": own(0)[0]}, [E2, E1]),
    ({"deviceId": own(0)[0].upper()}, [E2, E1]),
    ({"deviceId": ELSEWHERE}, []),
    ({"code": "E_CRASH"}, [E3, E2, E1]),
    ({"since": iso(T - DAY)}, [E6, E5, E4, E3]),
    ({"code": "E_WIFI", "since": iso(T - 45 * MINUTE)}, [E5]),
    ({"deviceId": own(1)[0], "code": "E_CRASH"}, [E3]),
    ({"since": iso(T)}, []),
])
async def test_device_error_filters(http, fleet, criteria, expected):
    found, page_info = await error_codes(http, fleet, criteria)
    assert found == expected
    assert page_info["hasNextPage"] is False


async def test_device_errors_across_pages(http, fleet):
    first, page_info = await error_codes(http, fleet, first=4)
    assert first == [E6, E5, E4, E3] and page_info["hasNextPage"] is True
    second, page_info = await error_codes(http, fleet, first=4, after=page_info["endCursor"])
    assert second == [E2, E1] and page_info["hasNextPage"] is False


async def test_device_errors_refuse_a_bad_device_id(http, fleet):
    body = await graphql(
        http, "{ product(idOrSlug: \"thermostat\") { deviceErrors(filter: {deviceId: \"abc\"}) "
              "{ edges { cursor } } } }", token=await fleet.token())
    assert body["errors"][0]["extensions"]["code"] == "INVALID_DEVICE_ID"
    assert body["errors"][0]["path"] == ["product", "deviceErrors"]


@pytest.mark.parametrize(("since", "expected"), [
    (None, [("E_CRASH", 3, 2), ("E_WIFI", 2, 2), ("E_BOOT", 1, 1)]),
    (iso(T - DAY), [("E_WIFI", 2, 2), ("E_BOOT", 1, 1), ("E_CRASH", 1, 1)]),
    (iso(T - 2 * DAY), [("E_CRASH", 2, 2), ("E_WIFI", 2, 2), ("E_BOOT", 1, 1)]),
    (iso(T - 20 * MINUTE), [("E_BOOT", 1, 1)]),
    (iso(T), []),
])
async def test_error_summary(http, fleet, since, expected):
    found = await product_field(http, fleet,
                                "errorSummary(since: $since) { code count devices }",
                                {"since": since}, ", $since: DateTime")
    assert [(s["code"], s["count"], s["devices"]) for s in found["errorSummary"]] == expected


# --- device(deviceId) ----------------------------------------------------------------------

DEVICE_FIELDS = ("deviceId name notes platform online lastHeardAt firstOnlineAt firmwareVersion "
                 "systemFirmwareVersion development quarantined quarantine functions variables "
                 "product { slug }")


async def read_device(http, token: str | None, device_id: str) -> dict[str, Any]:
    return await graphql(http, f"query($id: String!) {{ device(deviceId: $id) "
                               f"{{ {DEVICE_FIELDS} }} }}", {"id": device_id}, token=token)


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def test_a_device_shows_everything(http, fleet):
    await Device.filter(id=own(1)[0]).update(functions=["reboot", "led"],
                                              variables=["temperature"], notes="On the shelf")
    body = await read_device(http, await fleet.token(), own(1)[0].upper())
    device = body["data"]["device"]
    assert parse_time(device.pop("lastHeardAt")) == T - 2 * MINUTE
    assert parse_time(device.pop("firstOnlineAt")) == T - 9 * DAY
    assert device == {
        "deviceId": own(1)[0], "name": "Kitchen light", "notes": "On the shelf",
        "platform": "Photon", "online": True, "firmwareVersion": "1.0.0",
        "systemFirmwareVersion": "5.0", "development": True, "quarantined": False,
        "quarantine": "NONE", "functions": ["reboot", "led"], "variables": ["temperature"],
        "product": {"slug": "thermostat"},
    }


async def test_quarantined_and_never_online_devices(http, fleet):
    token = await fleet.token()
    quarantined = (await read_device(http, token, Q0))["data"]["device"]
    assert (quarantined["quarantined"], quarantined["quarantine"]) == (True, "QUARANTINED")
    assert quarantined["product"] == {"slug": "thermostat"}
    denied = (await read_device(http, token, DENIED))["data"]["device"]
    assert (denied["quarantined"], denied["quarantine"]) == (False, "DENIED")
    spare = (await read_device(http, token, own(6)[0]))["data"]["device"]
    assert [spare[f] for f in ("lastHeardAt", "firstOnlineAt", "firmwareVersion",
                               "systemFirmwareVersion", "online")] == [None] * 4 + [False]


async def test_devices_of_a_product_list_their_product_in_one_query(http, fleet):
    found = await product_field(
        http, fleet, "devices(first: 10) { edges { node { product { slug organization "
                     "{ slug } } } } }")
    assert {e["node"]["product"]["slug"] for e in found["devices"]["edges"]} == {"thermostat"}


@pytest.mark.parametrize("device", [device_id("ff"), ELSEWHERE, LOOSE, CLAIMED])
async def test_devices_you_cannot_see_are_null(http, fleet, device):
    body = await read_device(http, await fleet.token("OWNER"), device)
    assert body["data"] == {"device": None} and "errors" not in body


@pytest.mark.parametrize("bad", ["abc", device_id("a0") + "0", device_id("a0")[:-1],
                                 "g" * 24, ""])
async def test_a_bad_device_id_is_an_error_on_the_field(http, fleet, bad):
    body = await read_device(http, await fleet.token(), bad)
    assert body["data"] == {"device": None}
    assert body["errors"][0]["extensions"]["code"] == "INVALID_DEVICE_ID"
    assert body["errors"][0]["path"] == ["device"]


async def test_a_device_is_a_node(http, fleet):
    node_id = gid("Device", own(3)[0])
    body = await graphql(http, "query($id: ID!) { node(id: $id) { id ... on Device "
                               "{ deviceId name } } }", {"id": node_id},
                         token=await fleet.token())
    assert body["data"]["node"] == {"id": node_id, "deviceId": own(3)[0], "name": "Attic"}
    body = await graphql(http, "query($id: ID!) { node(id: $id) { id } }",
                         {"id": gid("Device", "nope")}, token=await fleet.token())
    assert body["data"]["node"] is None


# --- managing devices ----------------------------------------------------------------------


async def mutate(http, fleet: Fleet, name: str, input: dict, role: str = "DEVELOPER",
                 input_type: str = "DeviceInput") -> dict[str, Any]:
    return await run_mutation(
        http, name, input_type, input,
        "device { deviceId name notes development quarantine product { slug } }",
        token=await fleet.token(role))


async def audit_entries() -> list[tuple[str, str, dict]]:
    return [(e.action, e.target_id, e.details)
            for e in await AuditEntry.filter(action__startswith="device.").order_by("id")]


async def test_update_device(http, fleet):
    device = own(2)[0]
    payload = await mutate(http, fleet, "updateDevice",
                           {"deviceId": device.upper(), "name": "  Garage   door ",
                            "notes": "Left of the door", "development": True},
                           input_type="UpdateDeviceInput")
    assert payload == {"device": {"deviceId": device, "name": "Garage door",
                                  "notes": "Left of the door", "development": True,
                                  "quarantine": "NONE", "product": {"slug": "thermostat"}},
                       "userErrors": []}
    stored = await Device.get(id=device)
    assert (stored.name, stored.notes, stored.development) == (
        "Garage door", "Left of the door", True)
    assert await audit_entries() == [("device.update", device, {
        "name": ["Garage", "Garage door"], "notes": ["", "Left of the door"],
        "development": [False, True]})]
    again = await mutate(http, fleet, "updateDevice", {"deviceId": device, "name": "Garage door"},
                         input_type="UpdateDeviceInput")
    assert again["userErrors"] == [] and len(await audit_entries()) == 1  # nothing changed


@pytest.mark.parametrize(("input", "field", "code"), [
    ({"name": "n" * 101}, "name", "TOO_LONG"),
    ({"notes": "n" * 2001}, "notes", "TOO_LONG"),
    ({"deviceId": "xyz"}, "deviceId", "INVALID_DEVICE_ID"),
    ({"deviceId": device_id("ff")}, "deviceId", "NOT_FOUND"),
    ({"deviceId": ELSEWHERE}, "deviceId", "NOT_FOUND"),
])
async def test_update_device_refuses_bad_input(http, fleet, input, field, code):
    payload = await mutate(http, fleet, "updateDevice", {"deviceId": own(0)[0], **input},
                           input_type="UpdateDeviceInput")
    assert payload["device"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    stored = await Device.get(id=own(0)[0])
    assert (stored.name, stored.notes) == ("Kitchen sensor", "")
    assert await audit_entries() == []


async def test_limits_are_inclusive(http, fleet):
    payload = await mutate(http, fleet, "updateDevice",
                           {"deviceId": own(0)[0], "name": "n" * 100, "notes": "n" * 2000},
                           input_type="UpdateDeviceInput")
    assert payload["userErrors"] == []
    assert payload["device"]["name"] == "n" * 100


async def test_remove_device_from_product(http, fleet):
    device = own(1)[0]
    await Device.filter(id=device).update(imported_at=T, import_forced=True)
    payload = await mutate(http, fleet, "removeDeviceFromProduct", {"deviceId": device})
    assert payload["device"] == {"deviceId": device, "name": "Kitchen light", "notes": "",
                                 "development": False, "quarantine": "NONE", "product": None}
    stored = await Device.get(id=device)
    assert (stored.product_id, stored.imported_at, stored.import_forced, stored.development,
            stored.quarantine) == (None, None, False, False, "NONE")
    assert await audit_entries() == [("device.remove", device,
                                      {"productId": fleet.product.id})]
    assert (await read_device(http, await fleet.token(), device))["data"]["device"] is None
    stats = await product_field(http, fleet, "deviceStats { total online development }")
    assert stats["deviceStats"] == {"total": 9, "online": 2, "development": 2}
    again = await mutate(http, fleet, "removeDeviceFromProduct", {"deviceId": device})
    assert [e["code"] for e in again["userErrors"]] == ["NOT_FOUND"]  # no longer the team's


async def test_removing_a_quarantined_device(http, fleet):
    payload = await mutate(http, fleet, "removeDeviceFromProduct", {"deviceId": Q1})
    assert payload["device"]["quarantine"] == "NONE" and payload["device"]["product"] is None
    stats = await product_field(http, fleet, "deviceStats { total quarantined }")
    assert stats["deviceStats"] == {"total": 10, "quarantined": 1}


async def test_approve_a_quarantined_device(http, fleet):
    payload = await mutate(http, fleet, "approveQuarantinedDevice", {"deviceId": Q0})
    assert payload["device"]["quarantine"] == "NONE"
    assert payload["device"]["product"] == {"slug": "thermostat"}
    assert await audit_entries() == [("device.approve", Q0, {"productId": fleet.product.id})]
    stats = await product_field(
        http, fleet, "deviceStats { total online quarantined byFirmwareVersion "
                     "{ version devices online } }")
    assert stats["deviceStats"] == {
        "total": 11, "online": 4, "quarantined": 1,
        "byFirmwareVersion": [
            {"version": "1.0.0", "devices": 5, "online": 3},
            {"version": None, "devices": 3, "online": 0},
            {"version": "1.1.0", "devices": 2, "online": 1},
            {"version": "2.0.0", "devices": 1, "online": 0},
        ],
    }
    ids, _ = await device_ids(http, fleet, {"online": True}, "LAST_HEARD_DESC")
    assert ids == [Q0, *own(0, 3, 1)]


async def test_deny_a_quarantined_device(http, fleet):
    payload = await mutate(http, fleet, "denyQuarantinedDevice", {"deviceId": Q1})
    assert payload["device"]["quarantine"] == "DENIED"
    assert (await Device.get(id=Q1)).quarantine == "DENIED"
    assert await audit_entries() == [("device.deny", Q1, {"productId": fleet.product.id})]
    stats = await product_field(http, fleet, "deviceStats { total quarantined }")
    assert stats["deviceStats"] == {"total": 10, "quarantined": 1}
    ids, _ = await device_ids(http, fleet, {"quarantined": True})
    assert ids == [Q0]


@pytest.mark.parametrize("mutation", ["approveQuarantinedDevice", "denyQuarantinedDevice"])
@pytest.mark.parametrize("device", [own(0)[0], DENIED, CLAIMED])
async def test_only_quarantined_devices_are_approved_or_denied(http, fleet, mutation, device):
    payload = await mutate(http, fleet, mutation, {"deviceId": device})
    assert payload["device"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        ("deviceId", "NOT_QUARANTINED")]
    assert (await Device.get(id=device)).quarantine in ("NONE", "DENIED")
    assert await audit_entries() == []


async def test_a_decision_is_taken_once(http, fleet):
    first = await mutate(http, fleet, "approveQuarantinedDevice", {"deviceId": Q0})
    second = await mutate(http, fleet, "denyQuarantinedDevice", {"deviceId": Q0})
    assert first["userErrors"] == []
    assert [e["code"] for e in second["userErrors"]] == ["NOT_QUARANTINED"]
    assert (await Device.get(id=Q0)).quarantine == "NONE"


async def test_the_claimer_manages_a_device_in_no_product(http, fleet):
    token = await fleet.token("DEVELOPER")
    assert (await read_device(http, token, CLAIMED))["data"]["device"]["name"] == "Bench unit"
    payload = await mutate(http, fleet, "updateDevice", {"deviceId": CLAIMED, "name": "Desk"},
                           input_type="UpdateDeviceInput")
    assert payload["device"]["name"] == "Desk" and payload["device"]["product"] is None
    removed = await mutate(http, fleet, "removeDeviceFromProduct", {"deviceId": CLAIMED})
    assert [e["code"] for e in removed["userErrors"]] == ["NOT_IN_PRODUCT"]
    assert await audit_entries() == []  # no organization's change
