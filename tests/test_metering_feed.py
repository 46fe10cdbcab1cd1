"""A feed's deliveries and the meter: each frame is counted before it is written, a
retransmission too; a delivery whose count fails is not sent then, but once more at its
retransmission time; while paused, deliveries are withheld and the device told once a pause.
Retransmissions fall due when the test moves the feed's timer, never by themselves."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from core import clock, metering
from core.metering import Metered, OperationKind
from core.settings import get_settings
from fleet import events, subscriptions
from fleet.pauses import Pause
from tests.support.gateway import make_device
from tests.support.polling import eventually
from tests.support.timers import ManualTimer
from tests.support.worlds import Products

UNTIL = datetime(2027, 1, 1, tzinfo=UTC)
ACK_TIMEOUT = 10.0  # seconds of the feed's timer before a delivery is sent again, then dropped


class Meter:
    """Records what it is asked to count; fails the calls it is told to; pauses on demand."""

    def __init__(self) -> None:
        self.recorded: list[Metered] = []
        self.failures = 0
        self.until: datetime | None = None

    async def record(self, usages: Sequence[Metered], connection: Any = None) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database is down")
        self.recorded.extend(usages)

    def paused_until(self, product_id: int | None) -> datetime | None:
        return self.until

    async def close(self) -> None:
        return None


class Device:
    """The sending side of a connection: what it was sent, and what was counted by then."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.sent: list[tuple[subscriptions.Delivery, int]] = []
        self.told: list[Pause] = []
        self.ids = 0

    def new_id(self) -> int:
        self.ids += 1
        return self.ids

    async def send(self, delivery: subscriptions.Delivery) -> None:
        self.sent.append((delivery, len(self.meter.recorded)))

    async def paused(self, pause: Pause) -> None:
        self.told.append(pause)


@pytest.fixture
def meter() -> Iterator[Meter]:
    own = Meter()
    with metering.installed(own):
        yield own


@pytest.fixture
def timer(timer: ManualTimer, monkeypatch: pytest.MonkeyPatch) -> ManualTimer:
    monkeypatch.setattr(get_settings(), "device_delivery_ack_timeout", ACK_TIMEOUT)
    return timer


@pytest.fixture
async def feed(two_products: Products, meter: Meter, timer: ManualTimer) -> Any:
    listener, _ = await make_device(two_products.p)
    device = Device(meter)
    feed = subscriptions.Feed(listener, send=device.send, paused=device.paused,
                              new_id=device.new_id, settings=get_settings())
    await feed.subscribe("door/")
    yield feed, device
    await feed.close()


async def publish(products: Products, *names: str, data: str = "x") -> None:
    """Store events of the product under `names`, in one batch (so the feed gets them all
    before it handles the first)."""
    await events.record([events.NewEvent(product_id=products.p.id, device_id=None, name=name,
                                         data=data, published_at=clock.now())
                         for name in names])


async def test_each_frame_is_counted_before_it_is_written(
    two_products: Products, meter: Meter, feed: Any, timer: ManualTimer
) -> None:
    listener, device = feed
    await publish(two_products, "door/open", data="é" * 700)
    await eventually(sent(device, 1))
    timer.advance(ACK_TIMEOUT - 0.5)
    await eventually(waiting_again(timer))
    assert len(device.sent) == 1  # not yet due
    timer.advance(0.5)
    await eventually(sent(device, 2))  # never acknowledged: sent again
    (first, counted_first), (again, counted_again) = device.sent
    assert first == again
    assert (counted_first, counted_again) == (1, 2)
    assert [(u.kind, u.product_id, u.device_id, u.name, u.size) for u in meter.recorded] == [
        (OperationKind.SUBSCRIPTION_DELIVERY, two_products.p.id, listener.device_id,
         "door/open", 1400)] * 2
    # Sent twice, never acknowledged: dropped, not sent a third time.
    timer.advance(ACK_TIMEOUT)
    await eventually(waiting_again(timer))
    assert not listener.acknowledge(first.id)
    assert len(device.sent) == 2


def sent(device: Device, count: int) -> Any:
    async def check() -> bool:
        return len(device.sent) == count

    return check


def waiting_again(timer: ManualTimer) -> Any:
    """The feed handled what fell due and waits on the timer again."""

    async def check() -> bool:
        return timer.waited_on

    return check


async def test_a_delivery_whose_count_fails_is_sent_at_its_retransmission_time(
    two_products: Products, meter: Meter, feed: Any, timer: ManualTimer
) -> None:
    listener, device = feed
    meter.failures = 1
    await publish(two_products, "door/open")

    async def count_failed() -> bool:
        return meter.failures == 0

    await eventually(count_failed)
    await eventually(waiting_again(timer))
    assert device.sent == []  # not counted, so not sent
    timer.advance(ACK_TIMEOUT)
    await eventually(sent(device, 1))
    ((delivery, counted_before),) = device.sent
    assert listener.acknowledge(delivery.id)
    assert (delivery.event.name, counted_before, len(meter.recorded)) == ("door/open", 1, 1)


async def test_while_paused_deliveries_are_withheld_and_the_device_told_once(
    two_products: Products, meter: Meter, feed: Any
) -> None:
    listener, device = feed
    meter.until = UNTIL
    await publish(two_products, "door/one", "door/two")

    async def told() -> bool:
        return [pause.until for pause in device.told] == [UNTIL]

    await eventually(told)
    meter.until = None
    await publish(two_products, "door/three")

    async def delivered() -> bool:
        return len(device.sent) == 1

    await eventually(delivered)
    ((delivery, _),) = device.sent
    assert delivery.event.name == "door/three"  # what was withheld is not sent later
    assert listener.acknowledge(delivery.id)
    assert [pause.until for pause in device.told] == [UNTIL]
    assert [u.name for u in meter.recorded] == ["door/three"]
    # The next pause is told again.
    meter.until = UNTIL
    await publish(two_products, "door/four")

    async def told_again() -> bool:
        return [pause.until for pause in device.told] == [UNTIL, UNTIL]

    await eventually(told_again)
    assert len(device.sent) == 1
