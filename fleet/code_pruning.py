"""Pruning single-use codes: authorization codes and claim codes, used or not, are deleted
once they have been expired for a while (`code_flow.CODE_RETENTION`, `CLAIM_CODE_RETENTION`),
in batches, at start-up and every `CODE_PRUNE_INTERVAL` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from auth import code_flow
from core import clock
from core.settings import Settings
from models import db
from models.customers import ClaimCode
from models.oauth import AuthorizationCode

log = logging.getLogger("devicecloud.codes")

PRUNE_BATCH = 10_000
# An expired or used claim code answers nothing once gone; kept a day for support questions
# ("the device says my code was used").
CLAIM_CODE_RETENTION = timedelta(hours=24)


async def prune() -> dict[str, int]:
    """Delete the codes past their retention; how many of each kind."""
    now = clock.now()
    return {
        "authorization_codes": await db.delete_before(
            AuthorizationCode, "expires_at", now - code_flow.CODE_RETENTION, PRUNE_BATCH),
        "claim_codes": await db.delete_before(
            ClaimCode, "expires_at", now - CLAIM_CODE_RETENTION, PRUNE_BATCH),
    }


@contextlib.asynccontextmanager
async def pruner(settings: Settings) -> AsyncIterator[None]:
    """Prune codes at start and every `CODE_PRUNE_INTERVAL` while the block runs."""

    async def prune_forever() -> None:
        while True:
            try:
                pruned = await prune()
                if any(pruned.values()):
                    log.info("expired codes pruned", extra=pruned)
            except Exception:  # the database is down: try again at the next pass
                log.exception("pruning codes failed")
            await asyncio.sleep(settings.code_prune_interval)

    task = asyncio.create_task(prune_forever(), name="code-pruner")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
