"""Claiming end to end: a customer gets a claim code over GraphQL, a device (a real WebSocket
client, then `devicecloud simulate`) presents it in its hello and becomes theirs; then the
customer reaches it, and only it, over GraphQL and SSE."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from core.settings import get_settings
from fleet.events import LiveEvent
from models.customers import ClaimCode, Customer
from models.devices import Device, Event
from simulator.cli import add_arguments
from tests.support.customers import customer_token, make_customer
from tests.support.gateway import FIRMWARE, answer_next, exchange, make_device, publish
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.live import particle, sse
from tests.support.polling import eventually
from tests.support.servers import Clock
from tests.support.worlds import Products

ROOT = Path(__file__).resolve().parents[2]
DEVICECLOUD = Path(sys.executable).parent / "devicecloud"


async def claim_code(http: httpx.AsyncClient, token: str, product_id: int) -> str:
    payload = await run_mutation(http, "createClaimCode", "CreateClaimCodeInput",
                                 {"productId": gid("Product", product_id)}, "claimCode",
                                 token=token)
    assert payload["userErrors"] == []
    return payload["claimCode"]


@asynccontextmanager
async def connected(url: str, device_id: str, secret: str, product_id: int, code: str
                    ) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A device that said hello with the claim code: the connection and its welcome."""
    async with connect(url, max_size=None) as ws:
        auth = {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret}
        assert await exchange(ws, auth) == {"type": "ok", "replyTo": 1}
        welcome = await exchange(ws, {"type": "hello", "id": 2, "productId": product_id,
                                      "claimCode": code, **FIRMWARE})
        yield ws, welcome


def welcome_frame(product_id: int, **extra: Any) -> dict[str, Any]:
    return {"type": "welcome", "replyTo": 2, "productId": product_id, "quarantined": False,
            "keepAlive": 30, **extra}


async def owner_of(device_id: str) -> int | None:
    return (await Device.get(id=device_id)).customer_id


async def test_a_device_presenting_a_code_becomes_the_customers(
    http: httpx.AsyncClient, url: str, two_products: Products
) -> None:
    alice = await make_customer(two_products.p, "alice@customers.example")
    bob = await make_customer(two_products.p, "bob@customers.example")
    token, bobs = await customer_token(alice), await customer_token(bob)
    code = await claim_code(http, token, two_products.p.id)
    device_id, secret = await make_device(two_products.p)
    mine = "{ customerDevices { edges { node { deviceId online product { id } } } } }"
    assert (await graphql(http, mine, token=token))["data"] == {
        "customerDevices": {"edges": []}}

    async with connected(url, device_id, secret, two_products.p.id, code) as (ws, welcome):
        assert welcome == welcome_frame(two_products.p.id, claimed=True)
        assert (await graphql(http, mine, token=token))["data"] == {"customerDevices": {
            "edges": [{"node": {"deviceId": device_id, "online": True, "product": None}}]}}
        assert (await Customer.get(id=alice.id)).last_active_at is not None
        # The customer streams its events…
        async with sse(http, f"/v1/devices/{device_id}/events", token) as stream:
            assert await exchange(ws, publish(3, data="22.5")) == {"type": "ack", "replyTo": 3}
            received = await stream.event()
            assert json.loads(received["data"])["data"] == "22.5"
            assert received == particle(await _last_event(device_id), device_id)
        # …calls its functions and reads its variables; the device answers.
        call = asyncio.create_task(run_mutation(
            http, "callFunction", "CallFunctionInput",
            {"deviceId": device_id, "name": "setTemp", "argument": "21"}, "returnValue",
            token=token))
        request = await answer_next(ws, value=1)
        assert (request["name"], request["argument"]) == ("setTemp", "21")
        assert await call == {"returnValue": 1, "userErrors": []}
        read = asyncio.create_task(graphql(
            http, 'query($id: String!) { device(deviceId: $id) { variable(name: "temperature")'
                  " { value userErrors { code } } } }", {"id": device_id}, token=token))
        assert (await answer_next(ws, value=21.25))["name"] == "temperature"
        assert (await read)["data"] == {"device": {"variable": {"value": 21.25,
                                                                "userErrors": []}}}
        # Another customer of the product does not reach it.
        body = await graphql(http, "query($id: String!) { device(deviceId: $id) { deviceId } }",
                             {"id": device_id}, token=bobs)
        assert body["data"] == {"device": None}

    (row,) = await ClaimCode.filter(customer_id=alice.id).values("used_at", "device_id")
    assert row["device_id"] == device_id and row["used_at"] is not None


async def _last_event(device_id: str) -> LiveEvent:
    event = await Event.filter(device_id=device_id).order_by("-id").first()
    assert event is not None
    return LiveEvent.of(event)


async def claim_code_errors(http: httpx.AsyncClient, token: str, product_id: int
                            ) -> list[dict[str, Any]]:
    payload = await run_mutation(http, "createClaimCode", "CreateClaimCodeInput",
                                 {"productId": gid("Product", product_id)}, "claimCode",
                                 token=token)
    return payload["userErrors"]


async def test_a_customer_holds_at_most_the_cap_of_outstanding_codes(
    http: httpx.AsyncClient, url: str, two_products: Products, frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "claim_codes_per_customer", 2)
    alice = await make_customer(two_products.p, "alice@customers.example")
    bob = await make_customer(two_products.p, "bob@customers.example")
    token = await customer_token(alice)
    code = await claim_code(http, token, two_products.p.id)
    await claim_code(http, token, two_products.p.id)
    refused = {"field": None, "code": "LIMIT_REACHED",
               "message": "You hold 2 unused claim codes, the most at once; use one or wait "
                          "until one expires."}
    assert await claim_code_errors(http, token, two_products.p.id) == [refused]
    await claim_code(http, await customer_token(bob), two_products.p.id)  # a cap per customer
    device_id, secret = await make_device(two_products.p)
    async with connected(url, device_id, secret, two_products.p.id, code) as (_, welcome):
        assert welcome == welcome_frame(two_products.p.id, claimed=True)
    await claim_code(http, token, two_products.p.id)  # the used code freed its place
    assert await claim_code_errors(http, token, two_products.p.id) == [refused]
    frozen_clock.advance(hours=24)  # both expire
    token = await customer_token(alice)
    await claim_code(http, token, two_products.p.id)
    await claim_code(http, token, two_products.p.id)
    assert await claim_code_errors(http, token, two_products.p.id) == [refused]


async def test_an_expired_code_claims_nothing(http: httpx.AsyncClient, url: str,
                                              two_products: Products, frozen_clock: Clock) -> None:
    alice = await make_customer(two_products.p, "alice@customers.example")
    code = await claim_code(http, await customer_token(alice), two_products.p.id)
    frozen_clock.advance(hours=24)
    device_id, secret = await make_device(two_products.p)
    async with connected(url, device_id, secret, two_products.p.id, code) as (_, welcome):
        assert welcome == welcome_frame(two_products.p.id)
    assert await owner_of(device_id) is None
    assert await ClaimCode.filter(used_at__not_isnull=True).count() == 0


async def test_a_used_code_claims_nothing(http: httpx.AsyncClient, url: str,
                                          two_products: Products) -> None:
    alice = await make_customer(two_products.p, "alice@customers.example")
    code = await claim_code(http, await customer_token(alice), two_products.p.id)
    first, second = await make_device(two_products.p), await make_device(two_products.p)
    async with connected(url, *first, two_products.p.id, code) as (_, welcome):
        assert welcome == welcome_frame(two_products.p.id, claimed=True)
    async with connected(url, *second, two_products.p.id, code) as (_, welcome):
        assert welcome == welcome_frame(two_products.p.id)
    assert (await owner_of(first[0]), await owner_of(second[0])) == (alice.id, None)


async def test_a_device_of_another_product_keeps_the_code_unused(
    http: httpx.AsyncClient, url: str, two_products: Products
) -> None:
    alice = await make_customer(two_products.p, "alice@customers.example")
    code = await claim_code(http, await customer_token(alice), two_products.p.id)
    device_id, secret = await make_device(two_products.q)
    async with connected(url, device_id, secret, two_products.q.id, code) as (_, welcome):
        assert welcome == welcome_frame(two_products.q.id)
    assert await owner_of(device_id) is None
    assert await ClaimCode.filter(used_at__not_isnull=True).count() == 0


async def test_the_simulator_presents_a_claim_code(
    http: httpx.AsyncClient, url: str, two_products: Products, tmp_path: Path
) -> None:
    alice = await make_customer(two_products.p, "alice@customers.example")
    token = await customer_token(alice)
    code = await claim_code(http, token, two_products.p.id)
    device_id, secret = await make_device(two_products.p)
    devices_csv = tmp_path / "devices.csv"
    devices_csv.write_text(f"device_id,secret\n{device_id},{secret}\n")
    process = await asyncio.create_subprocess_exec(
        str(DEVICECLOUD), "simulate", "--devices", str(devices_csv), "--url", url,
        "--product-id", str(two_products.p.id), "--rate", "0", "--claim-code", code, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def claimed() -> bool:
            return await owner_of(device_id) == alice.id

        await eventually(claimed, within=20)
        assert (await graphql(http, "{ customerDevices { edges { node { deviceId } } } }",
                              token=token))["data"] == {
            "customerDevices": {"edges": [{"node": {"deviceId": device_id}}]}}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert output.decode().splitlines()[-1] == (
        "1 devices: 0 connected, 0 welcomed, 0 quarantined, 0 refused, 0 reconnects, 1 claimed")


def test_the_simulators_claim_code_is_checked_like_the_hello_s() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--devices", "d.csv", "--claim-code", "c" * 64])
    assert args.claim_code == "c" * 64
    assert parser.parse_args(["--devices", "d.csv"]).claim_code is None
    for bad in ("", "c" * 65):
        with pytest.raises(SystemExit):
            parser.parse_args(["--devices", "d.csv", "--claim-code", bad])
