"""A customer reading their own device sees its state, not what the product's team keeps about
it: `notes`, `development`, `quarantine`, `quarantined` and `rateLimitedEvents` are null for
them, whichever way they reach the device; the team sees the values."""

from __future__ import annotations

from typing import Any

import httpx

from core import clock
from fleet import products
from models.devices import Device
from tests.support.accounts import access_token, organization_with_team
from tests.support.customers import customer_token, make_customer
from tests.support.graphql import gid, graphql

DEVICE = "d1".ljust(24, "0")
HIDDEN = "notes development quarantine quarantined rateLimitedEvents"
SELECTION = f"deviceId name {HIDDEN}"


async def _reads(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    """The device through `device`, `node` and (null for the team) `customerDevices`."""
    body = await graphql(
        http,
        f"query($deviceId: String!, $id: ID!) {{ device(deviceId: $deviceId) {{ {SELECTION} }} "
        f"node(id: $id) {{ ... on Device {{ {SELECTION} }} }} "
        f"customerDevices {{ edges {{ node {{ {SELECTION} }} }} }} }}",
        {"deviceId": DEVICE, "id": gid("Device", DEVICE)}, token=token)
    assert "errors" not in body, body
    data = body["data"]
    listed = [edge["node"] for edge in (data["customerDevices"] or {"edges": []})["edges"]]
    return [data["device"], data["node"], *listed]


async def test_customer_gets_null_for_team_fields_team_gets_values(http: httpx.AsyncClient
                                                                  ) -> None:
    acme = await organization_with_team("Acme", "acme")
    thermostat = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    customer = await make_customer(thermostat, "a@customers.example")
    await Device.create(
        id=DEVICE, secret_hash="0" * 64, platform="Photon", provisioned_at=clock.now(),
        product=thermostat, name="Hall", notes="Replace in May", development=True,
        rate_limited_events=3, customer=customer, claimed_at=clock.now())

    customer_reads = await _reads(http, await customer_token(customer))
    assert len(customer_reads) == 3  # device, node, customerDevices
    for read in customer_reads:
        assert read == {"deviceId": DEVICE, "name": "Hall", "notes": None, "development": None,
                        "quarantine": None, "quarantined": None, "rateLimitedEvents": None}

    team_reads = await _reads(http, await access_token(acme.email("VIEWER")))
    assert len(team_reads) == 2  # device, node: customerDevices is null for the team
    for read in team_reads:
        assert read == {"deviceId": DEVICE, "name": "Hall", "notes": "Replace in May",
                        "development": True, "quarantine": "NONE", "quarantined": False,
                        "rateLimitedEvents": 3}
