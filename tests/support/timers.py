"""A timer for subscription retransmissions (`fleet.subscriptions.timer`) that the test moves by
hand: nothing falls due until the test says so, however busy the machine."""

from __future__ import annotations

import asyncio


class ManualTimer:
    """Stands still until `advance`; feeds waiting on it then look at what fell due."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiting: set[asyncio.Event] = set()

    def time(self) -> float:
        return self.now

    async def wait(self, wake: asyncio.Event, due: float | None) -> None:
        if due is not None and due <= self.now:
            return
        self._waiting.add(wake)
        try:
            await wake.wait()
        finally:
            self._waiting.discard(wake)

    @property
    def waited_on(self) -> bool:
        """Whether a feed waits on the timer now: once a feed woken by `advance` has handled
        what fell due, it does again."""
        return bool(self._waiting)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        woken, self._waiting = self._waiting, set()
        for wake in woken:
            wake.set()
