"""The device gateway end to end: devices connect to the real server over WebSocket."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from websockets.asyncio.client import connect

from api.app import create_app
from core import clock
from core.settings import get_settings
from fleet import gateway
from models.devices import Device, DeviceError, Event
from tests.support.gateway import FIRMWARE, close_code, exchange, make_device, session, statuses
from tests.support.polling import eventually, receive
from tests.support.servers import Clock
from tests.support.worlds import Products


@pytest.fixture
def keepalive(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set the keep-alive interval on the settings object the live server's app holds."""

    def set_keepalive(seconds: int) -> None:
        monkeypatch.setattr(get_settings(), "device_keepalive", seconds)

    return set_keepalive


async def gone_offline(device_id: str) -> None:
    """Wait until the server has closed the device's session: it is offline, and its
    `offline` event (recorded once the presence change has committed) is stored."""

    async def offline_recorded() -> bool:
        recorded = await statuses(device_id)
        return await is_online(device_id, False) and recorded[-1:] != [] and (
            recorded[-1][0] == "offline")

    await eventually(offline_recorded)


async def is_online(device_id: str, expected: bool) -> bool:
    return (await Device.get(id=device_id)).online is expected


# --- Authentication ----------------------------------------------------------------------------


async def test_auth_with_the_right_secret_is_ok(url: str) -> None:
    device_id, secret = await make_device()
    async with connect(url) as ws:
        auth = {"type": "auth", "id": 1, "deviceId": device_id.upper(), "secret": secret}
        assert await exchange(ws, auth) == {"type": "ok", "replyTo": 1}


@pytest.mark.parametrize("wrong", ["secret", "device"])
async def test_a_wrong_secret_or_device_is_unauthorized(url: str, wrong: str) -> None:
    device_id, secret = await make_device()
    if wrong == "secret":
        secret += "x"
    else:
        device_id = secrets.token_hex(12)
    async with connect(url) as ws:
        reply = await exchange(ws, {"type": "auth", "id": 1, "deviceId": device_id,
                                    "secret": secret})
        assert reply == {"type": "error", "replyTo": 1, "code": "unauthorized",
                         "message": "Wrong device ID or secret."}
        assert await close_code(ws) == 4401
    assert await Event.all().count() == 0


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "ping", "id": 5},
         {"type": "error", "replyTo": 5, "code": "unauthorized",
          "message": "The first frame must be `auth`."}),
        ({"type": "hello", "id": 1, "productId": None, **FIRMWARE},
         {"type": "error", "replyTo": 1, "code": "unauthorized",
          "message": "The first frame must be `auth`."}),
        ("not json",
         {"type": "error", "code": "unauthorized",
          "message": "The first frame must be a well-formed `auth`."}),
    ],
)
async def test_a_frame_before_auth_is_unauthorized(
    url: str, frame: dict[str, Any] | str, expected: dict[str, Any]
) -> None:
    async with connect(url) as ws:
        assert await exchange(ws, frame) == expected
        assert await close_code(ws) == 4401


# --- Hello and product assignment --------------------------------------------------------------


@pytest.mark.parametrize(
    ("imported_into", "forced", "reports", "becomes", "quarantined"),
    [
        ("p", False, "p", "p", False),  # imported into P, reports P
        ("p", True, "q", "p", False),  # imported with force, reports Q: force wins
        ("p", True, None, "p", False),  # imported with force, generic firmware
        ("p", False, "q", "q", True),  # imported without force, reports Q
        (None, False, "q", "q", True),  # in no product, reports Q
        (None, False, None, None, False),  # in no product, generic firmware
        (None, False, "missing", None, False),  # in no product, unknown product ID
        ("p", False, None, "p", False),  # imported, generic firmware
        ("p", False, "missing", "p", False),  # imported, unknown product ID
    ],
)
async def test_hello_assigns_the_product(
    url: str, two_products: Products, imported_into: str | None, forced: bool, reports: str | None,
    becomes: str | None, quarantined: bool,
) -> None:
    def product_id(name: str | None) -> int | None:
        if name == "missing":
            return two_products.q.id + 1000
        return getattr(two_products, name).id if name else None

    product = getattr(two_products, imported_into) if imported_into else None
    device_id, secret = await make_device(product, forced=forced)
    async with session(url, device_id, secret, product_id(reports)) as (_, welcome):
        assert welcome == {"type": "welcome", "replyTo": 2, "productId": product_id(becomes),
                           "quarantined": quarantined, "keepAlive": 30}
        device = await Device.get(id=device_id)
        assert device.product_id == product_id(becomes)
        assert device.quarantine == ("QUARANTINED" if quarantined else "NONE")
        assert (device.firmware_version, device.system_firmware_version) == ("3", "5.6.0")
        assert (device.functions, device.variables) == (["reboot", "setTemp"], ["temperature"])
        assert await statuses(device_id) == [("online", product_id(becomes))]


async def test_a_quarantined_device_reporting_its_product_stays_quarantined(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.q, quarantine="QUARANTINED")
    async with session(url, device_id, secret, two_products.q.id) as (_, welcome):
        assert (welcome["productId"], welcome["quarantined"]) == (two_products.q.id, True)


async def test_a_denied_device_is_refused_at_connect(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.q, quarantine="DENIED")
    async with connect(url) as ws:
        await exchange(ws, {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret})
        reply = await exchange(ws, {"type": "hello", "id": 2, "productId": two_products.q.id,
                                    **FIRMWARE})
        assert reply == {"type": "error", "replyTo": 2, "code": "denied",
                         "message": "The device's product denied it."}
        assert await close_code(ws) == 4403
    device = await Device.get(id=device_id)
    assert (device.online, device.product_id, device.quarantine) == (
        False, two_products.q.id, "DENIED")
    assert device.first_online_at is None
    assert await statuses(device_id) == []


async def test_a_denied_device_reporting_another_product_is_quarantined_there(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.q, quarantine="DENIED")
    async with session(url, device_id, secret, two_products.p.id) as (_, welcome):
        assert (welcome["productId"], welcome["quarantined"]) == (two_products.p.id, True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"productId": "1042"},
         "`productId` is required: a product ID, or null for generic firmware."),
        ({"productId": ...},
         "`productId` is required: a product ID, or null for generic firmware."),
        ({"firmwareVersion": ""}, "`firmwareVersion` must be a string of 1 to 64 characters."),
        ({"systemFirmwareVersion": "9" * 65},
         "`systemFirmwareVersion` must be a string of 1 to 64 characters."),
        ({"functions": ["bad name"]},
         "`functions` must be a list of at most 64 names of 1 to 64 letters, digits, '_' or '-'."),
        ({"variables": [f"v{n}" for n in range(65)]},
         "`variables` must be a list of at most 64 names of 1 to 64 letters, digits, '_' or '-'."),
        ({"claimCode": 7}, "`claimCode` must be a string of 1 to 64 characters."),
    ],
)
async def test_a_malformed_hello_is_refused_and_the_device_may_try_again(
    url: str, change: dict[str, Any], message: str
) -> None:
    device_id, secret = await make_device()
    hello = {"type": "hello", "id": 2, "productId": None, **FIRMWARE, **change}
    hello = {key: value for key, value in hello.items() if value is not ...}
    async with connect(url) as ws:
        await exchange(ws, {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret})
        assert await exchange(ws, hello) == {"type": "error", "replyTo": 2, "code": "bad_frame",
                                             "message": message}
        welcome = await exchange(ws, {"type": "hello", "id": 3, "productId": None, **FIRMWARE,
                                      "claimCode": "abc"})
        assert welcome["type"] == "welcome"
    await gone_offline(device_id)


async def test_any_frame_but_hello_after_auth_is_refused(url: str) -> None:
    device_id, secret = await make_device()
    async with connect(url) as ws:
        await exchange(ws, {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret})
        assert await exchange(ws, {"type": "ping", "id": 2}) == {
            "type": "error", "replyTo": 2, "code": "hello_required", "message": "Say `hello` first."
        }
        assert (await Device.get(id=device_id)).online is False
        welcome = await exchange(ws, {"type": "hello", "id": 3, "productId": None, **FIRMWARE})
        assert welcome["type"] == "welcome"
    await gone_offline(device_id)


# --- Presence ----------------------------------------------------------------------------------


async def test_presence_flips_online_on_welcome_and_offline_on_close(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id):
        device = await Device.get(id=device_id)
        assert device.online is True
        assert device.session_id is not None
        assert device.first_online_at is not None
        assert device.last_heard_at == device.first_online_at
        first_online_at = device.first_online_at
    await gone_offline(device_id)
    device = await Device.get(id=device_id)
    assert device.session_id is None
    assert await statuses(device_id) == [
        ("online", two_products.p.id), ("offline", two_products.p.id)]

    async with session(url, device_id, secret, two_products.p.id):
        device = await Device.get(id=device_id)
        assert device.online is True
        assert device.first_online_at == first_online_at
        assert device.last_heard_at > first_online_at
    await gone_offline(device_id)
    assert [data for data, _ in await statuses(device_id)] == [
        "online", "offline", "online", "offline"
    ]


async def test_last_heard_at_is_written_every_few_seconds_and_on_close(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    welcomed_at = frozen_clock.current
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        frozen_clock.advance(seconds=2)
        assert await exchange(ws, {"type": "ping", "id": 3}) == {"type": "pong", "replyTo": 3}
        assert (await Device.get(id=device_id)).last_heard_at == welcomed_at  # kept in memory
        frozen_clock.advance(seconds=3)
        assert await exchange(ws, {"type": "ping", "id": 4}) == {"type": "pong", "replyTo": 4}

        async def flushed() -> bool:
            heard = (await Device.get(id=device_id)).last_heard_at
            return heard == welcomed_at + timedelta(seconds=5)

        await eventually(flushed)
        frozen_clock.advance(seconds=1)
        assert await exchange(ws, {"type": "ping", "id": 5}) == {"type": "pong", "replyTo": 5}
    await gone_offline(device_id)
    device = await Device.get(id=device_id)
    assert device.last_heard_at == welcomed_at + timedelta(seconds=6)
    assert device.first_online_at == welcomed_at


async def test_heartbeats_keep_a_connection_alive(
    url: str, two_products: Products, keepalive: Callable[[int], None]
) -> None:
    keepalive(1)
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, welcome):
        assert welcome["keepAlive"] == 1
        loop = asyncio.get_running_loop()
        until = loop.time() + 3  # longer than the 2 s of silence that ends a connection
        frame_id = 3
        while loop.time() < until:
            assert await exchange(ws, {"type": "ping", "id": frame_id}) == {
                "type": "pong", "replyTo": frame_id
            }
            frame_id += 1
            await asyncio.sleep(0.5)  # the device's own heartbeat period
        assert await is_online(device_id, True)


async def test_a_silent_connection_is_closed_and_the_device_marked_offline(
    url: str, two_products: Products, keepalive: Callable[[int], None]
) -> None:
    keepalive(1)
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await receive(ws) == {"type": "error", "code": "timeout",
                                     "message": "Nothing heard for 2 s."}
        assert await close_code(ws) == 4408
    await gone_offline(device_id)
    assert await statuses(device_id) == [
        ("online", two_products.p.id), ("offline", two_products.p.id)]


async def test_the_sweeper_marks_stale_devices_offline(
    two_products: Products, frozen_clock: Clock
) -> None:
    now = frozen_clock.current
    # Twice keepAlive (60 s) plus 10 s of flush slack.
    stale, _ = await make_device(two_products.p, online=True,
                                 last_heard_at=now - timedelta(seconds=71))
    quarantined, _ = await make_device(two_products.q, quarantine="QUARANTINED", online=True,
                                       last_heard_at=now - timedelta(hours=1))
    recent, _ = await make_device(two_products.p, online=True,
                                  last_heard_at=now - timedelta(seconds=69))
    offline, _ = await make_device(two_products.p, last_heard_at=now - timedelta(hours=1))

    assert await gateway.mark_stale_devices_offline(30) == 2

    for device_id, online in [(stale, False), (quarantined, False), (recent, True),
                              (offline, False)]:
        device = await Device.get(id=device_id)
        assert device.online is online
        assert device.session_id == ("dead-process" if online else None)
    assert await statuses(stale) == [("offline", two_products.p.id)]
    assert await statuses(quarantined) == [("offline", two_products.q.id)]
    assert await statuses(recent) == []
    assert await statuses(offline) == []
    assert await gateway.mark_stale_devices_offline(30) == 0


async def test_the_app_sweeps_stale_devices_when_it_starts(two_products: Products) -> None:
    stale, _ = await make_device(two_products.p, online=True,
                                 last_heard_at=clock.now() - timedelta(hours=1))
    app = create_app(get_settings(), manage_database=False)
    async with app.router.lifespan_context(app):
        await eventually(lambda: is_online(stale, False))
    assert await statuses(stale) == [("offline", two_products.p.id)]


async def test_a_device_connecting_twice_keeps_the_newer_connection(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with (
        session(url, device_id, secret, two_products.p.id) as (older, _),
        session(url, device_id, secret, two_products.p.id) as (newer, _),
    ):
        assert await receive(older) == {
            "type": "error", "code": "replaced",
            "message": "The device connected again; this connection is replaced.",
        }
        assert await close_code(older) == 4409
        session_id = (await Device.get(id=device_id)).session_id
        assert await exchange(newer, {"type": "ping", "id": 3}) == {
            "type": "pong", "replyTo": 3
        }
        device = await Device.get(id=device_id)
        assert (device.online, device.session_id) == (True, session_id)
        assert [data for data, _ in await statuses(device_id)] == ["online", "online"]
    await gone_offline(device_id)
    assert [data for data, _ in await statuses(device_id)] == ["online", "online", "offline"]


# --- Bad frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("{not json", {"code": "bad_frame", "message": "The frame is not JSON."}),
        ("[1, 2]", {"code": "bad_frame", "message": "A frame is a JSON object."}),
        ("[" * 6000 + "]" * 6000, {"code": "bad_frame", "message": "The frame is not JSON."}),
        ('{"type": "ping"}',
         {"code": "bad_frame", "message": "`id` is required: an integer from 1 to 2147483647."}),
        ('{"type": "ping", "id": 2147483648}',
         {"code": "bad_frame", "message": "`id` is required: an integer from 1 to 2147483647."}),
        ('{"id": 9}',
         {"code": "bad_frame", "message": "`type` is required: a string.", "replyTo": 9}),
        ('{"type": "teleport", "id": 9}',
         {"code": "unknown_type", "message": "Unknown frame type `teleport`.", "replyTo": 9}),
        ('{"type": "hello", "id": 9}',
         {"code": "bad_frame", "message": "`hello` was already said on this connection.",
          "replyTo": 9}),
        (b"\x00\x01", {"code": "bad_frame",
                       "message": "Frames are JSON text messages, not binary ones."}),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays_open(
    url: str, frame: str | bytes, expected: dict[str, Any]
) -> None:
    device_id, secret = await make_device()
    async with session(url, device_id, secret, None) as (ws, _):
        assert await exchange(ws, frame) == {"type": "error", **expected}
        assert await exchange(ws, {"type": "ping", "id": 3}) == {"type": "pong", "replyTo": 3}


async def test_frames_over_128_kib_are_refused_and_the_connection_keeps_working(
    url: str
) -> None:
    device_id, secret = await make_device()
    too_large = {"type": "error", "code": "frame_too_large",
                 "message": "A frame is at most 131072 bytes."}
    async with session(url, device_id, secret, None) as (ws, _):
        assert await exchange(ws, "x" * 10_000_000) == too_large
        assert await exchange(ws, {"type": "ping", "id": 3}) == {"type": "pong", "replyTo": 3}

        def ping(frame_id: int, size: int) -> str:
            head = f'{{"type":"ping","id":{frame_id},"pad":"'
            room = size - len(head) - 2  # "é" is 2 bytes in UTF-8
            return head + "é" * (room // 2) + "e" * (room % 2) + '"}'

        exactly = ping(4, 131072)
        assert len(exactly.encode()) == 131072
        assert await exchange(ws, exactly) == {"type": "pong", "replyTo": 4}
        over = ping(5, 131074)
        assert len(over) < 131072 < len(over.encode())
        assert await exchange(ws, over) == too_large
        assert await exchange(ws, {"type": "ping", "id": 6}) == {"type": "pong", "replyTo": 6}


# --- Errors reported by devices ----------------------------------------------------------------


async def test_errors_reported_by_a_device_are_stored_and_acknowledged(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, {"type": "error", "id": 7, "code": "OUT_OF_MEMORY",
                                   "message": "heap exhausted", "resetReason": "watchdog"}) == {
            "type": "ack", "replyTo": 7
        }
        assert await exchange(ws, {"type": "error", "id": 8, "code": "SENSOR"}) == {
            "type": "ack", "replyTo": 8
        }
        assert await exchange(ws, {"type": "error", "id": 9, "message": "no code"}) == {
            "type": "error", "replyTo": 9, "code": "bad_frame",
            "message": "`code` must be a string of 1 to 64 characters.",
        }
        assert await exchange(ws, {"type": "error", "id": 10, "code": "X",
                                   "message": "m" * 1025}) == {
            "type": "error", "replyTo": 10, "code": "bad_frame",
            "message": "`message` must be a string of 0 to 1024 characters.",
        }
    stored = await DeviceError.filter(device_id=device_id).order_by("id").values_list(
        "product_id", "code", "message", "reset_reason", "occurred_at"
    )
    assert stored == [
        (two_products.p.id, "OUT_OF_MEMORY", "heap exhausted", "watchdog", frozen_clock.current),
        (two_products.p.id, "SENSOR", "", "", frozen_clock.current),
    ]


async def test_error_reports_beyond_the_rate_limit_are_refused_and_not_stored(
    url: str, two_products: Products, frozen_clock: Clock
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        replies = [await exchange(ws, {"type": "error", "id": 100 + n, "code": "E"})
                   for n in range(11)]
        assert replies[:10] == [{"type": "ack", "replyTo": 100 + n} for n in range(10)]
        assert replies[10] == {
            "type": "error", "replyTo": 110, "code": "rate_limited",
            "message": "Too many error reports; this one was not stored.",
        }
        frozen_clock.advance(seconds=1)
        assert await exchange(ws, {"type": "error", "id": 111, "code": "E"}) == {
            "type": "ack", "replyTo": 111
        }
    assert await DeviceError.filter(device_id=device_id).count() == 11
