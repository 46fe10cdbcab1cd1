"""The live broker, both kinds: the in-process one and the Redis one (a real Redis at
`TEST_REDIS_URL`, each test in its own channel namespace so that runs sharing it never meet).

Redis delivers asynchronously, so a test that a message did *not* reach a subscriber sends a
later message that must arrive on the same connection: once that one is in, the first would
have been too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import nullcontext

import pytest
import redis.asyncio as redis

from core.broker import Broker, BrokerUnavailable, InProcessBroker, RedisBroker
from tests.support.constants import TEST_REDIS_URL

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Inbox:
    """A subscriber that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[bytes | None] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: bytes | None) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int, within: float = 5) -> list[bytes | None]:
        """The messages, once there are at least `count`; fails after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while len(self.messages) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            pytest.fail(f"{len(self.messages)} messages within {within} s, not {count}: "
                        f"{self.messages}")
        return list(self.messages)


class Brokers:
    """Started brokers of one kind. For Redis, every broker made here shares one random
    channel prefix: two of them are two app processes of one deployment."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.prefix = f"test-{secrets.token_hex(6)}"
        self.started: list[Broker] = []

    async def make(self, prefix: str | None = None) -> Broker:
        if self.kind == "in_process":
            broker: Broker = InProcessBroker()
        else:
            broker = RedisBroker(TEST_REDIS_URL, prefix or self.prefix)
        try:
            await broker.start()
        except BrokerUnavailable as error:
            unreachable = str(error)
        else:
            self.started.append(broker)
            return broker
        pytest.fail(f"Redis at {TEST_REDIS_URL} (TEST_REDIS_URL) is unreachable; the broker tests "
                    f"need it: {unreachable}", pytrace=False)

    async def pair(self) -> tuple[Broker, Broker]:
        """A subscribing broker and a publishing one: two processes for Redis; one and the
        same broker in process (it reaches no other)."""
        subscriber = await self.make()
        return subscriber, (subscriber if self.kind == "in_process" else await self.make())


@pytest.fixture(params=["in_process", "redis"])
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[Brokers]:
    made = Brokers(request.param)
    yield made
    for broker in made.started:
        await broker.close()


@pytest.fixture
async def broker(brokers: Brokers) -> Broker:
    return await brokers.make()


async def test_every_subscriber_of_a_channel_gets_a_message_and_no_other_channel(
    broker: Broker,
) -> None:
    first, second, elsewhere = Inbox(), Inbox(), Inbox()
    async with (
        broker.subscribed("a", first),
        broker.subscribed("a", second),
        broker.subscribed("b", elsewhere),
    ):
        await broker.publish("a", b"one")
        await broker.publish("b", b"two")
        assert await elsewhere.wait_for(1) == [b"two"]
        # "two" came after "one" on the same connection: "one" has been handed out.
        assert await first.wait_for(1) == [b"one"]
        assert await second.wait_for(1) == [b"one"]
        assert elsewhere.messages == [b"two"]


async def test_publish_counts_the_receivers(brokers: Brokers) -> None:
    """In process: the callbacks. Through Redis: the processes (brokers), whatever their
    callbacks."""
    subscriber, publisher = await brokers.pair()
    assert await publisher.publish("a", b"nobody listens") == 0
    assert await publisher.publish_many([("a", b"x"), ("b", b"y")]) == 0
    assert await publisher.publish_many([]) == 0
    async with subscriber.subscribed("a", Inbox()), subscriber.subscribed("a", Inbox()):
        assert subscriber.local_subscribers("a") == 2
        per_message = 2 if brokers.kind == "in_process" else 1
        assert await publisher.publish("a", b"two callbacks") == per_message
        assert await publisher.publish_many([("a", b"x"), ("b", b"y"), ("a", b"z")]) == (
            2 * per_message
        )
        if brokers.kind == "redis":
            third = await brokers.make()
            async with third.subscribed("a", Inbox()):
                assert await publisher.publish("a", b"two processes") == 2


@pytest.mark.parametrize("leave", ["normally", "by an exception"])
async def test_leaving_subscribed_unsubscribes(brokers: Brokers, leave: str) -> None:
    subscriber, publisher = await brokers.pair()
    gone, sentinel = Inbox(), Inbox()
    async with subscriber.subscribed("b", sentinel):
        with pytest.raises(RuntimeError) if leave == "by an exception" else nullcontext():
            async with subscriber.subscribed("a", gone):
                assert await publisher.publish("a", b"while subscribed") == 1
                await gone.wait_for(1)
                if leave == "by an exception":
                    raise RuntimeError("the stream failed")
        assert subscriber.local_subscribers("a") == 0
        assert await publisher.publish("a", b"after leaving") == 0  # Redis agrees
        assert await publisher.publish("b", b"sentinel") == 1
        await sentinel.wait_for(1)
    assert gone.messages == [b"while subscribed"]
    assert subscriber.local_subscribers("b") == 0
    assert await publisher.publish("b", b"after leaving") == 0


async def test_one_subscriber_leaving_keeps_the_channel_for_the_others(broker: Broker) -> None:
    staying, leaving = Inbox(), Inbox()
    async with broker.subscribed("a", staying):
        async with broker.subscribed("a", leaving):
            await broker.publish("a", b"both")
            await leaving.wait_for(1)
        await broker.publish("a", b"one left")
        assert await staying.wait_for(2) == [b"both", b"one left"]
    assert leaving.messages == [b"both"]


async def test_a_message_published_once_subscribed_is_delivered(brokers: Brokers) -> None:
    """No gap: from the moment `subscribed()` has entered, every process's publish reaches the
    subscriber (streams subscribe first and read history second, relying on it)."""
    subscriber, publisher = await brokers.pair()
    for attempt in range(20):
        inbox = Inbox()
        channel = f"fresh-{attempt}"
        async with subscriber.subscribed(channel, inbox):
            assert await publisher.publish(channel, b"at once") == 1
            assert await inbox.wait_for(1) == [b"at once"]


async def test_two_redis_brokers_see_each_others_messages_and_no_other_namespace() -> None:
    made = Brokers("redis")
    try:
        first, second = await made.make(), await made.make()
        stranger = await made.make(prefix=f"test-{secrets.token_hex(6)}")  # another deployment
        at_first, at_second, at_stranger = Inbox(), Inbox(), Inbox()
        async with (
            first.subscribed("c", at_first),
            second.subscribed("c", at_second),
            stranger.subscribed("c", at_stranger),
        ):
            assert await first.publish("c", b"from first") == 2
            assert await second.publish("c", b"from second") == 2
            assert await at_first.wait_for(2) == [b"from first", b"from second"]
            assert await at_second.wait_for(2) == [b"from first", b"from second"]
            assert await stranger.publish("c", b"its own") == 1
            assert await at_stranger.wait_for(1) == [b"its own"]
            assert await at_first.wait_for(2) == [b"from first", b"from second"]
    finally:
        for broker in made.started:
            await broker.close()


async def test_messages_arrive_in_the_order_they_were_published(brokers: Brokers) -> None:
    subscriber, publisher = await brokers.pair()
    on_c, on_d = Inbox(), Inbox()
    async with subscriber.subscribed("c", on_c), subscriber.subscribed("d", on_d):
        for n in range(100):
            await publisher.publish("c", b"%d" % n)
        await publisher.publish_many(
            [message for n in range(100, 300) for message in (("c", b"%d" % n), ("d", b"%d" % n))]
        )
        assert await on_c.wait_for(300) == [b"%d" % n for n in range(300)]
        assert await on_d.wait_for(200) == [b"%d" % n for n in range(100, 300)]


async def test_a_failing_subscriber_does_not_starve_the_others(brokers: Brokers) -> None:
    subscriber, publisher = await brokers.pair()
    calls: list[bytes | None] = []

    def broken(message: bytes | None) -> None:
        calls.append(message)
        raise ValueError("a broken subscriber")

    before, after = Inbox(), Inbox()
    # Several broken ones around the good ones, whatever order the callbacks are called in.
    async with (
        subscriber.subscribed("a", broken),
        subscriber.subscribed("a", before),
        subscriber.subscribed("a", lambda message: broken(message)),
        subscriber.subscribed("a", after),
    ):
        for message in (b"1", b"2", b"3"):
            await publisher.publish("a", message)
        assert await before.wait_for(3) == [b"1", b"2", b"3"]
        assert await after.wait_for(3) == [b"1", b"2", b"3"]
        assert sorted(calls) == [b"1", b"1", b"2", b"2", b"3", b"3"]


async def test_a_redis_broker_that_cannot_reach_redis_says_so() -> None:
    broker = RedisBroker(UNREACHABLE, f"test-{secrets.token_hex(6)}")
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.start()
    assert str(raised.value).startswith("Redis at BROKER_URL is unreachable: ")
    with pytest.raises(BrokerUnavailable):
        await broker.publish("a", b"lost")
    await broker.close()


async def test_subscribers_are_told_when_the_redis_connection_drops() -> None:
    """Redis closing the subscribing connection: each subscriber gets `None` (messages may have
    been lost), the broker subscribes again by itself and delivery resumes."""
    made = Brokers("redis")
    admin = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        subscriber, publisher = await made.make(), await made.make()
        assert isinstance(subscriber, RedisBroker)
        on_a, on_b = Inbox(), Inbox()
        async with subscriber.subscribed("a", on_a), subscriber.subscribed("b", on_b):
            # The subscribing connection's address, to close exactly that one connection of
            # the Redis server (other test runs may be using it).
            connection = subscriber._pubsub.connection
            assert connection is not None
            host, port = connection._writer.get_extra_info("sockname")[:2]
            assert await admin.client_kill_filter(_id=None, addr=f"{host}:{port}") == 1
            assert await on_a.wait_for(1) == [None]
            assert await on_b.wait_for(1) == [None]
            deadline = asyncio.get_running_loop().time() + 10
            while await publisher.publish("a", b"again") == 0:
                assert asyncio.get_running_loop().time() < deadline, "never subscribed again"
                await asyncio.sleep(0.02)
            assert await on_a.wait_for(2) == [None, b"again"]
            assert on_b.messages == [None]
    finally:
        await admin.aclose()
        for broker in made.started:
            await broker.close()
