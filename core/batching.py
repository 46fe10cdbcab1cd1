"""Writing in batches: callers hand over items and wait for each one's result, while one task
writes whatever has queued up since its last write as one batch. So a burst of callers becomes
a few writes, and a lone caller is written at once. The event log and the usage ledger write
this way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    done: asyncio.Future[Result]


class BatchWriter(Generic[Item, Result]):
    """`write` stores a batch (at most `limit` items; None: no limit) and returns each item's
    result in order. A batch that fails is split in halves and written again, so an item the
    database refuses fails alone, not its neighbours: its caller gets `failed(item, error)`,
    which says what went wrong (and logs it)."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        failed: Callable[[Item, Exception], Exception],
        name: str,
        limit: int | None = None,
    ) -> None:
        self._write_batch = write
        self._failed = failed
        self._name = name
        self._limit = limit
        self._queue: list[_Pending[Item, Result]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """How many items wait for the writer."""
        return len(self._queue)

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue `items` and return their results once their batches are written (raises what
        `failed` says for an item that could not be)."""
        loop = asyncio.get_running_loop()
        pending = [_Pending[Item, Result](item, loop.create_future()) for item in items]
        self._queue.extend(pending)
        if self._writer is None or self._writer.done():
            # A context of its own: the writer must not inherit a caller's transaction.
            self._writer = asyncio.create_task(
                self._write_forever(), name=self._name, context=contextvars.Context()
            )
        self._wake.set()
        # Shielded: a caller that goes away (a device disconnecting) leaves its items queued.
        return [await asyncio.shield(each.done) for each in pending]

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        await asyncio.wait([self._writer])
        self._writer = None
        self._closing = False

    async def _write_forever(self) -> None:
        while not (self._closing and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                cut = len(self._queue) if self._limit is None else self._limit
                batch, self._queue = self._queue[:cut], self._queue[cut:]
                await self._write(batch)

    async def _write(self, batch: list[_Pending[Item, Result]]) -> None:
        try:
            results = await self._write_batch([each.item for each in batch])
        except Exception as error:
            if len(batch) > 1:
                middle = len(batch) // 2
                await self._write(batch[:middle])
                await self._write(batch[middle:])
                return
            if not batch[0].done.done():
                batch[0].done.set_exception(self._failed(batch[0].item, error))
            return
        for each, result in zip(batch, results, strict=True):
            if not each.done.done():
                each.done.set_result(result)
