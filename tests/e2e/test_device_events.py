"""Devices publishing events and answering function calls and variable reads, end to end: a
device connects to the real server over WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.errors import DomainError, PermissionDenied, TimedOut
from fleet import rpc
from models.devices import Device, Event
from models.products import Product
from tests.support.gateway import answer_next, exchange, make_device, publish, session
from tests.support.metering import counted, operations
from tests.support.polling import eventually, receive
from tests.support.servers import Clock
from tests.support.worlds import CallingTeam, Products


async def device_events(device_id: str) -> list[tuple[str, str, int | None, bool, str]]:
    return list(
        await Event.filter(device_id=device_id).exclude(name="spark/status").order_by("id")
        .values_list("name", "data", "product_id", "private", "message_id")
    )


# --- Publishing -----------------------------------------------------------------------------


async def test_a_publish_is_acknowledged_once_stored(url: str, two_products: Products) -> None:
    await Product.filter(id=two_products.p.id).update(event_data_limit=2048)
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, publish(3, data="x" * 1300, private=False)) == {
            "type": "ack", "replyTo": 3}
        # Acknowledged means stored: no waiting needed.
        assert await device_events(device_id) == [
            ("temp", "x" * 1300, two_products.p.id, False, "m3")]
        assert await operations(device_id) == 2
        assert await exchange(ws, publish(4, name="a/b.c-d_e", data="")) == {
            "type": "ack", "replyTo": 4}
    assert (await device_events(device_id))[1] == (
        "a/b.c-d_e", "", two_products.p.id, True, "m4")
    assert await operations(device_id) == 3


async def test_a_retransmission_is_stored_once(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, publish(3)) == {"type": "ack", "replyTo": 3}
    # The ack was lost, say: the device sends the event again on its next connection.
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        again = {**publish(9), "messageId": "m3"}
        assert await exchange(ws, again) == {"type": "ack", "replyTo": 9}
    assert await device_events(device_id) == [("temp", "21.5", two_products.p.id, True, "m3")]
    assert await operations(device_id) == 1


async def test_the_same_message_id_from_two_devices_is_two_events(
    url: str, two_products: Products
) -> None:
    first, second = await make_device(two_products.p), await make_device(two_products.p)
    for device_id, secret in (first, second):
        async with session(url, device_id, secret, two_products.p.id) as (ws, _):
            assert await exchange(ws, publish(3)) == {"type": "ack", "replyTo": 3}
    assert await Event.filter(message_id="m3").count() == 2


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"name": "spark/mine"}, "reserved_name",
         "Event names starting with 'spark' or 'particle' are reserved for the cloud."),
        ({"name": "SPARK"}, "reserved_name",
         "Event names starting with 'spark' or 'particle' are reserved for the cloud."),
        ({"name": "particle/device/name"}, "reserved_name",
         "Event names starting with 'spark' or 'particle' are reserved for the cloud."),
        ({"name": "PartiCLE"}, "reserved_name",
         "Event names starting with 'spark' or 'particle' are reserved for the cloud."),
        ({"name": ""}, "invalid_name",
         "An event name is 1 to 64 letters, digits, '_', '-', '/' or '.'."),
        ({"name": "a" * 65}, "invalid_name",
         "An event name is 1 to 64 letters, digits, '_', '-', '/' or '.'."),
        ({"name": "temp c"}, "invalid_name",
         "An event name is 1 to 64 letters, digits, '_', '-', '/' or '.'."),
        ({"name": "temp\n"}, "invalid_name",
         "An event name is 1 to 64 letters, digits, '_', '-', '/' or '.'."),
        ({"name": 7}, "bad_frame", "`name` is required: a string."),
        ({"data": "é" * 513}, "data_too_large",
         "The data is 1026 bytes; this product's events carry at most 1024."),
        ({"data": {"t": 1}}, "bad_frame", "`data` must be a string."),
        ({"data": "a\x00b"}, "bad_frame",
         "Strings must be Unicode text without NUL characters or unpaired surrogates."),
        ({"data": "\ud800"}, "bad_frame",
         "Strings must be Unicode text without NUL characters or unpaired surrogates."),
        ({"private": "yes"}, "bad_frame", "`private` must be true or false."),
        ({"messageId": None}, "bad_frame",
         "`messageId` is required: 1 to 64 letters, digits, '_', '-', '.' or ':', the same "
         "when the event is sent again."),
        ({"messageId": "m3\n"}, "bad_frame",
         "`messageId` is required: 1 to 64 letters, digits, '_', '-', '.' or ':', the same "
         "when the event is sent again."),
        ({"messageId": "a b"}, "bad_frame",
         "`messageId` is required: 1 to 64 letters, digits, '_', '-', '.' or ':', the same "
         "when the event is sent again."),
    ],
)
async def test_a_bad_publish_is_refused_and_not_stored(
    url: str, two_products: Products, change: dict[str, Any], code: str, message: str
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        frame = {**publish(3), **change}
        assert await exchange(ws, frame) == {
            "type": "error", "replyTo": 3, "code": code, "message": message}
        # The connection stays open and usable.
        assert await exchange(ws, publish(4)) == {"type": "ack", "replyTo": 4}
    assert [row[4] for row in await device_events(device_id)] == ["m4"]


async def test_data_up_to_the_products_limit_is_accepted(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, publish(3, data="é" * 512)) == {"type": "ack", "replyTo": 3}
        assert (await exchange(ws, publish(4, data="x" * 2000)))["code"] == "data_too_large"
        # The team raises the limit: the connection sees it within seconds.
        await Product.filter(id=two_products.p.id).update(event_data_limit=16 * 1024)
        frozen_clock.advance(seconds=5)
        assert await exchange(ws, publish(5, data="x" * 2000)) == {"type": "ack", "replyTo": 5}
    assert len(await device_events(device_id)) == 2
    assert await operations(device_id) == 1 + 2


async def test_data_at_the_largest_limit_fits_in_a_frame(url: str, two_products: Products) -> None:
    await Product.filter(id=two_products.p.id).update(event_data_limit=16 * 1024)
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        # Every character escaped as \u0001 in JSON: about 96 KiB of frame.
        assert await exchange(ws, publish(3, data="\x01" * 16384)) == {
            "type": "ack", "replyTo": 3}
        assert (await exchange(ws, publish(4, data="x" * 16385)))["code"] == "data_too_large"
    assert len(await device_events(device_id)) == 1
    assert await operations(device_id) == 16


async def rate_limited_events(device_id: str) -> int:
    return (await Device.get(id=device_id)).rate_limited_events


async def test_the_fifth_event_of_a_burst_is_rate_limited(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        for frame_id in range(1, 5):
            assert await exchange(ws, publish(10 + frame_id)) == {
                "type": "ack", "replyTo": 10 + frame_id}
        assert await exchange(ws, publish(15)) == {
            "type": "error", "replyTo": 15, "code": "rate_limited",
            "message": "Too many events; this one was not stored. Publish about once a "
                       "second, in bursts of at most 4."}
        assert await rate_limited_events(device_id) == 1  # counted before the device is told
        frozen_clock.advance(seconds=1)  # one more token
        assert await exchange(ws, publish(16)) == {"type": "ack", "replyTo": 16}
        assert (await exchange(ws, publish(17)))["code"] == "rate_limited"
        assert await rate_limited_events(device_id) == 2
    assert [row[4] for row in await device_events(device_id)] == [
        "m11", "m12", "m13", "m14", "m16"]


async def test_refusals_in_quick_succession_are_counted_within_a_second(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    """A connection writes its refusals at once, at most once a second; the ones in between
    are written within a second by the flusher, or when the connection ends."""
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        for frame_id in range(1, 5):
            assert (await exchange(ws, publish(frame_id)))["type"] == "ack"
        for frame_id in range(5, 8):
            assert (await exchange(ws, publish(frame_id)))["code"] == "rate_limited"
        assert await rate_limited_events(device_id) >= 1
        started = asyncio.get_running_loop().time()

        async def all_counted() -> bool:
            return await rate_limited_events(device_id) == 3

        await eventually(all_counted, within=5)
        assert asyncio.get_running_loop().time() - started < 2  # the flusher's second, and slack
        assert (await exchange(ws, publish(8)))["code"] == "rate_limited"
    assert await rate_limited_events(device_id) == 4  # written as the connection ended


async def test_retransmissions_spend_no_rate_limit_tokens(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        for frame_id in range(1, 5):
            assert await exchange(ws, publish(frame_id)) == {"type": "ack", "replyTo": frame_id}
        frozen_clock.advance(seconds=1)  # one token
        for frame_id in range(1, 5):  # the acks were lost, say: the same four again
            again = {**publish(10 + frame_id), "messageId": f"m{frame_id}"}
            assert await exchange(ws, again) == {"type": "ack", "replyTo": 10 + frame_id}
        assert await exchange(ws, publish(20)) == {"type": "ack", "replyTo": 20}
    # And on the next connection, where the cloud looks the message IDs up when storing.
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        for frame_id in range(1, 5):
            again = {**publish(30 + frame_id), "messageId": f"m{frame_id}"}
            assert await exchange(ws, again) == {"type": "ack", "replyTo": 30 + frame_id}
        for frame_id in range(40, 44):
            assert await exchange(ws, publish(frame_id)) == {"type": "ack", "replyTo": frame_id}
    assert await rate_limited_events(device_id) == 0
    assert [row[4] for row in await device_events(device_id)] == [
        "m1", "m2", "m3", "m4", "m20", "m40", "m41", "m42", "m43"]


async def test_last_heard_is_the_last_frames_time_and_never_moves_back(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        welcomed = (await Device.get(id=device_id)).last_heard_at
        frozen_clock.advance(seconds=1)
        assert (await exchange(ws, {"type": "ping", "id": 5}))["type"] == "pong"
        pinged = frozen_clock.current
        frozen_clock.advance(seconds=3)  # silence: the flusher writes after it

        async def flushed() -> bool:
            return (await Device.get(id=device_id)).last_heard_at != welcomed

        await eventually(flushed, within=15)
        assert (await Device.get(id=device_id)).last_heard_at == pinged
    # The end of the connection stores the same time: lastHeardAt does not jump.
    assert (await Device.get(id=device_id)).last_heard_at == pinged


async def test_a_denied_devices_events_belong_to_no_product(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device()
    async with session(url, device_id, secret, None) as (ws, _):
        assert await exchange(ws, publish(3)) == {"type": "ack", "replyTo": 3}
    assert await device_events(device_id) == [("temp", "21.5", None, True, "m3")]
    assert await counted(device_id) == []  # a device in no product is never metered


# --- Function calls and variable reads ----------------------------------------------------------


async def test_a_function_call_reaches_the_device_and_returns_its_value(
    url: str, calling_team: CallingTeam
) -> None:
    principals, product = calling_team
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        with pytest.raises(PermissionDenied):
            await rpc.call_function(principals["VIEWER"], device_id, "setTemp", "22.5")
        call = asyncio.create_task(
            rpc.call_function(principals["SUPPORT"], device_id, "setTemp", "22.5")
        )
        request = await answer_next(ws, value=-7)
        assert request == {"type": "call", "id": request["id"], "name": "setTemp",
                           "argument": "22.5"}
        assert await call == -7

        read = asyncio.create_task(
            rpc.read_variable(principals["SUPPORT"], device_id, "temperature")
        )
        request = await answer_next(ws, value=21.25)
        assert request == {"type": "get", "id": request["id"], "name": "temperature"}
        assert await read == 21.25


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ({"error": {"code": "not_found", "message": "no such function"}}, "FUNCTION_NOT_FOUND"),
        ({"error": {"code": "busy", "message": "try later"}}, "DEVICE_FAILED"),
        ({"value": "not a number"}, "DEVICE_FAILED"),
        ({"value": 2**31}, "DEVICE_FAILED"),
    ],
)
async def test_a_device_that_cannot_answer_a_call(
    url: str, calling_team: CallingTeam, reply: dict[str, Any], code: str
) -> None:
    principals, product = calling_team
    device_id, secret = await make_device(product)
    async with session(url, device_id, secret, product.id) as (ws, _):
        call = asyncio.create_task(
            rpc.call_function(principals["OWNER"], device_id, "reboot", "")
        )
        await answer_next(ws, **reply)
        with pytest.raises(DomainError) as raised:
            await call
        assert raised.value.code == code


async def test_a_silent_device_times_out_and_a_closing_one_is_offline(
    url: str, calling_team: CallingTeam, monkeypatch: pytest.MonkeyPatch
) -> None:
    principals, product = calling_team
    owner = principals["OWNER"]
    device_id, secret = await make_device(product)
    monkeypatch.setattr(rpc.router(), "timeout", 0.3)
    async with session(url, device_id, secret, product.id) as (ws, _):
        with pytest.raises(TimedOut) as raised:
            await rpc.call_function(owner, device_id, "reboot", "")
        assert raised.value.message == "The device did not answer within 0.3 seconds."
        await receive(ws)  # the unanswered request
        monkeypatch.setattr(rpc.router(), "timeout", 10)
        call = asyncio.create_task(rpc.read_variable(owner, device_id, "temperature"))
        await receive(ws)
        await ws.close()
        with pytest.raises(rpc.DeviceOffline):
            await call


async def test_a_reply_to_no_request_is_refused(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, {"type": "reply", "replyTo": 99, "value": 1}) == {
            "type": "error", "replyTo": 99, "code": "bad_frame",
            "message": "No request 99 is waiting for a reply."}
        assert await exchange(ws, {"type": "reply", "value": 1}) == {
            "type": "error", "code": "bad_frame",
            "message": "`replyTo` is required: an integer from 1 to 2147483647."}
