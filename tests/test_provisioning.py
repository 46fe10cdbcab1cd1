"""The device registry: `devicecloud devices provision` writes IDs and secrets that
authenticate, refuses to overwrite its output and validates its input; developers claim and
release unowned devices."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from pathlib import Path

import pytest

from auth import tokens
from core.errors import InvalidInput
from fleet import products
from fleet.provisioning import MAX_COUNT, provision_devices
from models.devices import Device
from tests.support.accounts import (
    access_token,
    client_token,
    make_user,
    organization_with_team,
    service_client,
)
from tests.support.graphql import run_mutation

PROJECT_ROOT = Path(__file__).resolve().parent.parent


async def provision_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """Run `devicecloud devices provision ARGS` in its own process; (status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "devices", "provision", *args, cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_writes_ids_and_secrets_that_authenticate(database_url, tmp_path):
    out = tmp_path / "devices.csv"
    status, stdout, stderr = await provision_cli(
        database_url, "--count", "3", "--platform", " Photon 2 ", "--out", str(out))

    assert status == 0, stderr
    assert stdout == (f"Provisioned 3 Photon 2 devices; wrote their IDs and secrets to {out}.\n"
                      "The secrets are stored only as hashes: keep this file safe.\n")
    with out.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["device_id", "secret"]
    assert len(rows) == 3
    assert all(re.fullmatch(r"[0-9a-f]{24}", device_id) for device_id, _ in rows)
    assert all(re.fullmatch(r"dc_ds_[A-Za-z0-9_-]{43}", secret) for _, secret in rows)
    assert len({d for d, _ in rows}) == len({s for _, s in rows}) == 3
    stored = {d.id: d for d in await Device.all()}
    assert set(stored) == {device_id for device_id, _ in rows}
    for device_id, secret in rows:
        device = stored[device_id]
        assert device.secret_hash == tokens.digest(secret)
        assert tokens.secret_matches(device.secret_hash, secret)
        assert secret not in device.secret_hash
        assert (device.platform, device.product_id, device.claimed_by_id, device.online,
                device.quarantine) == ("Photon 2", None, None, False, "NONE")


async def test_the_cli_refuses_to_overwrite_its_output(database_url, tmp_path):
    out = tmp_path / "devices.csv"
    out.write_text("device_id,secret\nearlier,run\n")

    status, stdout, stderr = await provision_cli(
        database_url, "--count", "2", "--platform", "Photon", "--out", str(out))

    assert (status, stdout) == (1, "")
    assert stderr == f"{out} exists; refusing to overwrite it (its secrets may be the only copy).\n"
    assert out.read_text() == "device_id,secret\nearlier,run\n"
    assert await Device.all().count() == 0


@pytest.mark.parametrize(("count", "platform", "message"), [
    ("0", "Photon", "Provision between 1 and 1,000,000 devices at a time."),
    ("1000001", "Photon", "Provision between 1 and 1,000,000 devices at a time."),
    ("-5", "Photon", "Provision between 1 and 1,000,000 devices at a time."),
    ("2", "  ", "A platform is 1 to 40 letters, digits, spaces, dots, dashes or underscores "
                "(like 'Photon' or 'esp32-s3')."),
    ("2", "Photon/2", "A platform is 1 to 40 letters, digits, spaces, dots, dashes or "
                      "underscores (like 'Photon' or 'esp32-s3')."),
])
async def test_the_cli_validates_count_and_platform(database_url, tmp_path, count, platform,
                                                   message):
    out = tmp_path / "devices.csv"
    status, _, stderr = await provision_cli(
        database_url, f"--count={count}", f"--platform={platform}", "--out", str(out))
    assert (status, stderr) == (1, message + "\n")
    assert not out.exists()
    assert await Device.all().count() == 0


async def test_provisioning_crosses_batches_with_unique_ids():
    created = await provision_devices(2345, "Argon")
    assert len(created) == len(dict(created)) == 2345
    assert await Device.filter(platform="Argon").count() == 2345
    assert {d for d, _ in created} == set(await Device.all().values_list("id", flat=True))


@pytest.mark.parametrize("count", [0, MAX_COUNT + 1])
async def test_provisioning_limits_the_count(count):
    with pytest.raises(InvalidInput) as raised:
        await provision_devices(count, "Photon")
    assert (raised.value.field, raised.value.code) == ("count", "OUT_OF_RANGE")


# --- Claiming ----------------------------------------------------------------------------------

CLAIMED = "deviceId"


async def claim(http, token: str | None, device_id: str, name: str = "claimDevice") -> dict:
    return await run_mutation(http, name, "DeviceClaimInput", {"deviceId": device_id}, CLAIMED,
                              token=token)


async def release(http, token: str | None, device_id: str) -> dict:
    return await claim(http, token, device_id, "releaseDevice")


def failed(code: str, message: str, field: str | None = "deviceId") -> dict:
    return {"deviceId": None, "userErrors": [{"field": field, "message": message,
                                              "code": code}]}


async def claimed_by(device_id: str) -> int | None:
    return (await Device.get(id=device_id)).claimed_by_id


async def test_a_developer_claims_an_unowned_device_and_releases_it(http):
    [(device_id, _)] = await provision_devices(1, "Photon")
    ada, bob = await make_user("ada@example.com"), await make_user("bob@example.com")
    ada_token, bob_token = await access_token(ada.email), await access_token("bob@example.com")

    assert await claim(http, ada_token, device_id) == failed(
        "DEVICE_OFFLINE",
        "The device must be online to be claimed: power it up, let it connect, then claim it.")
    assert await claimed_by(device_id) is None
    await Device.filter(id=device_id).update(online=True)
    ok = {"deviceId": device_id, "userErrors": []}
    assert await claim(http, ada_token, device_id.upper()) == ok
    assert await claimed_by(device_id) == ada.id
    assert await claim(http, ada_token, device_id) == ok  # claiming again is fine
    assert await claim(http, bob_token, device_id) == failed(
        "ALREADY_CLAIMED", "This device belongs to someone else.")
    assert await release(http, bob_token, device_id) == failed(
        "NOT_CLAIMED", "You have not claimed this device.")
    assert await claimed_by(device_id) == ada.id

    assert await release(http, ada_token, device_id) == ok
    assert await claimed_by(device_id) is None
    assert await release(http, ada_token, device_id) == failed(
        "NOT_CLAIMED", "You have not claimed this device.")
    assert await claim(http, bob_token, device_id) == ok
    assert await claimed_by(device_id) == bob.id


async def test_claiming_needs_a_known_device_id(http):
    await make_user("ada@example.com")
    token = await access_token("ada@example.com")
    unknown = "0123456789abcdef01234567"
    for action in (claim, release):
        assert await action(http, token, unknown) == failed("NOT_FOUND", "No such device.")
        assert await action(http, token, "0123456789abcdef0123456") == failed(
            "INVALID_DEVICE_ID", "'0123456789abcdef0123456' is not a device ID: a device ID is "
            "24 hexadecimal characters.")


async def test_anonymous_callers_and_clients_cannot_claim(http):
    [(device_id, _)] = await provision_devices(1, "Photon")
    client, secret = await service_client()
    for token in (None, await client_token(http, client, secret)):
        for action in (claim, release):
            assert await action(http, token, device_id) == failed(
                "UNAUTHENTICATED", "Sign in as a user to do this.", field=None)
    assert await claimed_by(device_id) is None


async def test_a_device_in_another_organizations_product_cannot_be_claimed(http):
    acme = await organization_with_team(roles=("OWNER", "DEVELOPER"))
    globex = await organization_with_team("Globex", "globex", domain="globex.example",
                                          roles=("OWNER",))
    ours = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    theirs = await products.create_product(
        globex.principals["OWNER"], globex.organization.id, name="Rival", slug="rival",
        description="", platform="Photon", customer_auth="SIMPLE")
    (in_ours, _), (in_theirs, _) = await provision_devices(2, "Photon")
    await Device.filter(id=in_ours).update(product_id=ours.id, online=True)
    await Device.filter(id=in_theirs).update(product_id=theirs.id, online=True)
    token = await access_token(acme.email("DEVELOPER"))

    assert await claim(http, token, in_theirs) == failed(
        "ALREADY_CLAIMED", "This device belongs to someone else.")
    assert await claimed_by(in_theirs) is None
    assert await claim(http, token, in_ours) == {"deviceId": in_ours, "userErrors": []}
    assert await claimed_by(in_ours) == acme.users["DEVELOPER"].id
