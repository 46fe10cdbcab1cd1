"""Device subscriptions, end to end: devices connect to the real server over WebSocket,
subscribe to event-name prefixes, and receive their product's events as `event` frames that
they acknowledge (docs/device-protocol.md, "Subscriptions")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from core.settings import get_settings
from fleet import products
from models.devices import Device, Event
from models.products import Product
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.gateway import exchange, make_device, publish, session
from tests.support.graphql import gid, run_mutation
from tests.support.polling import receive
from tests.support.servers import Clock
from tests.support.timers import ManualTimer


@dataclass
class World:
    team: Team
    p: Product
    q: Product

    async def token(self) -> str:
        return await access_token(self.team.email("DEVELOPER"))


@pytest.fixture
async def world() -> World:
    team = await organization_with_team(roles=("OWNER", "DEVELOPER"))

    async def make(name: str) -> Product:
        return await products.create_product(
            team.principals["OWNER"], team.organization.id, name=name, slug=None,
            description="", platform="Photon", customer_auth="SIMPLE",
        )

    return World(team, await make("Thermostat"), await make("Sprinkler"))


def subscribe(frame_id: int, prefix: Any, kind: str = "subscribe") -> dict[str, Any]:
    return {"type": kind, "id": frame_id, "prefix": prefix}


def ack(frame_id: int) -> dict[str, Any]:
    return {"type": "ack", "replyTo": frame_id}


async def stored(device_id: str | None, name: str) -> Event:
    return await Event.get(device_id=device_id, name=name)


def event_frame(event: Event, delivery_id: int) -> dict[str, Any]:
    return {
        "type": "event", "id": delivery_id, "name": event.name, "data": event.data,
        "publishedAt": event.published_at.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "deviceId": event.device_id, "private": event.private,
    }


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    frame = await receive(ws)
    assert frame["type"] == "event", frame
    return frame


async def publish_event(http: httpx.AsyncClient, token: str, product: Product, name: str,
                        data: str) -> None:
    result = await run_mutation(
        http, "publishEvent", "PublishEventInput",
        {"productId": gid("Product", product.id), "name": name, "data": data, "private": False},
        "event { id }", token=token)
    assert result["userErrors"] == []


# --- subscribe and unsubscribe -------------------------------------------------------------


async def test_subscriptions_are_answered_and_at_most_four(url: str, world: World) -> None:
    device_id, secret = await make_device(world.p)
    async with session(url, device_id, secret, world.p.id) as (ws, _):
        for frame_id, prefix in enumerate(["temp", "door/", "", "a.b-c_d/"], start=3):
            assert await exchange(ws, subscribe(frame_id, prefix)) == ack(frame_id)
        # The same prefix again holds no new place.
        assert await exchange(ws, subscribe(7, "temp")) == ack(7)
        assert await exchange(ws, subscribe(8, "fifth")) == {
            "type": "error", "replyTo": 8, "code": "too_many_subscriptions",
            "message": "A device holds at most 4 subscriptions; unsubscribe first."}
        assert await exchange(ws, subscribe(9, "door/", "unsubscribe")) == ack(9)
        # Unsubscribing from a prefix not held is answered all the same.
        assert await exchange(ws, subscribe(10, "never", "unsubscribe")) == ack(10)
        assert await exchange(ws, subscribe(11, "fifth")) == ack(11)
        assert await exchange(ws, subscribe(12, "sixth")) == {
            "type": "error", "replyTo": 12, "code": "too_many_subscriptions",
            "message": "A device holds at most 4 subscriptions; unsubscribe first."}


@pytest.mark.parametrize(
    ("prefix", "code", "message"),
    [
        ("a" * 65, "invalid_name", "A prefix is at most 64 letters, digits, '_', '-', '/' or '.'."),
        ("temp erature", "invalid_name",
         "A prefix is at most 64 letters, digits, '_', '-', '/' or '.'."),
        ("é", "invalid_name", "A prefix is at most 64 letters, digits, '_', '-', '/' or '.'."),
        (None, "bad_frame", "`prefix` is required: a string."),
        (7, "bad_frame", "`prefix` is required: a string."),
        (["temp"], "bad_frame", "`prefix` is required: a string."),
    ],
)
async def test_a_bad_prefix_is_refused(
    url: str, world: World, prefix: Any, code: str, message: str
) -> None:
    device_id, secret = await make_device(world.p)
    async with session(url, device_id, secret, world.p.id) as (ws, _):
        for kind in ("subscribe", "unsubscribe"):
            assert await exchange(ws, subscribe(3, prefix, kind)) == {
                "type": "error", "replyTo": 3, "code": code, "message": message}
        # Refused subscriptions hold no place.
        for frame_id, good in enumerate(["a", "b", "c", "d"], start=4):
            assert await exchange(ws, subscribe(frame_id, good)) == ack(frame_id)


# --- deliveries ----------------------------------------------------------------------------


async def test_a_device_receives_its_products_events_but_never_its_own(
    url: str, http: httpx.AsyncClient, world: World
) -> None:
    listener, publisher = await make_device(world.p), await make_device(world.p)
    elsewhere, elsewhere_too = await make_device(world.q), await make_device(world.q)
    token = await world.token()
    async with (
        session(url, *listener, world.p.id) as (ws, _),
        session(url, *publisher, world.p.id) as (other, _),
        session(url, *elsewhere, world.q.id) as (stranger, _),
        session(url, *elsewhere_too, world.q.id) as (neighbour, _),
    ):
        assert await exchange(ws, subscribe(3, "temp")) == ack(3)
        assert await exchange(ws, subscribe(4, "door/")) == ack(4)
        assert await exchange(stranger, subscribe(3, "")) == ack(3)
        # Its own event, another product's, and a name no prefix matches: none delivered.
        assert await exchange(ws, publish(5, "temp/own")) == ack(5)
        assert await exchange(stranger, publish(4, "temp/q")) == ack(4)
        assert await exchange(other, publish(3, "humidity")) == ack(3)
        # A private event of another device of the product, then one of the product's server.
        assert await exchange(other, publish(4, "temperature", "21.5")) == ack(4)
        await publish_event(http, token, world.p, "door/open", "ajar é")

        first = await next_event(ws)
        assert first == event_frame(await stored(publisher[0], "temperature"), first["id"])
        await ws.send(json.dumps(ack(first["id"])))
        second = await next_event(ws)
        assert second == event_frame(await stored(None, "door/open"), second["id"])
        assert second["id"] != first["id"]
        assert second["deviceId"] is None and first["private"] is True
        await ws.send(json.dumps(ack(second["id"])))

        # The stranger, subscribed to every name, got none of these: its first delivery is
        # the event of its own product's other device.
        assert await exchange(neighbour, publish(3, "q/marker")) == ack(3)
        got = await next_event(stranger)
        assert got == event_frame(await stored(elsewhere_too[0], "q/marker"), got["id"])

        # Unsubscribed: no more deliveries under that prefix.
        assert await exchange(ws, subscribe(7, "temp", "unsubscribe")) == ack(7)
        assert await exchange(other, publish(6, "temperature", "22")) == ack(6)
        assert await exchange(other, publish(7, "door/shut")) == ack(7)
        third = await next_event(ws)
        assert third == event_frame(await stored(publisher[0], "door/shut"), third["id"])


async def test_an_unacknowledged_delivery_is_sent_once_more_then_dropped(
    url: str, world: World, timer: ManualTimer
) -> None:
    timeout = get_settings().device_delivery_ack_timeout
    listener, publisher = await make_device(world.p), await make_device(world.p)
    async with (
        session(url, *listener, world.p.id) as (ws, _),
        session(url, *publisher, world.p.id) as (other, _),
    ):
        assert await exchange(ws, subscribe(3, "")) == ack(3)
        assert await exchange(other, publish(3, "a")) == ack(3)
        a = await next_event(ws)
        await ws.send(json.dumps(ack(a["id"])))
        # Frames are handled in order: the pong says the ack was.
        assert await exchange(ws, {"type": "ping", "id": 4}) == {"type": "pong", "replyTo": 4}
        assert await exchange(other, publish(4, "b")) == ack(4)
        b = await next_event(ws)
        # Not acknowledged: the same frame again after the timeout; `a`, acknowledged, never.
        timer.advance(timeout)
        assert await next_event(ws) == b
        # Sent twice, never acknowledged: after as long again it is dropped, so the next frame
        # is `c`, and an ack of the dropped `b` is ignored.
        timer.advance(timeout)
        assert await exchange(other, publish(5, "c")) == ack(5)
        c = await next_event(ws)
        assert c == event_frame(await stored(publisher[0], "c"), c["id"])
        await ws.send(json.dumps(ack(b["id"])))
        await ws.send(json.dumps(ack(c["id"])))
        assert await exchange(ws, {"type": "ping", "id": 5}) == {"type": "pong", "replyTo": 5}
        # `c`, acknowledged, is not sent again when its time comes: the next frame is `d`.
        timer.advance(timeout)
        assert await exchange(other, publish(6, "d")) == ack(6)
        d = await next_event(ws)
        assert d == event_frame(await stored(publisher[0], "d"), d["id"])


async def test_subscriptions_end_with_the_connection(url: str, world: World) -> None:
    listener, publisher = await make_device(world.p), await make_device(world.p)
    async with session(url, *listener, world.p.id) as (ws, _):
        assert await exchange(ws, subscribe(3, "temp")) == ack(3)
    async with (
        session(url, *listener, world.p.id) as (ws, _),
        session(url, *publisher, world.p.id) as (other, _),
    ):
        assert await exchange(other, publish(3, "temp/before")) == ack(3)
        assert await exchange(ws, subscribe(3, "temp")) == ack(3)
        assert await exchange(other, publish(4, "temp/after")) == ack(4)
        # The first delivery is the event published once it subscribed again.
        frame = await next_event(ws)
        assert frame == event_frame(await stored(publisher[0], "temp/after"), frame["id"])


async def test_a_quarantined_device_receives_nothing_until_approved(
    url: str, world: World, frozen_clock: Clock
) -> None:
    listener, _ = device_id, secret = await make_device(world.p, quarantine="QUARANTINED")
    publisher = await make_device(world.p)
    async with (
        session(url, device_id, secret, world.p.id) as (ws, welcome),
        session(url, *publisher, world.p.id) as (other, _),
    ):
        assert welcome["quarantined"] is True
        assert await exchange(ws, subscribe(3, "temp")) == ack(3)
        assert await exchange(other, publish(3, "temp/withheld")) == ack(3)
        await Device.filter(id=listener).update(quarantine="NONE")
        frozen_clock.advance(seconds=5)  # the feed reads the device's product again
        assert await exchange(other, publish(4, "temp/approved")) == ack(4)
        frame = await next_event(ws)
        assert frame == event_frame(await stored(publisher[0], "temp/approved"), frame["id"])


async def test_a_device_out_of_its_product_neither_receives_nor_is_received(
    url: str, world: World, frozen_clock: Clock
) -> None:
    listener, publisher = await make_device(world.p), await make_device(world.p)
    async with (
        session(url, *listener, world.p.id) as (ws, _),
        session(url, *publisher, world.p.id) as (other, _),
    ):
        assert await exchange(ws, subscribe(3, "")) == ack(3)
        assert await exchange(other, subscribe(3, "")) == ack(3)
        await Device.filter(id=listener[0]).update(product_id=None)
        frozen_clock.advance(seconds=5)  # both connections read the device's product again
        assert await exchange(other, publish(4, "temp/hidden")) == ack(4)
        assert await exchange(ws, publish(4, "temp/nowhere")) == ack(4)
        assert (await stored(listener[0], "temp/nowhere")).product_id is None
        # Back in the product: its subscriptions follow once it subscribes again, and its
        # events reach the product's devices again.
        await Device.filter(id=listener[0]).update(product_id=world.p.id)
        frozen_clock.advance(seconds=5)
        assert await exchange(ws, subscribe(5, "")) == ack(5)
        assert await exchange(other, publish(5, "temp/back")) == ack(5)
        frame = await next_event(ws)
        assert frame == event_frame(await stored(publisher[0], "temp/back"), frame["id"])
        assert await exchange(ws, publish(6, "temp/home")) == ack(6)
        frame = await next_event(other)
        assert frame == event_frame(await stored(listener[0], "temp/home"), frame["id"])
