"""Data operations counted end to end: devices connected to the real server publish, receive
deliveries, send location points and answer calls, and the live app's ledger counts exactly
what the rules say (docs/device-protocol.md, "Data operations and pauses")."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from core import metering
from core.errors import DomainError
from core.metering import Metered
from core.settings import get_settings
from fleet import events, rpc
from models.products import Product
from tests.support.gateway import answer_next, exchange, make_device, publish, session
from tests.support.metering import counted
from tests.support.polling import receive
from tests.support.timers import ManualTimer
from tests.support.worlds import CallingTeam


@pytest.fixture
def roomy_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections opened from now on may publish 100 frames at once."""
    monkeypatch.setattr(get_settings(), "device_event_burst", 100)


def ack(frame_id: int) -> dict[str, Any]:
    return {"type": "ack", "replyTo": frame_id}


def location(frame_id: int, points: int, message_id: str | None = None) -> dict[str, Any]:
    return {"type": "location", "id": frame_id, "messageId": message_id or f"l{frame_id}",
            "points": [{"lat": 48.85, "lon": 2.29 + n / 1000} for n in range(points)]}


async def test_publishes_cost_a_kilobyte_each_started_and_refusals_nothing(
    url: str, calling_team: CallingTeam, roomy_limits: None
) -> None:
    _, product = calling_team
    await Product.filter(id=product.id).update(event_data_limit=16 * 1024)
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        for frame_id, size in [(3, 1), (4, 1024), (5, 1025), (6, 16384), (7, 0)]:
            assert await exchange(ws, publish(frame_id, data="x" * size)) == ack(frame_id)
        # The same message ID again, on this connection: acknowledged, stored and counted once.
        assert await exchange(ws, {**publish(8, data="x" * 1025), "messageId": "m5"}) == ack(8)
        # Devices may not publish the cloud's names: refused, so free.
        for frame_id, name in [(9, "spark/device/diag"), (10, "particle/device/updates"),
                               (11, "SPARK"), (12, "Particle")]:
            refused = await exchange(ws, publish(frame_id, name=name, data="x" * 3000))
            assert (refused["code"], refused["replyTo"]) == ("reserved_name", frame_id)
        assert (await exchange(ws, publish(13, data="x" * 16385)))["code"] == "data_too_large"
    # And on the next connection, retransmitting what the last one stored.
    async with session(url, device_id, secret, product.id) as (ws, _):
        assert await exchange(ws, {**publish(3, data="x" * 16384), "messageId": "m6"}) == ack(3)
    assert await counted() == [("DEVICE_PUBLISH", device_id, 1 + 1 + 2 + 16 + 1)]


async def test_every_delivery_sent_is_counted_a_retransmission_included(
    url: str, calling_team: CallingTeam, roomy_limits: None, timer: ManualTimer
) -> None:
    principals, product = calling_team
    await Product.filter(id=product.id).update(event_data_limit=2048)
    publisher, publisher_secret = await make_device(product)
    visitor, visitor_secret = await make_device(product)
    attentive, attentive_secret = await make_device(product)
    deaf, deaf_secret = await make_device(product)
    async with (
        session(url, publisher, publisher_secret, product.id) as (device, _),
        session(url, attentive, attentive_secret, product.id) as (listener, _),
        session(url, deaf, deaf_secret, product.id) as (slow, _),
    ):
        for ws in (listener, slow):
            assert await exchange(ws, {"type": "subscribe", "id": 3, "prefix": "door/"}) == ack(3)
        assert await exchange(device, publish(3, name="door/open", data="x" * 1300)) == ack(3)
        first = await receive(listener)
        assert (first["type"], first["name"]) == ("event", "door/open")
        await listener.send(f'{{"type":"ack","replyTo":{first["id"]}}}')
        # Frames are handled in order: the pong comes once the ack was.
        assert await exchange(listener, {"type": "ping", "id": 5}) == {"type": "pong",
                                                                        "replyTo": 5}
        sent = await receive(slow)
        timer.advance(get_settings().device_delivery_ack_timeout)
        assert await receive(slow) == sent  # not acknowledged: sent again
        timer.advance(get_settings().device_delivery_ack_timeout)  # and then dropped
        # A server's publish costs nothing itself; its deliveries cost as a publish would.
        await events.publish_from_server(principals["OWNER"], product.id, name="door/bell",
                                         data="ding", private=False)
        for ws in (listener, slow):
            delivered = await receive(ws)
            assert (delivered["name"], delivered["deviceId"]) == ("door/bell", None)
            await ws.send(f'{{"type":"ack","replyTo":{delivered["id"]}}}')
        # Events under the cloud's names are delivered for free (presence, here).
        assert await exchange(listener, {"type": "subscribe", "id": 4, "prefix": "spark/"}
                              ) == ack(4)
        async with session(url, visitor, visitor_secret, product.id):
            presence = await receive(listener)
            assert (presence["name"], presence["data"]) == ("spark/status", "online")
            await listener.send(f'{{"type":"ack","replyTo":{presence["id"]}}}')
        presence = await receive(listener)
        assert (presence["name"], presence["data"]) == ("spark/status", "offline")
    assert await counted() == sorted([
        ("DEVICE_PUBLISH", publisher, 2),
        ("SUBSCRIPTION_DELIVERY", attentive, 2 + 1),
        ("SUBSCRIPTION_DELIVERY", deaf, 2 + 2 + 1),
    ])


async def test_each_stored_location_point_costs_one(
    url: str, calling_team: CallingTeam, roomy_limits: None
) -> None:
    _, product = calling_team
    device_id, secret = await make_device(product)
    loose_id, loose_secret = await make_device()
    async with session(url, device_id, secret, product.id) as (ws, _):
        assert await exchange(ws, location(3, 3)) == ack(3)
        assert await exchange(ws, location(4, 100)) == ack(4)
        assert await exchange(ws, location(5, 3, message_id="l3")) == ack(5)  # sent again
        refused = await exchange(ws, {**location(6, 2), "points": [{"lat": 91, "lon": 0}]})
        assert refused["code"] == "invalid_location"
    async with session(url, device_id, secret, product.id) as (ws, _):
        assert await exchange(ws, location(3, 100, message_id="l4")) == ack(3)  # and again
        assert await exchange(ws, location(4, 1, message_id="l7")) == ack(4)
    async with session(url, loose_id, loose_secret, None) as (ws, _):
        assert await exchange(ws, location(3, 5)) == ack(3)  # in no product: never counted
    assert await counted() == [("LOCATION_POINT", device_id, 3 + 100 + 1)]


async def test_calls_and_reads_cost_one_when_the_device_answers(
    url: str, calling_team: CallingTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    principals, product = calling_team
    support = principals["SUPPORT"]
    device_id, secret = await make_device(product)
    offline_id, _ = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        call = asyncio.create_task(rpc.call_function(support, device_id, "setTemp", "22"))
        assert (await answer_next(ws, value=1))["type"] == "call"
        assert await call == 1
        read = asyncio.create_task(rpc.read_variable(support, device_id, "temperature"))
        assert (await answer_next(ws, value=21.5))["type"] == "get"
        assert await read == 21.5
        # A failure the device reports itself: it was asked, so it counts.
        call = asyncio.create_task(rpc.call_function(support, device_id, "reboot", ""))
        await answer_next(ws, error={"code": "busy", "message": "Rebooting already."})
        with pytest.raises(DomainError) as failed:
            await call
        assert (failed.value.code, failed.value.message) == ("DEVICE_FAILED",
                                                            "Rebooting already.")
        read = asyncio.create_task(rpc.read_variable(support, device_id, "temperature"))
        await answer_next(ws, error={"code": "not_found", "message": "gone"})
        with pytest.raises(DomainError) as failed:
            await read
        assert failed.value.code == "VARIABLE_NOT_FOUND"
        # Never asked: a name the device did not announce.
        with pytest.raises(DomainError) as failed:
            await rpc.call_function(support, device_id, "selfDestruct", "")
        assert failed.value.code == "FUNCTION_NOT_FOUND"
        # Sent, never answered: it may have run on the device, yet is not counted.
        monkeypatch.setattr(rpc.router(), "timeout", 0.2)
        call = asyncio.create_task(rpc.call_function(support, device_id, "setTemp", "1"))
        assert (await receive(ws))["type"] == "call"
        with pytest.raises(DomainError) as failed:
            await call
        assert failed.value.code == "TIMED_OUT"
    with pytest.raises(DomainError) as failed:
        await rpc.call_function(support, offline_id, "setTemp", "22")
    assert failed.value.code == "DEVICE_OFFLINE"
    assert await counted() == [("FUNCTION_CALL", device_id, 2), ("VARIABLE_READ", device_id, 2)]


class DownLedger:
    """A meter whose database is down: every count fails."""

    async def record(self, usages: Sequence[Metered], connection: Any = None) -> None:
        raise RuntimeError("the database is down")

    def paused_until(self, product_id: int | None) -> datetime | None:
        return None

    async def close(self) -> None:
        return None


async def test_an_answer_that_cannot_be_counted_is_not_returned(
    url: str, calling_team: CallingTeam
) -> None:
    principals, product = calling_team
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        with metering.installed(DownLedger()):
            call = asyncio.create_task(
                rpc.call_function(principals["SUPPORT"], device_id, "setTemp", "22"))
            await answer_next(ws, value=1)
            with pytest.raises(DomainError) as failed:
                await call
    assert (failed.value.code, failed.value.message) == (
        "UNAVAILABLE", "The device answered, but the cloud could not record it (storage "
        "failed), so its answer is not returned.")
