"""The event log: batched durable writes, ID order, retransmissions, live publication,
failures and retention."""

from __future__ import annotations

import asyncio
import contextvars
import secrets
from datetime import timedelta

import pytest

from auth import tokens
from core import clock
from core.broker import InProcessBroker
from fleet import events
from fleet.events import EventLog, EventsUnavailable, LiveEvent, NewEvent
from models.devices import Device, Event
from tests.support.servers import Clock


@pytest.fixture
async def device_id() -> str:
    device = await Device.create(
        id=secrets.token_hex(12), secret_hash=tokens.digest("s"), platform="Photon",
        provisioned_at=clock.now(),
    )
    return device.id


def new(name: str, device_id: str | None = None, message_id: str | None = None,
        data: str = "1") -> NewEvent:
    return NewEvent(product_id=None, device_id=device_id, name=name, data=data,
                    published_at=clock.now(), message_id=message_id)


class CountingLog(EventLog):
    """An event log that counts its batches."""

    def __init__(self) -> None:
        super().__init__(InProcessBroker())
        self.batches: list[int] = []

    async def _store(self, batch: list[NewEvent]) -> list[LiveEvent | None]:
        self.batches.append(len(batch))
        return await super()._store(batch)


async def test_concurrent_publishes_are_written_in_few_batches() -> None:
    log = CountingLog()
    stored = await asyncio.gather(*(log.append([new(f"e{i}")]) for i in range(500)))
    await log.close()
    assert sum(log.batches) == 500
    assert len(log.batches) <= 3  # the first alone, then whatever queued meanwhile
    ids = [event.id for (event,) in stored]
    assert len(set(ids)) == 500
    rows = await Event.filter(id__in=ids).order_by("id").values_list("id", "name")
    assert rows == [(event.id, event.name) for (event,) in stored]


async def test_events_are_published_live_in_id_order_as_stored(device_id: str) -> None:
    log = EventLog(InProcessBroker())
    by_device: list[LiveEvent] = []
    async with log.broker.subscribed(events.device_channel(device_id),
                                     lambda m: by_device.append(LiveEvent.decode(m))):
        stored = await asyncio.gather(*(log.append([new(f"e{i}", device_id, f"m{i}")])
                                        for i in range(20)))
    await log.close()
    assert by_device == sorted((event for (event,) in stored), key=lambda e: e.id)
    row = await Event.get(id=stored[0][0].id)
    assert LiveEvent.of(row) == stored[0][0]


async def test_a_retransmission_is_stored_once_even_in_the_same_batch(device_id: str) -> None:
    log = EventLog(InProcessBroker())
    live: list[bytes | None] = []
    async with log.broker.subscribed(events.device_channel(device_id), live.append):
        first, again = await log.append([new("t", device_id, "m1"), new("t", device_id, "m1")])
        (later,) = await log.append([new("t", device_id, "m1")])
    await log.close()
    assert first is not None and again is None and later is None
    assert await Event.filter(device_id=device_id).count() == 1
    assert len(live) == 1


async def test_a_failed_write_fails_its_batch_and_the_next_one_works(
    device_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(InProcessBroker())
    original = EventLog._insert_sqlite, EventLog._insert_postgres

    async def broken(*args: object) -> set[int]:
        raise OSError("disk on fire")

    monkeypatch.setattr(EventLog, "_insert_sqlite", broken)
    monkeypatch.setattr(EventLog, "_insert_postgres", broken)
    with pytest.raises(EventsUnavailable, match="could not be stored"):
        await log.append([new("t", device_id, "m1")])
    monkeypatch.setattr(EventLog, "_insert_sqlite", original[0])
    monkeypatch.setattr(EventLog, "_insert_postgres", original[1])
    (stored,) = await log.append([new("t", device_id, "m1")])
    await log.close()
    assert stored is not None
    assert await Event.filter(device_id=device_id).count() == 1


async def test_one_event_the_database_refuses_fails_alone(device_id: str) -> None:
    log = EventLog(InProcessBroker())
    refused = NewEvent(product_id=2**40, device_id=None, name="t", data="",
                       published_at=clock.now())
    results = await asyncio.gather(
        log.append([new("before", device_id, "m1")]),
        log.append([refused]),
        log.append([new("after", device_id, "m2")]),
        return_exceptions=True,
    )
    await log.close()
    assert isinstance(results[1], EventsUnavailable)
    assert sorted(await Event.filter(device_id=device_id).values_list("name", flat=True)) == [
        "after", "before"]


class CommittedCheckingBroker(InProcessBroker):
    """A broker that checks, from another connection, that what it is asked to publish is
    committed already."""

    def __init__(self) -> None:
        super().__init__()
        self.visible: list[bool] = []

    async def publish_many(self, messages):
        ids = {LiveEvent.decode(message).id for _, message in messages}
        # Outside the writer's transaction (if it were still in one): a fresh context.
        async def count() -> int:
            return await Event.filter(id__in=ids).count()

        committed = await asyncio.get_running_loop().create_task(
            count(), context=contextvars.Context())
        self.visible.append(committed == len(ids))
        return await super().publish_many(messages)


async def test_events_are_published_only_once_committed(device_id: str) -> None:
    broker = CommittedCheckingBroker()
    log = EventLog(broker)
    async with broker.subscribed(events.device_channel(device_id), lambda m: None):
        await asyncio.gather(*(log.append([new(f"e{i}", device_id, f"m{i}")])
                               for i in range(30)))
    await log.close()
    assert broker.visible and all(broker.visible)


async def test_closing_writes_what_is_queued() -> None:
    log = EventLog(InProcessBroker())
    pending = [asyncio.ensure_future(log.append([new(f"e{i}")])) for i in range(50)]
    await asyncio.sleep(0)  # queued, not yet written
    await log.close()
    assert all(task.done() for task in pending)
    assert await Event.all().count() == 50


async def test_a_caller_that_goes_away_still_gets_its_event_stored(device_id: str) -> None:
    log = EventLog(InProcessBroker())
    task = asyncio.ensure_future(log.append([new("t", device_id, "m1")]))
    await asyncio.sleep(0)
    task.cancel()
    await log.close()
    assert await Event.filter(device_id=device_id).count() == 1


async def test_ids_keep_growing_after_events_are_deleted() -> None:
    log = EventLog(InProcessBroker())
    (first,) = await log.append([new("a")])
    await Event.all().delete()
    (second,) = await log.append([new("b")])
    await log.close()
    assert first is not None and second is not None and second.id > first.id


async def test_old_events_are_pruned_in_batches(
    frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "PRUNE_BATCH", 3)
    now = frozen_clock.current
    old = [NewEvent(None, None, f"old{i}", "", now - timedelta(days=30, seconds=i + 1))
           for i in range(7)]
    kept = [NewEvent(None, None, "edge", "", now - timedelta(days=30)),
            NewEvent(None, None, "new", "", now)]
    await events.record(old + kept)
    assert await events.prune(30) == 7
    assert sorted(await Event.all().values_list("name", flat=True)) == ["edge", "new"]
    assert await events.prune(30) == 0
