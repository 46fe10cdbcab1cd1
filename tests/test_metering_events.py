"""A device's publishes are counted from the stored events (`billing.publishes`): once stored,
and only then, exactly once, on their UTC days; a server's publish, the cloud's presence
events, a retransmission and a device in no product are not. Location points are counted in
the transaction that stores them: a failed count stores nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from billing import counters, publishes
from billing.ledger import Ledger
from core import clock, metering
from core.broker import InProcessBroker
from core.metering import Metered
from fleet import locations
from fleet.events import EventLog, NewEvent, Presence
from models.devices import Event, LocationPoint
from models.usage import LedgerPosition, UsageCounter
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

    async def settle(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    own = Recorder()
    with metering.installed(own):
        yield own


def event(product_id: int | None, device_id: str | None, message_id: str | None,
          data: str = "x", *, device_publish: bool = True, name: str = "temp",
          published_at: datetime | None = None, **extra: Any) -> NewEvent:
    return NewEvent(product_id=product_id, device_id=device_id, name=name, data=data,
                    published_at=published_at or clock.now(), message_id=message_id,
                    device_publish=device_publish, **extra)


async def store(*batch: NewEvent) -> None:
    log = EventLog(InProcessBroker())
    await log.append(list(batch))
    await log.close()


async def test_only_stored_device_publishes_of_a_product_are_counted(
    two_products: Products, ledger: Ledger
) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    loose, _ = await make_device()
    await store(
        event(p, device, "m1", "é" * 600),  # 1200 bytes: 2
        event(p, device, "m1", "é" * 600),  # the same message again, in the same batch
        event(p, None, None, "x" * 5000, device_publish=False),  # a server's publishEvent
        event(p, device, None, "online", device_publish=False, presence=Presence(None),
              name="spark/status"),
        event(None, loose, "m1"),  # in no product
    )
    await store(event(p, device, "m1", "é" * 600), event(p, device, "m2", ""))
    assert await counted() == [("DEVICE_PUBLISH", device, 2 + 1)]


async def test_counted_from_the_stored_events_by_size_and_name(two_products: Products) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    await store(*(event(p, device, f"s{size}", "x" * size) for size in (0, 1024, 1025, 16384)),
                event(p, device, "i1", "x" * 5000, name="spark/vitals"),
                event(p, device, "i2", "x" * 5000, name="Particle/device/updates"))
    assert await counted() == [("DEVICE_PUBLISH", device, 1 + 1 + 2 + 16)]
    assert await counted() == [("DEVICE_PUBLISH", device, 1 + 1 + 2 + 16)]


async def test_publishes_land_on_their_utc_days_and_periods(two_products: Products) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    plus_two = timezone(timedelta(hours=2))
    await store(
        event(p, device, "a", published_at=datetime(2027, 1, 31, 23, 59, 59, 999999, UTC)),
        # 2027-02-01 01:00 at +02:00 is 2027-01-31 23:00 UTC
        event(p, device, "b", published_at=datetime(2027, 2, 1, 1, 0, tzinfo=plus_two)),
        event(p, device, "c", "x" * 2048, published_at=datetime(2027, 2, 1, tzinfo=UTC)),
        event(p, device, "d", published_at=datetime(2027, 2, 2, 12, tzinfo=UTC)),
    )
    await publishes.count_stored()
    rows = await UsageCounter.filter(device_id=device).order_by("day").values_list(
        "organization_id", "period", "day", "product_id", "kind", "operations")
    org = two_products.p.organization_id
    assert [(o, period, str(day), product, kind, n) for o, period, day, product, kind, n
            in rows] == [
        (org, "2027-01", "2027-01-31", p, "DEVICE_PUBLISH", 2),
        (org, "2027-02", "2027-02-01", p, "DEVICE_PUBLISH", 2),
        (org, "2027-02", "2027-02-02", p, "DEVICE_PUBLISH", 1),
    ]


async def position() -> int:
    """How far the events are counted: 0 before the first count wrote the position."""
    row = await LedgerPosition.get_or_none(source="events")
    return 0 if row is None else row.event_id


async def test_the_position_moves_with_the_counters_in_one_transaction(
    two_products: Products, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    await publishes.count_stored()  # whatever came before is counted: start from here
    before = await position()
    await store(event(p, device, "m1", "x" * 1025), event(p, device, "m2"))
    add = counters.add

    async def refusing(sums: counters.Sums, connection: Any, organization_of: Any = None) -> None:
        await add(sums, connection, organization_of)  # added, then the transaction fails
        raise RuntimeError("the database refused")

    monkeypatch.setattr(counters, "add", refusing)
    with pytest.raises(RuntimeError):
        await publishes.count_stored()
    assert await position() == before
    assert await UsageCounter.filter(device_id=device).count() == 0
    monkeypatch.undo()
    assert await counted() == [("DEVICE_PUBLISH", device, 3)]
    assert await position() == await Event.filter(device_id=device).order_by("-id").first(
        ).values_list("id", flat=True)
    assert await counted() == [("DEVICE_PUBLISH", device, 3)]


async def test_concurrent_counts_count_each_event_once(two_products: Products) -> None:
    p = two_products.p.id
    devices = [(await make_device(two_products.p))[0] for _ in range(3)]
    await store(*(event(p, d, f"m{n}", "x" * 1500) for n in range(4) for d in devices))
    done = await asyncio.gather(*(publishes.count_stored() for _ in range(3)))
    assert sum(done) <= 12  # a running app of this process may have counted some
    assert await counted() == sorted(("DEVICE_PUBLISH", d, 8) for d in devices)


async def test_counting_in_chunks_counts_the_same(two_products: Products) -> None:
    p = two_products.p.id
    device, _ = await make_device(two_products.p)
    other, _ = await make_device(two_products.q)
    await store(*(event(p, device, f"m{n}", "x" * 1024 * n) for n in range(4)),
                event(two_products.q.id, other, "m0"))
    await publishes.count_stored(chunk=2)
    assert await counted() == sorted([("DEVICE_PUBLISH", device, 1 + 1 + 2 + 3),
                                      ("DEVICE_PUBLISH", other, 1)])


async def test_counting_runs_in_the_background_and_once_more_as_it_stops(
    two_products: Products
) -> None:
    device, _ = await make_device(two_products.p)
    async with publishes.counting(3600):
        await store(event(two_products.p.id, device, "m1"))
    assert await UsageCounter.filter(device_id=device).values_list("operations", flat=True) == [1]


def test_an_event_of_a_device_that_is_not_its_publish_has_an_internal_name() -> None:
    with pytest.raises(ValueError, match="would be counted as the device's publish"):
        event(1, "d" * 24, None, device_publish=False)
    assert event(1, "d" * 24, None, device_publish=False, name="spark/status").device_id
    assert event(1, None, None, device_publish=False).device_id is None
    assert event(None, "d" * 24, None, device_publish=False).product_id is None


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
