"""Location points end to end: a device sends `location` frames over a real WebSocket, the
cloud stores their points all or none, once, and `device.locations` pages them for the team
and the device's customer; the event pruner prunes them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from core import clock
from core.settings import get_settings
from fleet import events, locations, products
from models.devices import Device, LocationPoint
from models.products import Product
from tests.support.accounts import access_token, organization_with_team
from tests.support.customers import customer_token, make_customer
from tests.support.gateway import exchange, make_device, session
from tests.support.graphql import graphql
from tests.support.polling import eventually
from tests.support.servers import Clock
from tests.support.worlds import Products

POINT = {"lat": 48.8584, "lon": 2.2945}
FULL = {"lat": -33.8568, "lon": 151.2153, "alt": 12.5, "accuracy": 4, "heading": 359.5,
        "speed": 0, "time": "2026-01-31T12:00:00+00:00"}


def location(frame_id: int, points: list[dict[str, Any]], message_id: str | None = None
             ) -> dict[str, Any]:
    return {"type": "location", "id": frame_id, "messageId": message_id or f"l{frame_id}",
            "points": points}


async def stored(device_id: str) -> list[tuple[Any, ...]]:
    return list(
        await LocationPoint.filter(device_id=device_id).order_by("id").values_list(
            "lat", "lon", "alt", "accuracy", "heading", "speed", "device_time", "product_id",
            "message_id", "position")
    )


# --- The frame ------------------------------------------------------------------------------


async def test_one_point_is_stored_then_acknowledged(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, location(3, [FULL])) == {"type": "ack", "replyTo": 3}
        # Acknowledged means stored: no waiting needed.
        (point,) = await stored(device_id)
    assert point[:6] == (-33.8568, 151.2153, 12.5, 4.0, 359.5, 0.0)
    assert point[6].isoformat() == "2026-01-31T12:00:00+00:00"
    assert point[7:] == (two_products.p.id, "l3", 0)


async def test_a_hundred_points_are_stored_in_order(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.p)
    points = [{"lat": i * 0.5, "lon": -i} for i in range(100)]
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, location(4, points)) == {"type": "ack", "replyTo": 4}
    assert [(lat, lon, position) for lat, lon, *_, position in await stored(device_id)] == [
        (i * 0.5, float(-i), i) for i in range(100)]


@pytest.mark.parametrize(
    ("points", "field", "index", "message"),
    [
        ([], "points", None, "`points` is required: a list of 1 to 100 points."),
        ([POINT] * 101, "points", None, "`points` is required: a list of 1 to 100 points."),
        ("here", "points", None, "`points` is required: a list of 1 to 100 points."),
        ([POINT, 7], "point", 1, "Point 1 must be an object."),
        ([{"lon": 2}], "lat", 0, "Point 0: `lat` is required: a number from -90 to 90."),
        ([POINT, {**POINT, "lat": 90.01}], "lat", 1,
         "Point 1: `lat` is required: a number from -90 to 90."),
        ([{**POINT, "lat": -90.5}], "lat", 0,
         "Point 0: `lat` is required: a number from -90 to 90."),
        ([{**POINT, "lat": "48"}], "lat", 0,
         "Point 0: `lat` is required: a number from -90 to 90."),
        ([{**POINT, "lat": True}], "lat", 0,
         "Point 0: `lat` is required: a number from -90 to 90."),
        ([{"lat": 1}], "lon", 0, "Point 0: `lon` is required: a number from -180 to 180."),
        ([POINT, POINT, {**POINT, "lon": 180.5}], "lon", 2,
         "Point 2: `lon` is required: a number from -180 to 180."),
        ([{**POINT, "lon": -181}], "lon", 0,
         "Point 0: `lon` is required: a number from -180 to 180."),
        ([{**POINT, "alt": "high"}], "alt", 0, "Point 0: `alt` must be a number (metres)."),
        ([{**POINT, "accuracy": -0.1}], "accuracy", 0,
         "Point 0: `accuracy` must be a number of at least 0 (metres)."),
        ([{**POINT, "heading": 360.1}], "heading", 0,
         "Point 0: `heading` must be a number from 0 to 360 (degrees)."),
        ([{**POINT, "heading": -1}], "heading", 0,
         "Point 0: `heading` must be a number from 0 to 360 (degrees)."),
        ([{**POINT, "speed": -3}], "speed", 0,
         "Point 0: `speed` must be a number of at least 0 (metres a second)."),
        ([{**POINT, "time": "yesterday"}], "time", 0, None),
        ([{**POINT, "time": "2026-01-31T12:00:00"}], "time", 0, None),  # no UTC offset
        ([{**POINT, "time": 1767225600}], "time", 0, None),
    ],
)
async def test_a_wrong_point_refuses_the_frame_and_stores_nothing(
    url: str, two_products: Products, points: Any, field: str, index: int | None,
    message: str | None,
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        frame = {"type": "location", "id": 5, "messageId": "l5", "points": points}
        refusal = await exchange(ws, frame)
        expected = {"type": "error", "replyTo": 5, "code": "invalid_location", "field": field}
        if index is not None:
            expected["point"] = index
        assert {k: v for k, v in refusal.items() if k != "message"} == expected
        if message is not None:
            assert refusal["message"] == message
        assert await exchange(ws, {"type": "ping", "id": 6}) == {"type": "pong", "replyTo": 6}
    assert await stored(device_id) == []


async def test_a_time_far_ahead_of_the_clouds_is_refused(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.p)
    now = clock.now()
    soon = (now + timedelta(minutes=9)).isoformat()
    later = (now + timedelta(minutes=11)).isoformat()
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        refusal = await exchange(ws, location(3, [POINT, {**POINT, "time": later}]))
        assert (refusal["code"], refusal["point"], refusal["field"]) == (
            "invalid_location", 1, "time")
        assert refusal["message"] == (
            "Point 1: `time` must be an ISO 8601 moment with its UTC offset "
            "(2026-01-31T12:00:00Z), at most 10 minutes ahead of the cloud's clock.")
        assert await exchange(ws, location(4, [{**POINT, "time": soon}])) == {
            "type": "ack", "replyTo": 4}
    assert len(await stored(device_id)) == 1


async def test_a_frame_without_a_message_id_is_a_bad_frame(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        refusal = await exchange(ws, {"type": "location", "id": 3, "points": [POINT]})
        assert (refusal["code"], refusal["replyTo"]) == ("bad_frame", 3)
    assert await stored(device_id) == []


async def test_a_retransmission_is_stored_once(url: str, two_products: Products) -> None:
    device_id, secret = await make_device(two_products.p)
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, location(3, [POINT, FULL])) == {"type": "ack", "replyTo": 3}
        # Again on the same connection, under another frame ID.
        assert await exchange(ws, location(4, [POINT, FULL], "l3")) == {
            "type": "ack", "replyTo": 4}
    # The ack was lost, say: the device sends the frame again on its next connection.
    async with session(url, device_id, secret, two_products.p.id) as (ws, _):
        assert await exchange(ws, location(9, [POINT, FULL], "l3")) == {
            "type": "ack", "replyTo": 9}
    assert [row[-2:] for row in await stored(device_id)] == [("l3", 0), ("l3", 1)]


async def test_the_points_belong_to_the_devices_product_of_the_moment(
    url: str, two_products: Products
) -> None:
    device_id, secret = await make_device(None)
    async with session(url, device_id, secret, None) as (ws, _):
        assert await exchange(ws, location(3, [POINT])) == {"type": "ack", "replyTo": 3}
    assert [row[7] for row in await stored(device_id)] == [None]


# --- Reading them ---------------------------------------------------------------------------

QUERY = """query($d: String!, $since: DateTime, $until: DateTime, $first: Int!, $after: String) {
  device(deviceId: $d) { locations(since: $since, until: $until, first: $first, after: $after) {
    edges { cursor node { lat lon alt accuracy heading speed deviceTime receivedAt } }
    pageInfo { hasNextPage endCursor } } } }"""


async def _read(http: httpx.AsyncClient, token: str, device_id: str, **variables: Any
                ) -> dict[str, Any] | None:
    body = await graphql(http, QUERY, {"d": device_id, "first": 20, **variables}, token=token)
    assert "errors" not in body, body
    device = body["data"]["device"]
    return None if device is None else device["locations"]


def _lats(page: dict[str, Any] | None) -> list[float]:
    assert page is not None
    return [edge["node"]["lat"] for edge in page["edges"]]


@pytest.fixture
async def thermostat(frozen_clock: Clock) -> tuple[Any, Product]:
    acme = await organization_with_team("Acme", "acme")
    product = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    return acme, product


async def _points_each_minute(device_id: str, product_id: int | None, count: int,
                              frozen_clock: Clock, start: int = 0) -> None:
    for i in range(start, start + count):
        assert await locations.store(device_id, product_id, f"m{i}",
                                     [locations.NewPoint(lat=float(i), lon=0)], clock.now())
        frozen_clock.advance(minutes=1)


async def test_pages_are_newest_first_and_stay_put_while_points_arrive(
    http: httpx.AsyncClient, thermostat: tuple[Any, Product], frozen_clock: Clock
) -> None:
    acme, product = thermostat
    device_id, _ = await make_device(product)
    start = clock.now()
    await _points_each_minute(device_id, product.id, 5, frozen_clock)
    # Two points of one frame share their moment: the later in the frame comes first.
    assert await locations.store(device_id, product.id, "pair", [
        locations.NewPoint(lat=10, lon=0), locations.NewPoint(lat=11, lon=0, alt=3,
                                                              accuracy=1, heading=90, speed=2)],
        clock.now())
    token = await access_token(acme.email("VIEWER"))

    everything = await _read(http, token, device_id)
    assert _lats(everything) == [11, 10, 4, 3, 2, 1, 0]
    assert everything is not None and everything["edges"][0]["node"] == {
        "lat": 11.0, "lon": 0.0, "alt": 3.0, "accuracy": 1.0, "heading": 90.0, "speed": 2.0,
        "deviceTime": None, "receivedAt": clock.now().isoformat()}

    first = await _read(http, token, device_id, first=3)
    assert first is not None and _lats(first) == [11, 10, 4]
    assert first["pageInfo"]["hasNextPage"] is True
    frozen_clock.advance(minutes=1)
    await _points_each_minute(device_id, product.id, 2, frozen_clock, start=20)
    second = await _read(http, token, device_id, first=3, after=first["pageInfo"]["endCursor"])
    assert second is not None and _lats(second) == [3, 2, 1]
    third = await _read(http, token, device_id, first=3, after=second["pageInfo"]["endCursor"])
    assert third is not None and _lats(third) == [0]
    assert third["pageInfo"]["hasNextPage"] is False

    window = await _read(http, token, device_id, since=(start + timedelta(minutes=1)).isoformat(),
                         until=(start + timedelta(minutes=4)).isoformat())
    assert _lats(window) == [3, 2, 1]  # since is inclusive, until exclusive

    body = await graphql(http, QUERY, {"d": device_id, "first": 2, "after": "bm9wZQ=="},
                         token=token)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_the_customer_sees_the_points_since_the_claim_only(
    http: httpx.AsyncClient, thermostat: tuple[Any, Product], frozen_clock: Clock
) -> None:
    acme, product = thermostat
    device_id, _ = await make_device(product)
    await _points_each_minute(device_id, product.id, 2, frozen_clock)
    customer = await make_customer(product, "a@customers.example")
    await Device.filter(id=device_id).update(customer=customer, claimed_at=clock.now())
    await _points_each_minute(device_id, product.id, 2, frozen_clock, start=2)

    assert _lats(await _read(http, await customer_token(customer), device_id)) == [3, 2]
    assert _lats(await _read(http, await access_token(acme.email("SUPPORT")), device_id)) == [
        3, 2, 1, 0]
    other = await make_customer(product, "b@customers.example")
    assert await _read(http, await customer_token(other), device_id) is None


async def test_a_team_sees_none_of_the_points_from_another_product(
    http: httpx.AsyncClient, thermostat: tuple[Any, Product], frozen_clock: Clock
) -> None:
    acme, product = thermostat
    device_id, _ = await make_device(None)
    await _points_each_minute(device_id, None, 1, frozen_clock)
    await Device.filter(id=device_id).update(product=product)
    await _points_each_minute(device_id, product.id, 1, frozen_clock, start=1)
    assert _lats(await _read(http, await access_token(acme.email("OWNER")), device_id)) == [1]


# --- Retention ------------------------------------------------------------------------------


async def test_points_are_pruned_with_the_events_retention(
    frozen_clock: Clock, two_products: Products
) -> None:
    device_id, _ = await make_device(two_products.p)
    await _points_each_minute(device_id, two_products.p.id, 3, frozen_clock)
    frozen_clock.advance(days=30, minutes=-1)
    # The points received more than 30 days ago go; the third, exactly 30 days old, stays.
    assert await locations.prune(30) == 2
    assert await locations.prune(30) == 0
    assert [row[0] for row in await stored(device_id)] == [2.0]


async def test_the_event_pruner_prunes_points_too(
    frozen_clock: Clock, two_products: Products
) -> None:
    device_id, _ = await make_device(two_products.p)
    await _points_each_minute(device_id, two_products.p.id, 1, frozen_clock)
    frozen_clock.advance(days=31)
    async with events.pruner(get_settings()):
        async def pruned() -> bool:
            return not await LocationPoint.filter(device_id=device_id).exists()

        await eventually(pruned)
