"""Live streams (fleet/live.py) directly: resuming from history, slow subscribers, lost
messages, idling and access checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from auth import tokens
from core import clock
from core.errors import InvalidInput, NotFound, Unauthenticated
from core.settings import get_settings
from fleet import events, live, products, team
from fleet.events import LiveEvent, NewEvent
from fleet.live import UNKNOWN, EventStream, Missed
from models.organizations import Membership
from tests.support.accounts import access_token, organization_with_team


@dataclass
class Watcher:
    """A product and a member (the viewer) who may watch it, with a real token."""

    product_id: int
    token: str
    membership_id: int
    owner: object

    async def stream(self, *, after: int | None = None, prefix: str | None = None,
                     **settings: object) -> EventStream:
        principal = await tokens.authenticate(self.token)
        return await live.product_stream(
            principal, self.product_id, token=self.token, prefix=prefix, after=after,
            settings=get_settings().model_copy(update=settings),
        )


@pytest.fixture
async def watcher() -> Watcher:
    acme = await organization_with_team(roles=("OWNER", "VIEWER"))
    product = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    membership = await Membership.get(user_id=acme.users["VIEWER"].id)
    return Watcher(product.id, await access_token(acme.email("VIEWER")), membership.id,
                   acme.principals["OWNER"])


async def publish(watcher: Watcher, *names: str) -> list[LiveEvent]:
    """Store and publish server events of the watched product, one batch."""
    now = clock.now()
    stored = await events.record(
        [NewEvent(product_id=watcher.product_id, device_id=None, name=name, data=name,
                  published_at=now) for name in names]
    )
    return [event for event in stored if event is not None]


async def take(stream: EventStream, count: int) -> list[LiveEvent | Missed]:
    """The next `count` items, each within 10 seconds."""
    items = []
    for _ in range(count):
        item = await stream.next(within=10)
        assert item is not None, f"only {items} arrived"
        items.append(item)
    return items


async def test_a_slow_subscriber_is_told_what_it_missed_and_slows_nobody(watcher) -> None:
    slow = await watcher.stream(stream_buffer=3)
    fast = await watcher.stream()
    async with slow, fast:
        # The slow one reads nothing meanwhile: every publish completes all the same.
        async with asyncio.timeout(10):
            published = [event for name in "abcdefghij" for event in await publish(watcher, name)]
        assert await take(fast, 10) == published
        assert await take(slow, 4) == [*published[:3], Missed(7)]
        assert await slow.next(within=0) is None
        later = await publish(watcher, "k", "l")
        assert await take(slow, 2) == later
        assert await take(fast, 2) == later


async def test_a_gap_keeps_its_place_among_the_events(watcher) -> None:
    stream = await watcher.stream(stream_buffer=2)
    async with stream:
        first = await publish(watcher, "a", "b", "c", "d")
        assert await take(stream, 1) == first[:1]
        second = await publish(watcher, "e")  # a slot is free again: after the gap
        assert await take(stream, 3) == [first[1], Missed(2), second[0]]


async def publish_sized(watcher: Watcher, *specs: tuple[str, str]) -> list[LiveEvent]:
    """Store and publish server events (name, data) of the watched product, one batch."""
    now = clock.now()
    stored = await events.record(
        [NewEvent(product_id=watcher.product_id, device_id=None, name=name, data=data,
                  published_at=now) for name, data in specs]
    )
    return [event for event in stored if event is not None]


async def test_a_slow_subscriber_buffers_a_bounded_number_of_bytes(watcher) -> None:
    # Each event counts its name and its data in UTF-8 bytes; 100 bytes fit.
    stream = await watcher.stream(stream_buffer_bytes=100)
    async with stream:
        first = await publish_sized(
            watcher, ("a", "x" * 40), ("b", "é" * 20), ("c", "x" * 20), ("d", "x" * 17),
            ("e", ""))
        # a: 41, b: 41 (82), c: 21 would make 103 (dropped), d: 18 makes 100, e: 1 (dropped).
        assert await take(stream, 5) == [*first[:2], Missed(1), first[3], Missed(1)]
        assert await stream.next(within=0) is None
        # An event larger than the bound fits an empty buffer, and fills it.
        second = await publish_sized(watcher, ("f", "x" * 500), ("g", ""))
        assert await take(stream, 2) == [second[0], Missed(1)]
        # Read, its bytes are free again.
        third = await publish_sized(watcher, ("h", "x" * 99))
        assert await take(stream, 1) == third


async def test_messages_the_broker_lost_are_reported_as_an_unknown_number(watcher) -> None:
    stream = await watcher.stream()
    async with stream:
        before = await publish(watcher, "a")
        events.event_log().broker._deliver(events.product_channel(watcher.product_id), None)
        after = await publish(watcher, "b")
        assert await take(stream, 3) == [before[0], Missed(UNKNOWN), after[0]]


async def test_resuming_delivers_history_then_live_events_once_each(watcher) -> None:
    old = await publish(watcher, "temp/a", "humidity", "temp/b", "temp/c")
    stream = await watcher.stream(after=old[0].id, prefix="temp")
    async with stream:
        # Published after subscribing and before the history is read: in both, sent once.
        new = await publish(watcher, "temp/d", "TEMP/e", "temp/f")
        assert await take(stream, 4) == [old[2], old[3], new[0], new[2]]
        assert await stream.next(within=0) is None


async def test_history_repairs_what_overflowed_while_it_was_read(watcher) -> None:
    start = await publish(watcher, "start")
    stream = await watcher.stream(after=start[0].id, stream_buffer=2)
    async with stream:
        new = await publish(watcher, "a", "b", "c", "d", "e")  # three dropped live
        assert await take(stream, 5) == new
        assert await stream.next(within=0) is None


async def test_without_resume_only_live_events_come(watcher) -> None:
    await publish(watcher, "old")
    stream = await watcher.stream()
    async with stream:
        assert await stream.next(within=0.05) is None  # idle: the caller sends a keep-alive
        new = await publish(watcher, "new")
        assert await take(stream, 1) == new


async def test_the_stream_ends_when_the_member_leaves_the_team(watcher) -> None:
    stream = await watcher.stream(stream_access_check_interval=0.05)
    async with stream:
        assert await stream.next(within=0.1) is None  # checked, still a member
        await team.remove_team_member(watcher.owner, watcher.membership_id)
        with pytest.raises(NotFound, match=r"^No such product\.$"):
            await stream.next(within=10)


async def test_the_stream_ends_when_the_token_is_revoked(watcher) -> None:
    stream = await watcher.stream(stream_access_check_interval=0.05)
    async with stream:
        await tokens.revoke_token(await tokens.find_access_token_row(watcher.token))
        with pytest.raises(Unauthenticated) as ended:
            await stream.next(within=10)
        assert ended.value.code == "INVALID_TOKEN"


async def test_leaving_the_stream_unsubscribes(watcher) -> None:
    broker = events.event_log().broker
    channel = events.product_channel(watcher.product_id)
    stream = await watcher.stream()
    async with stream:
        assert broker.local_subscribers(channel) == 1
    assert broker.local_subscribers(channel) == 0


def test_event_ids_are_non_negative_64_bit_integers() -> None:
    assert live.parse_event_id("0", field="f") == 0
    assert live.parse_event_id(str(2**63 - 1), field="f") == 2**63 - 1
    for bad in ("", "-1", "1.5", "abc", " 1", "\u0661", str(2**63), "9" * 5000):
        with pytest.raises(InvalidInput):
            live.parse_event_id(bad, field="f")
