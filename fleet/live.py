"""Live event streams: a product's or a device's events as they are published, optionally
resuming after an event ID. SSE and GraphQL subscriptions both deliver them.

Gap-free resume: a stream subscribes to its broker channel first, then reads the history after
the resume ID, then delivers what arrived live meanwhile, skipping what history already
delivered. Events are published live in ID order (see `fleet.events.EventLog._store`), so an
event is either in the history read or in the live buffer, never in neither.

Slow subscribers: each stream has a buffer of at most `stream_buffer` events and
`stream_buffer_bytes` bytes of their names and data (UTF-8; an event's data may be 16 KiB, so the
count alone would let a slow stream hold 16 MB). The broker hands each event to it without
waiting; when the event does not fit the event is dropped, and the subscriber gets a `Missed`
item in the dropped events' place, with their number (`UNKNOWN` when the broker lost messages
without knowing how many). An event always fits an empty buffer, so that a stream whose byte
bound is below one large event still moves. Publishers and other subscribers never wait for it.

Caps: one access token holds at most `streams_per_token` open streams at once in this process
(SSE and GraphQL subscriptions together): opening one more raises `LimitReached` until one of
them ends.

Access: every `stream_access_check_interval` seconds the stream authenticates its bearer token
again and checks that its principal may still watch (the same check as when it opened, which
reads the device afresh). When not (the token was revoked or expired, the member left the team,
the device left the product, or its customer lost it), the stream raises the domain error
(`Unauthenticated` or `NotFound`) and the transport ends it.

A device's stream carries the events of the product the device was in when it opened. When the
device moves to another product, the stream ends with `DeviceMoved` (at its next access check,
or at once when an event of the device in another product arrives): the subscriber opens it
again, under the access the new product gives, rather than silently following it there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from tortoise.queryset import QuerySet

from auth import tokens
from auth.errors import AuthCode
from auth.principals import AnyPrincipal
from core.errors import Conflict, InvalidInput, LimitReached, Unauthenticated
from core.settings import Settings
from fleet import access
from fleet.errors import FleetCode
from fleet.events import (
    EventFilter,
    LiveEvent,
    check_prefix,
    device_channel,
    device_log,
    event_log,
    product_channel,
    product_log,
)
from models.devices import Event

UNKNOWN = -1  # `Missed.count` when the broker lost an unknown number of events
HISTORY_PAGE = 500
MAX_EVENT_ID = 2**63 - 1  # event IDs are 64-bit

class DeviceMoved(Conflict):
    """The device of a stream moved to another product: the stream ends."""

    code = FleetCode.DEVICE_MOVED


# The streams open in this process, per access token (by its digest).
_open_streams: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class Missed:
    """The subscriber did not get `count` events at this point of its stream (`UNKNOWN`: an
    unknown number)."""

    count: int


StreamItem = LiveEvent | Missed


@dataclass(slots=True)
class _Gap:
    """Events dropped at this place of a stream's buffer: how many, and their first and last
    IDs (`unknown`: the broker lost some it cannot name)."""

    count: int = 0
    first_id: int = 0
    last_id: int = 0
    unknown: bool = False

    def add(self, event_id: int | None) -> None:
        if event_id is None:
            self.unknown = True
            return
        if not self.count:
            self.first_id = event_id
        self.count += 1
        self.last_id = event_id

    def missed_after(self, cursor: int | None) -> Missed | None:
        """What the subscriber missed here, given that it got every event up to `cursor`
        (from history): None if it missed nothing."""
        if self.unknown:
            return Missed(UNKNOWN)
        if cursor is None or self.first_id > cursor:
            return Missed(self.count)
        if self.last_id <= cursor:
            return None
        return Missed(UNKNOWN)  # history delivered some of them, and nobody knows how many


@dataclass(frozen=True, slots=True)
class _Source:
    """What a stream watches: its channel, its history, the product its events belong to, and
    the access check to repeat."""

    channel: str
    history: QuerySet[Event]
    product_id: int | None
    may_watch: Callable[[AnyPrincipal], Awaitable[object]]
    device_id: str | None = None  # a device's stream: it ends when the device moves


class EventStream:
    """A live stream of events; see the module docstring. Open it with `async with` (which
    subscribes), then iterate over its items, or call `next` to wait a limited time."""

    def __init__(
        self,
        source: _Source,
        *,
        token: str | None,
        prefix: str | None,
        after: int | None,
        settings: Settings,
    ) -> None:
        self._source = source
        self._token = token
        self._prefix = prefix or ""
        self._cursor = after  # the last event ID delivered; None: none yet, live only
        self._catching_up = after is not None
        self._page: deque[LiveEvent] = deque()
        self._buffer: deque[LiveEvent | _Gap] = deque()
        self._buffered = 0  # events (not gaps) in the buffer
        self._buffered_bytes = 0  # their `_size`s
        self._capacity = settings.stream_buffer
        self._capacity_bytes = settings.stream_buffer_bytes
        self._check_interval = settings.stream_access_check_interval
        self._check_at = 0.0
        self._arrived = asyncio.Event()
        self._exit = contextlib.AsyncExitStack()
        self._streams_per_token = settings.streams_per_token

    async def __aenter__(self) -> EventStream:
        """Take one of the token's places (`LimitReached` when it has none left), then
        subscribe."""
        key = tokens.digest(self._token) if self._token else None
        if key is not None:
            if _open_streams[key] >= self._streams_per_token:
                raise LimitReached(
                    f"This access token has {self._streams_per_token} event streams open, the "
                    "most at once; close one first."
                )
            _open_streams[key] += 1
        broker = event_log().broker
        try:
            await self._exit.enter_async_context(
                broker.subscribed(self._source.channel, self._receive)
            )
        except BaseException:
            if key is not None:
                _close_stream(key)
            raise
        if key is not None:
            # Given back before unsubscribing (exits run last in, first out): once a stream has
            # left its channel, its place is free.
            self._exit.callback(_close_stream, key)
        self._check_at = asyncio.get_running_loop().time() + self._check_interval
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._exit.aclose()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamItem:
        item = await self.next()
        assert item is not None  # without `within`, `next` waits for an item
        return item

    async def next(self, within: float | None = None) -> StreamItem | None:
        """The next item, or None if none came within `within` seconds (waiting is not
        cancelled midway through a history read). Raises the domain error once the subscriber
        may no longer watch."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while True:
            if loop.time() >= self._check_at:
                await self._check_access()
            item = await self._ready()
            if item is not None:
                return item
            if deadline is not None and loop.time() >= deadline:
                return None
            wake_at = self._check_at if deadline is None else min(deadline, self._check_at)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(wake_at):
                    await self._arrived.wait()

    def _wanted(self, event: LiveEvent) -> bool:
        return event.product_id == self._source.product_id and event.name.startswith(
            self._prefix
        )

    def _receive(self, message: bytes | None) -> None:
        """The broker's callback: buffer a wanted event, or note a gap. Never waits."""
        if message is None:
            self._gap().add(None)
        else:
            event = LiveEvent.decode(message)
            if not self._wanted(event):
                if self._source.device_id is not None and event.product_id is not None:
                    self._check_at = 0.0  # the device publishes elsewhere: moved? check now
                    self._arrived.set()
                return
            size = _size(event)
            if self._buffered and (
                self._buffered >= self._capacity
                or self._buffered_bytes + size > self._capacity_bytes
            ):
                self._gap().add(event.id)
            else:
                self._buffer.append(event)
                self._buffered += 1
                self._buffered_bytes += size
        self._arrived.set()

    def _unbuffered(self, event: LiveEvent) -> None:
        """`event` left the buffer: count it out."""
        self._buffered -= 1
        self._buffered_bytes -= _size(event)

    def _gap(self) -> _Gap:
        """The gap at the end of the buffer, opened if there is none."""
        if not self._buffer or not isinstance(self._buffer[-1], _Gap):
            self._buffer.append(_Gap())
        gap = self._buffer[-1]
        assert isinstance(gap, _Gap)
        return gap

    async def _ready(self) -> StreamItem | None:
        """The next item that needs no waiting: history first (a page at a time), then the
        buffer, skipping what history delivered."""
        if self._catching_up and not self._page:
            await self._read_history()
        if self._page:
            event = self._page.popleft()
            self._cursor = event.id
            return event
        while self._buffer:
            item = self._buffer.popleft()
            if isinstance(item, _Gap):
                missed = item.missed_after(self._cursor)
                if missed is not None:
                    return missed
                continue
            self._unbuffered(item)
            if self._cursor is None or item.id > self._cursor:
                self._cursor = item.id
                return item
        self._arrived.clear()
        return None

    async def _read_history(self) -> None:
        """Read the next page of history after the cursor. The buffered events it covers are
        dropped at once, so the buffer holds only what arrived since this read."""
        rows = await (
            self._source.history.filter(id__gt=self._cursor).order_by("id").limit(HISTORY_PAGE)
        )
        page = [LiveEvent.of(row) for row in rows]
        # The same test as live events: LIKE is case-insensitive on SQLite.
        self._page.extend(event for event in page if self._wanted(event))
        self._catching_up = len(page) == HISTORY_PAGE
        covered = page[-1].id if page else self._cursor
        while self._buffer and self._covers(covered, self._buffer[0]):
            item = self._buffer.popleft()
            if isinstance(item, LiveEvent):
                self._unbuffered(item)

    @staticmethod
    def _covers(history_id: int | None, item: LiveEvent | _Gap) -> bool:
        """History up to `history_id` holds the buffered event, or every event of the gap."""
        if isinstance(item, _Gap):
            return not item.unknown and history_id is not None and item.last_id <= history_id
        return history_id is not None and item.id <= history_id

    async def _check_access(self) -> None:
        """Authenticate the token again and check that its principal may still watch."""
        principal = await tokens.authenticate(self._token) if self._token else None
        if self._token and principal is None:
            raise Unauthenticated(
                "The access token is invalid, expired or revoked.", code=AuthCode.INVALID_TOKEN
            )
        await self._source.may_watch(principal)
        self._check_at = asyncio.get_running_loop().time() + self._check_interval


def _close_stream(key: str) -> None:
    _open_streams[key] -= 1
    if not _open_streams[key]:
        del _open_streams[key]


def _size(event: LiveEvent) -> int:
    """What a buffered event counts against `stream_buffer_bytes`: its name (ASCII) and its
    data, in UTF-8 bytes."""
    return len(event.name) + len(event.data.encode())


def parse_event_id(value: str, *, field: str) -> int:
    """An event ID given as text (SSE's `Last-Event-ID`), or `InvalidInput`."""
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or int(value) > MAX_EVENT_ID:
        raise InvalidInput(
            "An event ID is a non-negative integer.", field=field, code=FleetCode.INVALID_EVENT_ID
        )
    return int(value)


async def product_stream(
    principal: AnyPrincipal,
    id_or_slug: int | str,
    *,
    token: str | None,
    settings: Settings,
    prefix: str | None = None,
    after: int | None = None,
) -> EventStream:
    """A stream of a product's events, for whoever may watch it (`product_log`; anyone
    else gets `NotFound`), re-checked with `token` (the principal's bearer token). With
    `after`, history after that event ID comes first."""
    prefix = check_prefix(prefix)
    product, history = await product_log(principal, id_or_slug, EventFilter(prefix=prefix))
    source = _Source(
        channel=product_channel(product.id),
        history=history,
        product_id=product.id,
        may_watch=lambda again: access.watchable_product(again, product.id),
    )
    return EventStream(source, token=token, prefix=prefix, after=after, settings=settings)


async def device_stream(
    principal: AnyPrincipal,
    device_id: str,
    *,
    token: str | None,
    settings: Settings,
    prefix: str | None = None,
    after: int | None = None,
) -> EventStream:
    """A stream of a device's events, for whoever may watch it (`device_log`), as
    `product_stream`, with the history `device_log` gives (live events: those of
    its current product). It ends with `DeviceMoved` once the device is in another product."""
    prefix = check_prefix(prefix)
    device, history = await device_log(principal, device_id, EventFilter(prefix=prefix))

    async def may_watch(again: AnyPrincipal) -> None:
        if (await access.watchable_device(again, device.id)).product_id != device.product_id:
            raise DeviceMoved(
                "The device moved to another product; open its stream again.", field="deviceId"
            )

    source = _Source(
        channel=device_channel(device.id),
        history=history,
        product_id=device.product_id,
        may_watch=may_watch,
        device_id=device.id,
    )
    return EventStream(source, token=token, prefix=prefix, after=after, settings=settings)
