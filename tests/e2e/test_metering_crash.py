"""An app process killed (SIGKILL) in the middle of a burst of publishes from several devices:
once what was stored is counted (as the next start would), the ledger holds exactly what was
stored, no more and no less: publishes are counted from the stored events, and the position up
to which they were counted commits with the counters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fleet import products
from models.devices import Event
from models.products import Product
from tests.support.accounts import organization_with_team
from tests.support.gateway import FIRMWARE, exchange, make_device, publish
from tests.support.metering import counted
from tests.support.polling import eventually
from tests.support.processes import AppProcess, AppProcesses, app_processes

FAST_PUBLISHING = {"DEVICE_EVENT_RATE": "1000000", "DEVICE_EVENT_BURST": "1000000"}
DEVICES = 6
WINDOW = 4  # publishes a device has in flight
KILL_AFTER = 150  # events stored
SIZES = [0, 1, 1024, 1025, 2048, 3000, 4096, 700]  # bytes of data, in turn


@pytest.fixture
async def apps(database_url: str) -> AsyncIterator[AppProcesses]:
    async with app_processes(database_url) as processes:
        yield processes


def cost(data: str) -> int:
    """The billing rule, spelled out: 1 per started 1024 bytes, at least 1."""
    return max(1, -(-len(data.encode()) // 1024))


async def publish_until_killed(app: AppProcess, device_id: str, secret: str,
                               product_id: int) -> None:
    """Publish as fast as acknowledgements allow (`WINDOW` in flight) until the connection
    breaks."""
    try:
        async with connect(app.device_url, max_size=None) as ws:
            auth = {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret}
            assert await exchange(ws, auth) == {"type": "ok", "replyTo": 1}
            hello = {"type": "hello", "id": 2, "productId": product_id, **FIRMWARE}
            assert (await exchange(ws, hello))["type"] == "welcome"
            frame_id = 3
            for _ in range(WINDOW):
                await ws.send(json.dumps(publish(frame_id, data="é" * (frame_id % 5)
                                                 + "x" * SIZES[frame_id % len(SIZES)])))
                frame_id += 1
            while True:
                reply = json.loads(await ws.recv())
                assert reply["type"] == "ack", reply
                await ws.send(json.dumps(publish(frame_id, data="é" * (frame_id % 5)
                                                 + "x" * SIZES[frame_id % len(SIZES)])))
                frame_id += 1
    except (ConnectionClosed, OSError):
        return


async def test_a_process_killed_mid_burst_counted_exactly_what_it_stored(
    apps: AppProcesses
) -> None:
    team = await organization_with_team(roles=("OWNER",))
    product = await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Burst", slug=None,
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    await Product.filter(id=product.id).update(event_data_limit=8192)
    (app,) = await apps.start(1, env=FAST_PUBLISHING)
    devices = [await make_device(product) for _ in range(DEVICES)]
    device_ids = [device_id for device_id, _ in devices]
    stored = Event.filter(device_id__in=device_ids).exclude(name="spark/status")
    tasks = [asyncio.create_task(publish_until_killed(app, device_id, secret, product.id))
             for device_id, secret in devices]

    async def enough() -> bool:
        assert not any(task.done() for task in tasks), "a publisher stopped before the kill"
        return await stored.count() >= KILL_AFTER

    await eventually(enough, within=30)
    await app.kill()  # while every device is still publishing
    await asyncio.wait_for(asyncio.gather(*tasks), 10)

    events = await stored.values_list("device_id", "data")
    assert len(events) >= KILL_AFTER
    expected: dict[str, int] = dict.fromkeys(device_ids, 0)
    for device_id, data in events:
        expected[device_id] += cost(data)
    assert await counted(*device_ids) == sorted(
        ("DEVICE_PUBLISH", device_id, n) for device_id, n in expected.items())
