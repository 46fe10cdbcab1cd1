"""The event log and location points meter in the transaction that stores: a device's publish
is counted once stored, and only then; a server's publish, the cloud's presence events, a
retransmission and a device in no product are not; a failed count stores nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from billing.ledger import Ledger
from core import clock, metering
from core.broker import InProcessBroker
from core.metering import Metered, OperationKind
from fleet import locations
from fleet.events import EventLog, EventsUnavailable, NewEvent, Presence
from models.devices import Event, LocationPoint
from tests.support.gateway import make_device
from tests.support.metering import counted
from tests.support.worlds import Products


def never_paused(_product_id: int | None) -> None:
    return None


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    """A ledger of its own as this process's meter, whatever app runs."""
    own = Ledger(never_paused)
    with metering.installed(own):
        yield own


class Recorder:
    """A meter that keeps each `record` call, and fails them all when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Metered], Any]] = []
        self.failing = False

    async def record(self, usages: Sequence[Metered], connection: Any = None) -> None:
        self.calls.append((list(usages), connection))
        if self.failing:
            raise RuntimeError("the ledger refused")

    def paused_until(self, product_id: int | None) -> datetime | None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    own = Recorder()
    with metering.installed(own):
        yield own


def event(product_id: int | None, device_id: str | None, message_id: str | None,
          data: str = "x", *, device_publish: bool = True, **extra: Any) -> NewEvent:
    return NewEvent(product_id=product_id, device_id=device_id, name="temp", data=data,
                    published_at=clock.now(), message_id=message_id,
                    device_publish=device_publish, **extra)


async def test_only_stored_device_publishes_of_a_product_are_counted(
    two_products: Products, ledger: Ledger
) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    loose, _ = await make_device()
    log = EventLog(InProcessBroker())
    await log.append([
        event(p, device, "m1", "é" * 600),  # 1200 bytes: 2
        event(p, device, "m1", "é" * 600),  # the same message again, in the same batch
        event(p, None, None, "x" * 5000, device_publish=False),  # a server's publishEvent
        event(p, device, None, "online", device_publish=False, presence=Presence(None)),
        event(None, loose, "m1"),  # in no product
    ])
    await log.append([event(p, device, "m1", "é" * 600), event(p, device, "m2", "")])
    await log.close()
    assert await counted() == [("DEVICE_PUBLISH", device, 2 + 1)]


async def test_one_record_per_batch_in_the_batchs_transaction(
    two_products: Products, recorder: Recorder
) -> None:
    p = two_products.p.id
    devices = [(await make_device(two_products.p))[0] for _ in range(3)]
    log = EventLog(InProcessBroker())
    await log.append([event(p, d, f"m{n}") for n in range(2) for d in devices])
    await log.close()
    ((usages, connection),) = recorder.calls
    assert connection is not None
    assert sorted((u.kind, u.device_id, u.name, u.size) for u in usages) == sorted(
        (OperationKind.DEVICE_PUBLISH, d, "temp", 1) for d in devices for _ in range(2))


async def test_a_publish_whose_count_fails_is_not_stored(
    two_products: Products, recorder: Recorder
) -> None:
    device, _ = await make_device(two_products.p)
    recorder.failing = True
    log = EventLog(InProcessBroker())
    with pytest.raises(EventsUnavailable):
        await log.append([event(two_products.p.id, device, "m1")])
    await log.close()
    assert await Event.filter(device_id=device).count() == 0


async def test_location_points_are_counted_with_them_and_a_retransmission_not(
    two_products: Products, ledger: Ledger
) -> None:
    device, _ = await make_device(two_products.p)
    loose, _ = await make_device()
    points = [locations.NewPoint(lat=1.0, lon=2.0)] * 3
    assert await locations.store(device, two_products.p.id, "l1", points, clock.now())
    assert not await locations.store(device, two_products.p.id, "l1", points, clock.now())
    assert await locations.store(loose, None, "l1", points, clock.now())
    assert await counted() == [("LOCATION_POINT", device, 3)]


async def test_points_whose_count_fails_are_not_stored(
    two_products: Products, recorder: Recorder
) -> None:
    device, _ = await make_device(two_products.p)
    recorder.failing = True
    with pytest.raises(RuntimeError):
        await locations.store(device, two_products.p.id, "l1",
                              [locations.NewPoint(lat=1.0, lon=2.0)], clock.now())
    assert await LocationPoint.filter(device_id=device).count() == 0
