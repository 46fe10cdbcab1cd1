"""A paused organization, end to end: its devices stay connected, but their publishes and
location points are refused with `data_limit_reached`, deliveries to their subscriptions are
withheld (the device told once), function calls and variable reads get `DATA_LIMIT_REACHED`;
once the pause ends, everything works again (docs/device-protocol.md, "Data operations and
pauses")."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from core import clock
from fleet import events, rpc
from models.devices import Event, LocationPoint
from tests.support.accounts import access_token
from tests.support.gateway import answer_next, exchange, make_device, publish, session
from tests.support.graphql import graphql, run_mutation
from tests.support.metering import counted, pause
from tests.support.polling import receive
from tests.support.servers import Clock
from tests.support.worlds import CallingTeam

READ = """query($id: String!) { device(deviceId: $id) {
    variable(name: "temperature") { value userErrors { field message code } } } }"""


def message(until: str) -> str:
    return ("The organization's free data operations for this month are used up: its devices' "
            "publishes, location points, deliveries, function calls and variable reads are "
            f"paused until {until}, when they resume by themselves.")


def ack(frame_id: int) -> dict[str, Any]:
    return {"type": "ack", "replyTo": frame_id}


def location(frame_id: int) -> dict[str, Any]:
    return {"type": "location", "id": frame_id, "messageId": f"l{frame_id}",
            "points": [{"lat": 1.5, "lon": 2.5}]}


async def test_a_paused_organizations_devices_are_refused_then_resume(
    url: str, http: httpx.AsyncClient, calling_team: CallingTeam, frozen_clock: Clock
) -> None:
    principals, product = calling_team
    owner = principals["OWNER"]
    frozen_clock.current = frozen_clock.current.replace(microsecond=0)
    until = clock.now() + timedelta(minutes=5)
    until_text = until.isoformat().replace("+00:00", "Z")
    token = await access_token("support@callers.example")
    device_id, secret = await make_device(product)
    listener_id, listener_secret = await make_device(product)
    async with (
        session(url, device_id, secret, product.id) as (ws, _),
        session(url, listener_id, listener_secret, product.id) as (listener, _),
    ):
        assert await exchange(listener, {"type": "subscribe", "id": 3, "prefix": "door/"}
                              ) == ack(3)
        assert await exchange(ws, publish(3, name="door/before")) == ack(3)
        before = await receive(listener)
        assert before["name"] == "door/before"
        await listener.send(f'{{"type":"ack","replyTo":{before["id"]}}}')
        await pause(product, until)

        refusal = {"type": "error", "code": "data_limit_reached", "message": message(until_text),
                   "until": until_text}
        assert await exchange(ws, publish(4, name="door/during")) == {**refusal, "replyTo": 4}
        assert await exchange(ws, location(5)) == {**refusal, "replyTo": 5}
        # Connected all the same: heartbeats and subscribing work.
        assert await exchange(ws, {"type": "ping", "id": 6}) == {"type": "pong", "replyTo": 6}
        assert await exchange(ws, {"type": "subscribe", "id": 7, "prefix": "x"}) == ack(7)

        # A server may still publish; its deliveries are withheld, the device told once.
        await events.publish_from_server(owner, product.id, name="door/one", data="1",
                                         private=False)
        assert await receive(listener) == refusal
        await events.publish_from_server(owner, product.id, name="door/two", data="2",
                                         private=False)
        # The pause is extended: its new end is told, and nothing came between (the feed
        # handles its events in order, so door/two was withheld without a word).
        longer = until + timedelta(minutes=5)
        longer_text = longer.isoformat().replace("+00:00", "Z")
        await pause(product, longer)
        await events.publish_from_server(owner, product.id, name="door/three", data="3",
                                         private=False)
        assert await receive(listener) == {**refusal, "message": message(longer_text),
                                           "until": longer_text}

        # Calls and reads are refused before the device is asked.
        called = await run_mutation(
            http, "callFunction", "CallFunctionInput",
            {"deviceId": device_id, "name": "setTemp", "argument": "22"}, "returnValue",
            token=token)
        assert called == {"returnValue": None, "userErrors": [{
            "field": None, "code": "DATA_LIMIT_REACHED", "message": message(longer_text)}]}
        read = await graphql(http, READ, {"id": device_id}, token=token)
        assert read["data"]["device"]["variable"] == {"value": None, "userErrors": [{
            "field": None, "code": "DATA_LIMIT_REACHED", "message": message(longer_text)}]}

        # The pause ends: everything works again, and what was withheld stays so.
        frozen_clock.current = longer
        assert await exchange(ws, publish(8, name="door/after")) == ack(8)
        after = await receive(listener)
        assert (after["type"], after["name"]) == ("event", "door/after")
        await listener.send(f'{{"type":"ack","replyTo":{after["id"]}}}')
        assert await exchange(ws, location(9)) == ack(9)
        call = asyncio.create_task(rpc.call_function(principals["SUPPORT"], device_id,
                                                     "setTemp", "22"))
        await answer_next(ws, value=1)
        assert await call == 1

    # Nothing already stored was lost; nothing refused was stored.
    assert await Event.filter(device_id=device_id).exclude(name="spark/status").order_by(
        "id").values_list("name", flat=True) == ["door/before", "door/after"]
    assert await LocationPoint.filter(device_id=device_id).values_list(
        "message_id", flat=True) == ["l9"]
    assert await counted() == sorted([
        ("DEVICE_PUBLISH", device_id, 2), ("LOCATION_POINT", device_id, 1),
        ("FUNCTION_CALL", device_id, 1), ("SUBSCRIPTION_DELIVERY", listener_id, 2),
    ])


async def test_a_paused_device_is_acknowledged_what_was_stored_and_refused_what_is_new(
    url: str, calling_team: CallingTeam, frozen_clock: Clock
) -> None:
    _, product = calling_team
    frozen_clock.current = frozen_clock.current.replace(microsecond=0)
    until = clock.now() + timedelta(minutes=5)
    until_text = until.isoformat().replace("+00:00", "Z")
    refusal = {"type": "error", "code": "data_limit_reached", "message": message(until_text),
               "until": until_text}
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        assert await exchange(ws, publish(3)) == ack(3)
        assert await exchange(ws, location(4)) == ack(4)
        await pause(product, until)
        # Sent again on the same connection (its ack was lost): acknowledged.
        assert await exchange(ws, publish(3)) == ack(3)
        assert await exchange(ws, location(4)) == ack(4)
    # And on the next connection, which never acknowledged them: acknowledged all the same,
    # while what is new is refused.
    async with session(url, device_id, secret, product.id) as (ws, _):
        assert await exchange(ws, {**publish(5), "messageId": "m3"}) == ack(5)
        assert await exchange(ws, {**location(6), "messageId": "l4"}) == ack(6)
        assert await exchange(ws, publish(7)) == {**refusal, "replyTo": 7}
        assert await exchange(ws, location(8)) == {**refusal, "replyTo": 8}
    assert await Event.filter(device_id=device_id).exclude(name="spark/status").values_list(
        "message_id", flat=True) == ["m3"]
    assert await LocationPoint.filter(device_id=device_id).values_list(
        "message_id", flat=True) == ["l4"]
    assert await counted() == [("DEVICE_PUBLISH", device_id, 1),
                               ("LOCATION_POINT", device_id, 1)]
