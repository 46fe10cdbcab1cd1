"""Device subscriptions: the event-name prefixes a connected device subscribed to, and the
delivery of its product's matching events to it (docs/device-protocol.md, "Subscriptions").

A `Feed` is one connection's subscriptions; it ends with the connection. While it has a
prefix it listens on its product's live channel (fleet/events.py publishes every stored event
there, in whichever process wrote it, through the broker), so events published in any app
process reach the device. The broker's callback only appends to a bounded queue: the event
writer never waits for a device. One task per feed sends the queued events, and sends again,
once, those not acknowledged within `device_delivery_ack_timeout`, then drops them. When they
fall due is measured by the module's `timer` (the event loop's time; tests replace it with one
they move by hand). `Feed._send` is the one place a delivery (first or retransmitted) leaves
the cloud.

Metering: each delivery sent, a retransmission included, is one `SUBSCRIPTION_DELIVERY` of
the event's name and size (`core.metering`), committed before its frame is written: a frame
the device may have received is always counted. If it cannot be recorded (the database is
down), the frame is not sent; the delivery is then as one the device did not acknowledge: the
feed tries it once more at its retransmission time, and then drops it.

While the organization's devices are paused (`fleet.pauses.pause_of`), deliveries that fall due
are withheld: neither sent nor counted, and not sent later either. The first one withheld in a
pause makes the feed tell the device (`paused`) once, with the pause's end; after it,
delivering resumes with the events stored from then on.

Who receives what: a device receives the events of the product it is one of the own devices of
(imported, or approved from its quarantine), private and public alike (as the product's live
log shows them to whoever may watch it), except its own. A device in a quarantine, denied, or
in no product receives nothing: a quarantined device is not yet the product's, and an event
of a device in no product belongs to no product's log, so no other device shares it. The
product is read when the device subscribes and again at most every `RECEIVER_REFRESH` while
events arrive, as the team may move, approve or deny the device meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core import clock
from core.errors import LimitReached
from core.metering import Metered, OperationKind, event_size, meter
from core.settings import Settings
from fleet.events import LiveEvent, check_prefix, event_log, product_channel
from fleet.pauses import Pause, pause_of
from models.devices import Device, Quarantine

log = logging.getLogger("devicecloud.subscriptions")

MAX_SUBSCRIPTIONS = 4
# How long a feed trusts what it knows of its device's product (the team may move it).
RECEIVER_REFRESH = timedelta(seconds=5)


class Timer:
    """When retransmissions fall due: the event loop's time."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, wake: asyncio.Event, due: float | None) -> None:
        """Return once `wake` is set or the time reaches `due` (None: no time)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(due):
                await wake.wait()


# What every feed made from now on measures its retransmissions by.
timer = Timer()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event sent to one device, under the ID the device acknowledges."""

    id: int
    event: LiveEvent


@dataclass(slots=True)
class _Waiting:
    delivery: Delivery
    due: float  # the timer's time of the retransmission, or of the drop after it
    retransmitted: bool = False


async def receiving_product(device_id: str) -> tuple[int | None, int | None]:
    """The product whose live channel the device's feed listens on (its product, even while
    quarantined, so that an approval shows within `RECEIVER_REFRESH`) and the product whose
    events it receives (None unless it is one of that product's own devices)."""
    rows = await Device.filter(id=device_id).values_list("product_id", "quarantine")
    if not rows:
        return None, None
    product_id, quarantine = rows[0]
    if quarantine == Quarantine.DENIED:
        return None, None
    return product_id, product_id if quarantine == Quarantine.NONE else None


class Feed:
    """One connection's subscriptions and deliveries; see the module docstring. `send` writes
    a delivery's frame to the device; `paused` tells the device its deliveries are withheld
    until the pause's end (once a pause); `new_id` gives an ID unused among the connection's
    own requests. Close it when the connection ends."""

    def __init__(
        self,
        device_id: str,
        *,
        send: Callable[[Delivery], Awaitable[None]],
        paused: Callable[[Pause], Awaitable[None]],
        new_id: Callable[[], int],
        settings: Settings,
    ) -> None:
        self.device_id = device_id
        self.prefixes: list[str] = []
        self.dropped = 0  # events that did not fit the queue
        self._send_frame = send
        self._tell_paused = paused
        self._paused_until: datetime | None = None  # the pause the device was told of
        self._new_id = new_id
        self._settings = settings
        self._timer = timer
        self._queue: deque[LiveEvent] = deque()
        self._waiting: dict[int, _Waiting] = {}
        self._wake = asyncio.Event()
        self._channel_product: int | None = None
        self._receiving: int | None = None
        self._checked_at: datetime = clock.now()
        self._listening: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, prefix: str) -> None:
        """Add a prefix (`InvalidInput` for a bad one, `LimitReached` beyond
        `MAX_SUBSCRIPTIONS`); subscribing again to one already held takes no new place. Every
        subscribe reads the device's product again."""
        prefix = check_prefix(prefix) or ""
        if prefix not in self.prefixes:
            if len(self.prefixes) >= MAX_SUBSCRIPTIONS:
                raise LimitReached(
                    f"A device holds at most {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe "
                    "first."
                )
            self.prefixes.append(prefix)
        await self._refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"feed-{self.device_id}")

    async def unsubscribe(self, prefix: str) -> None:
        """Remove a prefix (`InvalidInput` for a bad one); one not held changes nothing.
        Queued events no prefix matches any more are not sent."""
        prefix = check_prefix(prefix) or ""
        if prefix in self.prefixes:
            self.prefixes.remove(prefix)
        if not self.prefixes:
            await self._listen(None)

    def acknowledge(self, delivery_id: int) -> bool:
        """The device acknowledged a delivery: it is not sent again. False if none with this
        ID was waiting (acknowledged already, dropped, or never sent)."""
        return self._waiting.pop(delivery_id, None) is not None

    async def close(self) -> None:
        """The connection ended: stop delivering and leave the channel."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self._listen(None)
        self._queue.clear()
        self._waiting.clear()

    def _matches(self, event: LiveEvent) -> bool:
        return (
            event.device_id != self.device_id
            and event.product_id is not None
            and event.product_id == self._receiving
            and any(event.name.startswith(prefix) for prefix in self.prefixes)
        )

    def _receive(self, message: bytes | None) -> None:
        """The broker's callback: queue the event if it may be wanted. Never waits; beyond
        `stream_buffer` queued events, the newest is dropped."""
        if message is None:
            return  # the broker lost messages: deliveries are at most once, nothing to resend
        event = LiveEvent.decode(message)
        if event.device_id == self.device_id:
            return
        if len(self._queue) >= self._settings.stream_buffer:
            self.dropped += 1
            return
        self._queue.append(event)
        self._wake.set()

    async def _refresh(self) -> None:
        """Read the device's product again and listen on its channel."""
        channel_product, self._receiving = await receiving_product(self.device_id)
        self._checked_at = clock.now()
        await self._listen(channel_product if self.prefixes else None)

    async def _listen(self, product_id: int | None) -> None:
        if product_id == self._channel_product and (product_id is None) == (
            self._listening is None
        ):
            return
        if self._listening is not None:
            await self._listening.aclose()
            self._listening = None
        self._channel_product = product_id
        if product_id is not None:
            stack = contextlib.AsyncExitStack()
            await stack.enter_async_context(
                event_log().broker.subscribed(product_channel(product_id), self._receive)
            )
            self._listening = stack

    async def _run(self) -> None:
        """Send queued events and retransmissions as they fall due, one at a time."""
        timeout = self._settings.device_delivery_ack_timeout
        while True:
            now = self._timer.time()
            for delivery_id, waiting in list(self._waiting.items()):
                if waiting.due > now:
                    continue
                if waiting.retransmitted:
                    del self._waiting[delivery_id]  # sent twice, never acknowledged: dropped
                    continue
                waiting.retransmitted = True
                waiting.due = self._timer.time() + timeout
                await self._send(waiting.delivery)
            if self._queue:
                event = self._queue.popleft()
                if clock.now() - self._checked_at >= RECEIVER_REFRESH:
                    try:
                        await self._refresh()
                    except Exception:  # the database or broker is down: try at the next event
                        self._checked_at = clock.now()
                        log.exception("reading a subscribed device's product failed",
                                      extra={"device": self.device_id})
                if self._matches(event):
                    delivery = Delivery(self._new_id(), event)
                    self._waiting[delivery.id] = _Waiting(delivery,
                                                          self._timer.time() + timeout)
                    await self._send(delivery)
                continue
            self._wake.clear()
            await self._timer.wait(
                self._wake, min((w.due for w in self._waiting.values()), default=None))

    async def _send(self, delivery: Delivery) -> None:
        """Send one delivery to the device, the first time or again, once its data operations
        are committed; withheld while paused (see the module docstring)."""
        event = delivery.event
        assert event.product_id is not None  # `_matches`: only a product's events
        pause = pause_of(event.product_id)
        if pause is not None:
            self._waiting.pop(delivery.id, None)
            if pause.until != self._paused_until:
                self._paused_until = pause.until
                await self._tell_paused(pause)
            return
        self._paused_until = None
        usage = Metered(OperationKind.SUBSCRIPTION_DELIVERY, event.product_id, self.device_id,
                        clock.now(), event.name, event_size(event.data))
        try:
            await meter().record([usage])
        except Exception:
            log.exception("recording a delivery failed; it was not sent",
                          extra={"device": self.device_id})
            return
        await self._send_frame(delivery)
