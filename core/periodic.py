"""Jobs an app process runs at start and then at a fixed interval for as long as it serves
(the pruners, the presence sweeper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable


@contextlib.asynccontextmanager
async def every(interval: float, job: Callable[[], Awaitable[None]], *, name: str,
                failure: str, log: logging.Logger) -> AsyncIterator[None]:
    """Run `job` at once (a restart after a crash catches up at once) and then every
    `interval` seconds while the block runs. A pass that fails is logged as `failure` with its
    traceback, and the next pass tries again (the database may be down for a while)."""

    async def forever() -> None:
        while True:
            try:
                await job()
            except Exception:  # the database is down: try again at the next pass
                log.exception(failure)
            await asyncio.sleep(interval)

    task = asyncio.create_task(forever(), name=name)
    try:
        yield
    finally:
        task.cancel()
        # `wait` rather than `await task`: our own cancellation must still propagate.
        await asyncio.wait([task])
