"""Importing devices into a product: a multipart file upload (or a list) over real HTTP, every
tolerance of the file format, the four result lists, the flags, the limits, atomicity,
idempotency, protected devices and who may import."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from core.errors import Conflict, InvalidInput
from fleet import device_import, products
from fleet.device_import import MAX_DEVICE_IDS, MAX_FILE_BYTES, import_devices
from fleet.provisioning import provision_devices
from models.devices import Device
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import (
    TEAM_ROLES,
    Team,
    access_token,
    client_token,
    make_user,
    organization_with_team,
    service_client,
)
from tests.support.graphql import gid, graphql, run_mutation

RESULT = ("importedDeviceIds alreadyInProductDeviceIds invalidDeviceIds protectedDeviceIds "
          "product { productId }")
IMPORT = ("mutation($input: ImportDevicesInput!) { importDevices(input: $input) "
          f"{{ {RESULT} userErrors {{ field message code }} }} }}")


async def upload(http, token: str | None, product_id: int, content: bytes, **flags: Any
                 ) -> dict[str, Any]:
    """`importDevices` with `content` as the file, per the GraphQL multipart request spec."""
    operations = {"query": IMPORT, "variables": {
        "input": {"productId": gid("Product", product_id), "file": None, **flags}}}
    response = await http.post(
        "/graphql",
        files={
            "operations": (None, json.dumps(operations)),
            "map": (None, json.dumps({"0": ["variables.input.file"]})),
            "0": ("devices.txt", content, "text/plain"),
        },
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["importDevices"]


async def import_list(http, token: str, product_id: int, device_ids: list[str] | None,
                      **flags: Any) -> dict[str, Any]:
    input = {"productId": gid("Product", product_id), **flags}
    if device_ids is not None:
        input["deviceIds"] = device_ids
    return await run_mutation(http, "importDevices", "ImportDevicesInput", input, RESULT,
                              token=token)


def lines(*ids: str, newline: str = "\n") -> bytes:
    return (newline.join(ids) + newline).encode()


def rejected(field: str, code: str) -> dict[str, Any]:
    """The payload of an import refused as a whole (its message is checked separately)."""
    return {"importedDeviceIds": [], "alreadyInProductDeviceIds": [], "invalidDeviceIds": [],
            "protectedDeviceIds": [], "product": None, "code": code, "field": field}


def refusal(payload: dict[str, Any]) -> dict[str, Any]:
    [error] = payload["userErrors"]
    summary = {key: value for key, value in payload.items() if key != "userErrors"}
    return summary | {"code": error["code"], "field": error["field"]}


async def make_product(team: Team, slug: str) -> Product:
    return await products.create_product(
        team.principals["OWNER"], team.organization.id, name=slug.title(), slug=slug,
        description="", platform="Photon", customer_auth="SIMPLE")


async def new_devices(count: int) -> list[str]:
    return [device_id for device_id, _ in await provision_devices(count, "Photon")]


async def product_of(device_ids: list[str]) -> dict[str, int | None]:
    rows = await Device.filter(id__in=device_ids).values_list("id", "product_id")
    return dict(rows)


@pytest.fixture
async def acme() -> Team:
    return await organization_with_team()


@pytest.fixture
async def developer(acme) -> str:
    return await access_token(acme.email("DEVELOPER"))


@pytest.fixture
async def thermostat(acme) -> Product:
    return await make_product(acme, "thermostat")


# --- The file format and the four lists ---------------------------------------------------------


async def test_file_import_tolerates_its_format_and_sorts_every_id(
    http, acme, developer, thermostat, frozen_clock
):
    plain, upper, spaced, repeated, by_teammate, from_sibling, outsiders, foreign = (
        await new_devices(8))
    unknown = secrets.token_hex(12)
    outsider = await make_user("outsider@elsewhere.example")
    await Device.filter(id=outsiders).update(claimed_by_id=outsider.id)
    await Device.filter(id=by_teammate).update(claimed_by_id=acme.users["VIEWER"].id)
    sibling = await make_product(acme, "doorbell")
    await Device.filter(id=from_sibling).update(product_id=sibling.id)
    globex = await organization_with_team("Globex", "globex", domain="globex.example",
                                          roles=("OWNER",))
    rival = await make_product(globex, "rival")
    await Device.filter(id=foreign).update(product_id=rival.id)
    content = "\ufeff" + "\r\n".join([
        plain, "", f"  {upper.upper()}  ", f"\t{spaced} ", repeated, repeated.upper(),
        "   ", by_teammate, plain[:23], plain + "0", "zz" + plain[2:], unknown, from_sibling,
        outsiders, foreign, plain[:23], "",
    ]) + "\r\n\r\n"

    payload = await upload(http, developer, thermostat.id, content.encode(), development=True)

    assert payload == {
        "importedDeviceIds": [plain, upper, spaced, repeated, by_teammate, from_sibling],
        "alreadyInProductDeviceIds": [],
        "invalidDeviceIds": [plain[:23], plain + "0", "zz" + plain[2:], unknown],
        "protectedDeviceIds": [outsiders, foreign],
        "product": {"productId": thermostat.id},
        "userErrors": [],
    }
    imported = await Device.filter(product_id=thermostat.id).order_by("id")
    assert sorted(d.id for d in imported) == sorted(payload["importedDeviceIds"])
    assert {(d.imported_at, d.import_forced, d.development, d.quarantine) for d in imported} == {
        (frozen_clock.current, False, True, "NONE")}
    assert (await Device.get(id=by_teammate)).claimed_by_id == acme.users["VIEWER"].id
    assert await product_of([outsiders, foreign]) == {outsiders: None, foreign: rival.id}
    entry = await AuditEntry.filter(action="device.import").get()
    assert (entry.actor_label, entry.target_type, entry.target_id, entry.target_label,
            entry.details) == (
        "developer@example.com", "Product", str(thermostat.id), "Thermostat",
        {"imported": 6, "alreadyInProduct": 0, "invalid": 4, "protected": 2, "force": False,
         "development": True})


async def test_importing_again_changes_nothing(http, developer, thermostat, frozen_clock):
    device_ids = await new_devices(3)
    first = await upload(http, developer, thermostat.id, lines(*device_ids), force=True)
    assert first["importedDeviceIds"] == device_ids
    imported_at = frozen_clock.current
    frozen_clock.advance(minutes=30)

    again = await upload(http, developer, thermostat.id, lines(*reversed(device_ids)))

    assert (again["importedDeviceIds"], again["alreadyInProductDeviceIds"]) == (
        [], list(reversed(device_ids)))
    stored = await Device.filter(id__in=device_ids)
    assert {(d.product_id, d.imported_at, d.import_forced) for d in stored} == {
        (thermostat.id, imported_at, True)}


async def test_a_quarantined_device_is_imported_out_of_quarantine(http, developer, thermostat):
    [device_id] = await new_devices(1)
    await Device.filter(id=device_id).update(product_id=thermostat.id, quarantine="QUARANTINED")

    payload = await upload(http, developer, thermostat.id, lines(device_id))

    assert payload["importedDeviceIds"] == [device_id]
    assert (await Device.get(id=device_id)).quarantine == "NONE"


@pytest.mark.parametrize(("force", "development"), [(False, False), (True, False),
                                                     (False, True), (True, True)])
async def test_a_list_imports_with_the_flags_stored(http, developer, thermostat, force,
                                                    development):
    device_ids = await new_devices(2)
    payload = await import_list(http, developer, thermostat.id,
                                [device_ids[0].upper(), f" {device_ids[1]} ", device_ids[0]],
                                force=force, development=development)
    assert (payload["importedDeviceIds"], payload["userErrors"]) == (device_ids, [])
    stored = await Device.filter(id__in=device_ids)
    assert {(d.product_id, d.import_forced, d.development) for d in stored} == {
        (thermostat.id, force, development)}


async def test_the_flags_default_to_off(http, developer, thermostat):
    [device_id] = await new_devices(1)
    await upload(http, developer, thermostat.id, lines(device_id))
    device = await Device.get(id=device_id)
    assert (device.import_forced, device.development) == (False, False)


# --- One source, within the limits, or nothing -------------------------------------------------


async def test_a_file_and_a_list_together_or_neither_are_refused(http, developer, thermostat):
    [device_id] = await new_devices(1)
    neither = await import_list(http, developer, thermostat.id, None)
    assert neither["userErrors"] == [{
        "field": "deviceIds", "code": "FILE_OR_LIST",
        "message": "Give either a file or a list of device IDs, not both."}]

    operations = {"query": IMPORT, "variables": {"input": {
        "productId": gid("Product", thermostat.id), "file": None, "deviceIds": [device_id]}}}
    response = await http.post(
        "/graphql",
        files={"operations": (None, json.dumps(operations)),
               "map": (None, json.dumps({"0": ["variables.input.file"]})),
               "0": ("devices.txt", lines(device_id), "text/plain")},
        headers={"Authorization": f"Bearer {developer}"})
    both = response.json()["data"]["importDevices"]
    assert [(e["field"], e["code"]) for e in both["userErrors"]] == [("file", "FILE_OR_LIST")]
    assert await product_of([device_id]) == {device_id: None}


@pytest.mark.parametrize("content", [b"", b"\r\n  \n\n", "\ufeff\n".encode()])
async def test_a_file_without_ids_is_refused(http, developer, thermostat, content):
    payload = await upload(http, developer, thermostat.id, content)
    assert refusal(payload) == rejected("file", "EMPTY")


@pytest.mark.parametrize("content", [
    b"0123456789abcdef01234567\n\x00\x01\x02\n",
    b"0123456789abcdef01234567\n\xff\xfe\xfd\n",
    bytes(range(256)) * 4,
])
async def test_a_binary_file_imports_nothing(http, developer, thermostat, content):
    [device_id] = await new_devices(1)
    payload = await upload(http, developer, thermostat.id, lines(device_id) + content)
    assert refusal(payload) == rejected("file", "BINARY_FILE")
    assert payload["userErrors"][0]["message"] == (
        "The file is binary: upload a .txt file with one device ID per line.")
    assert await product_of([device_id]) == {device_id: None}


async def test_a_file_of_5_mb_is_imported_and_one_byte_more_is_refused(
    http, developer, thermostat
):
    first, second = await new_devices(2)
    padding = MAX_FILE_BYTES - len(lines(first))

    within = await upload(http, developer, thermostat.id, lines(first) + b" " * padding)
    assert (within["importedDeviceIds"], within["userErrors"]) == ([first], [])

    over = await upload(http, developer, thermostat.id, lines(second) + b" " * (padding + 1))
    assert refusal(over) == rejected("file", "FILE_TOO_LARGE")
    assert over["userErrors"][0]["message"] == "The file is larger than 5 MB; split it."
    assert await product_of([second]) == {second: None}


async def test_100000_ids_are_imported_and_100001_are_refused(http, developer, thermostat):
    known = await new_devices(3)
    unknown = [secrets.token_hex(12) for _ in range(MAX_DEVICE_IDS - 2)]

    within = await upload(http, developer, thermostat.id, lines(known[0], *unknown, known[1],
                                                                newline="\r\n"))
    assert within["importedDeviceIds"] == known[:2]
    assert within["invalidDeviceIds"] == unknown
    assert within["userErrors"] == []

    over = await upload(http, developer, thermostat.id, lines(known[2], *unknown, known[0],
                                                              known[1]))
    assert refusal(over) == rejected("file", "TOO_MANY_DEVICE_IDS")
    assert over["userErrors"][0]["message"] == (
        "At most 100,000 device IDs per import; split the file.")
    assert await product_of(known) == {known[0]: thermostat.id, known[1]: thermostat.id,
                                       known[2]: None}
    assert await AuditEntry.filter(action="device.import").count() == 1


async def test_a_list_over_the_limit_imports_nothing(acme, thermostat):
    # 100,001 IDs do not fit the 1 MB limit of a JSON request body: the service is asked.
    [device_id] = await new_devices(1)
    with pytest.raises(InvalidInput) as raised:
        await import_devices(acme.principals["DEVELOPER"], thermostat.id,
                             [device_id] * (MAX_DEVICE_IDS + 1), None, force=False,
                             development=False)
    assert (raised.value.field, raised.value.code, raised.value.message) == (
        "deviceIds", "TOO_MANY_DEVICE_IDS",
        "At most 100,000 device IDs per import; split the list.")
    assert await product_of([device_id]) == {device_id: None}


# --- Who may import -----------------------------------------------------------------------------

CALLERS = ("anonymous", "client", "outsider", *TEAM_ROLES)
MAY_IMPORT = {"OWNER", "ADMINISTRATOR", "DEVELOPER"}
EXPECTED = {caller: ("imported" if caller in MAY_IMPORT else
                     "FORBIDDEN" if caller in TEAM_ROLES else "NOT_FOUND")
            for caller in CALLERS}


async def _token_of(http, caller: str, acme: Team) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "client":
        client, secret = await service_client()
        return await client_token(http, client, secret)
    if caller == "outsider":
        await make_user("outsider@elsewhere.example")
        return await access_token("outsider@elsewhere.example")
    return await access_token(acme.email(caller))


@pytest.mark.parametrize("caller", CALLERS)
async def test_only_owners_administrators_and_developers_may_import(http, acme, thermostat,
                                                                    caller):
    [device_id] = await new_devices(1)
    payload = await upload(http, await _token_of(http, caller, acme), thermostat.id,
                           lines(device_id))
    if payload["userErrors"]:
        [error] = payload["userErrors"]
        outcome = error["code"]
        assert payload["importedDeviceIds"] == []
        assert await product_of([device_id]) == {device_id: None}
        if outcome == "NOT_FOUND":
            assert (error["field"], error["message"]) == ("productId", "No such product.")
    else:
        outcome = "imported"
        assert payload["importedDeviceIds"] == [device_id]
        assert await product_of([device_id]) == {device_id: thermostat.id}
    assert outcome == EXPECTED[caller]


async def test_an_unknown_product_is_not_found(http, developer):
    [device_id] = await new_devices(1)
    payload = await upload(http, developer, 987654321, lines(device_id))
    assert refusal(payload) == rejected("productId", "NOT_FOUND")


async def test_the_mutation_is_in_the_schema_with_an_upload(http, developer):
    body = await graphql(http, '{ __type(name: "ImportDevicesInput") { inputFields '
                               '{ name type { name kind ofType { name } } } } }',
                         token=developer)
    fields = {f["name"]: f["type"] for f in body["data"]["__type"]["inputFields"]}
    assert fields["file"] == {"name": "Upload", "kind": "SCALAR", "ofType": None}
    assert set(fields) == {"productId", "file", "deviceIds", "force", "development"}


async def test_a_device_claimed_during_the_import_undoes_the_whole_import(
    acme, thermostat, monkeypatch
):
    device_ids = await new_devices(5)
    outsider = await make_user("outsider@elsewhere.example")
    fetch = device_import._Statement.fetch

    async def fetch_then_claim(self, sql):
        rows = await fetch(self, sql)
        if any(row["id"] == device_ids[-1] for row in rows):  # read unclaimed, then claimed
            await Device.filter(id=device_ids[-1]).update(claimed_by_id=outsider.id)
        return rows

    monkeypatch.setattr(device_import._Statement, "fetch", fetch_then_claim)
    monkeypatch.setattr(device_import, "CHUNK_SIZE", 2)  # the last chunk fails, after others
    with pytest.raises(Conflict) as raised:
        await device_import.import_devices(acme.principals["DEVELOPER"], thermostat.id,
                                           device_ids, None, force=False, development=False)
    assert raised.value.code == "CONCURRENT_CHANGE"
    assert set((await product_of(device_ids)).values()) == {None}
    assert not await AuditEntry.exists(action="device.import")
