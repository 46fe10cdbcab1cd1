"""What a device answers a variable read with, end to end: Python's json reads NaN and Infinity,
which are not JSON, so the cloud refuses them instead of passing them on."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from core.errors import DomainError
from fleet import rpc
from tests.support.accounts import access_token
from tests.support.gateway import make_device, session
from tests.support.polling import receive
from tests.support.worlds import CallingTeam

NOT_FINITE = ["NaN", "Infinity", "-Infinity"]
READ = """query($id: String!) { device(deviceId: $id) {
    variable(name: "temperature") { value userErrors { field message code } } } }"""


async def answer(ws: ClientConnection, value: str) -> None:
    """Read the cloud's next request and answer it with `value`, written as is."""
    request = await receive(ws)
    await ws.send(f'{{"type":"reply","replyTo":{request["id"]},"value":{value}}}')


def _strict(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.parametrize("value", NOT_FINITE)
async def test_a_variable_that_is_not_a_finite_number_is_refused(
    url: str, calling_team: CallingTeam, value: str
) -> None:
    principals, product = calling_team
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        read = asyncio.create_task(
            rpc.read_variable(principals["SUPPORT"], device_id, "temperature"))
        await answer(ws, value)
        with pytest.raises(DomainError) as raised:
            await read
        assert (raised.value.code, raised.value.message) == (
            "DEVICE_FAILED", "The device answered with a value that is not a finite number.")
        # Finite numbers still pass, the largest double included.
        read = asyncio.create_task(
            rpc.read_variable(principals["SUPPORT"], device_id, "temperature"))
        await answer(ws, "1.7976931348623157e308")
        assert await read == 1.7976931348623157e308


async def test_the_graphql_answer_stays_json(
    url: str, http: httpx.AsyncClient, calling_team: CallingTeam
) -> None:
    _, product = calling_team
    device_id, secret = await make_device(product)
    token = await access_token("support@callers.example")
    async with session(url, device_id, secret, product.id) as (ws, _):
        response = asyncio.create_task(http.post(
            "/graphql", json={"query": READ, "variables": {"id": device_id}},
            headers={"Authorization": f"Bearer {token}"}))
        await answer(ws, "NaN")
        # Read strictly: NaN or Infinity anywhere in the body fails the test.
        body = json.loads((await response).text, parse_constant=_strict)
    assert body["data"] == {"device": {"variable": {"value": None, "userErrors": [{
        "field": None, "code": "DEVICE_FAILED",
        "message": "The device answered with a value that is not a finite number."}]}}}
