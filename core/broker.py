"""Live fan-out: publish and subscribe on named channels, within one process or across many.

`InProcessBroker` (the embedded default) delivers to this process's subscribers only.
`RedisBroker` (`BROKER_URL=redis://…`) carries every message through Redis pub/sub, so a
message published by one app process reaches the subscribers of every other.

Subscribers are plain callbacks, called on the event loop for each message in the order the
channel received them. A callback must not block: it hands the message on (to a bounded queue)
and returns. A callback may also be called with `None`, meaning "messages on this channel may
have been lost" (the connection to Redis dropped): a live stream tells its client so.

A subscription is in effect once `subscribed()` has entered: a message published after that
is delivered. Live streams rely on it to subscribe first and read history second, without a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Sequence

log = logging.getLogger("devicecloud.broker")

Subscriber = Callable[[bytes | None], None]

# Each process's own channel: replies and commands addressed to this process.
PROCESS_ID = f"{os.getpid()}-{secrets.token_hex(4)}"


class BrokerUnavailable(Exception):
    """The broker could not carry a message (Redis is unreachable)."""


class Broker:
    """The local half of every broker: this process's subscribers, by channel."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = {}

    async def start(self) -> None:
        """Connect (the in-process broker has nothing to connect to)."""

    async def close(self) -> None:
        """Disconnect and forget every subscriber."""
        self._subscribers.clear()

    async def publish(self, channel: str, message: bytes) -> int:
        """Send `message` to every subscriber of `channel` in every process; the number of
        receivers (processes for Redis, callbacks in process)."""
        return await self.publish_many([(channel, message)])

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> int:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def subscribed(self, channel: str, callback: Subscriber) -> AsyncIterator[None]:
        """Deliver `channel`'s messages to `callback` while the block runs."""
        subscribers = self._subscribers.get(channel)
        if subscribers is None:
            subscribers = self._subscribers[channel] = set()
        subscribers.add(callback)
        try:
            await self._listen(channel)
            yield
        finally:
            subscribers.discard(callback)
            if not subscribers and self._subscribers.get(channel) is subscribers:
                del self._subscribers[channel]
                await self._unlisten(channel)

    def local_subscribers(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def _listen(self, channel: str) -> None:
        """Make sure this process receives `channel` (before returning)."""

    async def _unlisten(self, channel: str) -> None:
        """This process no longer needs `channel`."""

    def _deliver(self, channel: str, message: bytes | None) -> int:
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return 0
        for callback in list(subscribers):
            try:
                callback(message)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("a subscriber failed", extra={"channel": channel})
        return len(subscribers)


class InProcessBroker(Broker):
    """Fan-out within this process: the embedded default, for a single app process."""

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> int:
        return sum(self._deliver(channel, message) for channel, message in messages)


class RedisBroker(Broker):
    """Fan-out across processes through Redis pub/sub.

    One connection per process publishes; another, driven by one reader task, holds this
    process's subscriptions: Redis is subscribed to a channel while at least one local callback
    wants it, and every message is then fanned out locally. Channels are namespaced by
    `prefix`, so several deployments (or test runs) can share one Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        # Publishing must never hang the event writer: its connections time out. The
        # subscriber's connection blocks waiting for messages, so it has no read timeout.
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._subscriber = redis.Redis.from_url(url, socket_connect_timeout=5)
        self._prefix = prefix + ":"
        self._pubsub = self._subscriber.pubsub()
        self._changes = asyncio.Lock()  # subscription changes, one at a time
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._confirmed: set[str] = set()  # channels Redis confirmed it delivers to us
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(f"Redis at BROKER_URL is unreachable: {error}") from error
        # Always subscribed to this process's channel, so the reader always has a subscription;
        # in effect (confirmed by Redis) before the process serves anything.
        await self._pubsub.subscribe(self._prefix + "process:" + PROCESS_ID)
        async with asyncio.timeout(10):
            while True:
                message = await self._pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    self._confirmed.add(message["channel"].decode())
                    break
        self._reader = asyncio.create_task(self._read_forever(), name="broker-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
        await self._pubsub.aclose()
        await self._subscriber.aclose()
        await self._redis.aclose()
        await super().close()

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> int:
        from redis.exceptions import RedisError

        if not messages:
            return 0
        try:
            if len(messages) == 1:
                channel, message = messages[0]
                return int(await self._redis.publish(self._prefix + channel, message))
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, message in messages:
                    pipe.publish(self._prefix + channel, message)
                return sum(int(n) for n in await pipe.execute())
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(str(error)) from error

    async def _listen(self, channel: str) -> None:
        await self._change("subscribe", channel)

    async def _unlisten(self, channel: str) -> None:
        await self._change("unsubscribe", channel)

    async def _change(self, kind: str, channel: str) -> None:
        """Subscribe or unsubscribe, and wait until Redis confirms: from then on, messages
        published to the channel are (or are no longer) delivered here."""
        async with self._changes:
            wanted = channel in self._subscribers
            if (kind == "subscribe") != wanted:
                return  # the local subscribers changed while this waited
            name = self._prefix + channel
            if (kind == "subscribe") == (name in self._confirmed):
                return
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations[name] = confirmed
            try:
                if kind == "subscribe":
                    await self._pubsub.subscribe(name)
                else:
                    await self._pubsub.unsubscribe(name)
                async with asyncio.timeout(10):
                    await confirmed
            finally:
                self._confirmations.pop(name, None)

    async def _read_forever(self) -> None:
        from redis.exceptions import RedisError

        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # anything: this task must keep reading
                if isinstance(error, RedisError | OSError):
                    log.warning("lost the connection to Redis; reconnecting", exc_info=True)
                else:
                    log.exception("reading from Redis failed")
                self._all_lost()
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            kind = message["type"]
            name = message["channel"].decode()
            if kind in ("subscribe", "unsubscribe"):
                if kind == "subscribe":
                    self._confirmed.add(name)
                else:
                    self._confirmed.discard(name)
                confirmed = self._confirmations.get(name)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif kind == "message" and name.startswith(self._prefix):
                self._deliver(name[len(self._prefix) :], message["data"])

    def _all_lost(self) -> None:
        """Tell every subscriber that messages may have been lost while Redis was away."""
        for channel in list(self._subscribers):
            self._deliver(channel, None)


def create_broker(url: str, prefix: str) -> Broker:
    return RedisBroker(url, prefix) if url else InProcessBroker()
