"""A device's feed of its subscriptions (fleet/subscriptions.py) against the event log and the
in-process broker: a device that does not read never makes the event writer wait, its queue is
bounded, and an event that several prefixes match is delivered once."""

from __future__ import annotations

import asyncio

import pytest

from core import clock
from core.settings import get_settings
from fleet import events, subscriptions
from fleet.pauses import Pause
from models.products import Product
from tests.support.gateway import make_device
from tests.support.polling import eventually
from tests.support.worlds import Products


def event(product: Product, device_id: str | None, name: str) -> events.NewEvent:
    return events.NewEvent(product_id=product.id, device_id=device_id, name=name, data="1",
                           published_at=clock.now())


class Device:
    """The sending side of a connection: records deliveries, or hangs on the first one."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.sent: list[subscriptions.Delivery] = []
        self.stuck = stuck
        self.ids = 0
        self.never = asyncio.Event()

    def new_id(self) -> int:
        self.ids += 1
        return self.ids

    async def paused(self, pause: Pause) -> None:
        raise AssertionError(f"nothing is paused here, yet the feed said so until {pause.until}")

    async def send(self, delivery: subscriptions.Delivery) -> None:
        self.sent.append(delivery)
        if self.stuck:
            await self.never.wait()


async def test_a_device_that_does_not_read_never_holds_up_the_writer(
    two_products: Products, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "stream_buffer", 3)
    listener, _ = await make_device(two_products.p)
    publisher, _ = await make_device(two_products.p)
    device = Device(stuck=True)
    feed = subscriptions.Feed(listener, send=device.send, paused=device.paused,
                              new_id=device.new_id,
                              settings=get_settings())
    await feed.subscribe("temp")
    try:
        async with asyncio.timeout(10):  # the writer returns while the device hangs
            stored = await events.record(
                [event(two_products.p, publisher, f"temp/{n}") for n in range(10)])
        assert all(stored)

        async def one_in_flight() -> bool:
            return len(device.sent) == 1

        await eventually(one_in_flight)
        # The batch reached the feed at once: three queued (the first of them sent, and stuck),
        # the other seven dropped.
        assert [d.event.name for d in device.sent] == ["temp/0"]
        assert feed.dropped == 7
    finally:
        await feed.close()


async def test_an_event_several_prefixes_match_is_delivered_once(
    two_products: Products,
) -> None:
    listener, _ = await make_device(two_products.p)
    publisher, _ = await make_device(two_products.p)
    device = Device()
    feed = subscriptions.Feed(listener, send=device.send, paused=device.paused,
                              new_id=device.new_id,
                              settings=get_settings())
    for prefix in ("temp", "temperature", ""):
        await feed.subscribe(prefix)
    try:
        await events.record([event(two_products.p, publisher, "temperature"),
                             event(two_products.q, publisher, "temperature/q"),
                             event(two_products.p, None, "tem")])

        async def both() -> bool:
            return len(device.sent) == 2

        await eventually(both)
        assert [(d.id, d.event.name, d.event.device_id) for d in device.sent] == [
            (1, "temperature", publisher), (2, "tem", None)]
        assert feed.acknowledge(1) is True
        assert feed.acknowledge(1) is False  # acknowledged already
        assert feed.acknowledge(7) is False  # never sent
    finally:
        await feed.close()
