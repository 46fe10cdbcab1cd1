"""Pruning single-use codes: authorization codes and claim codes, used or not, are deleted
once they have been expired for a while (`code_flow.CODE_RETENTION`, `CLAIM_CODE_RETENTION`),
in batches, at start-up and every `CODE_PRUNE_INTERVAL` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from tortoise.models import Model

from auth import code_flow
from core import clock
from core.settings import Settings
from models.customers import ClaimCode
from models.oauth import AuthorizationCode

log = logging.getLogger("devicecloud.codes")

PRUNE_BATCH = 10_000
# An expired or used claim code answers nothing once gone; kept a day for support questions
# ("the device says my code was used").
CLAIM_CODE_RETENTION = timedelta(hours=24)


async def _delete_expired(model: type[Model], cutoff: datetime) -> int:
    """Delete rows of `model` that expired before `cutoff`, `PRUNE_BATCH` at a time (short
    transactions that never hold the table for long). Returns how many."""
    total = 0
    while True:
        ids = await (
            model.filter(expires_at__lt=cutoff)
            .order_by("expires_at")
            .limit(PRUNE_BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            return total
        total += await model.filter(id__in=ids).delete()
        if len(ids) < PRUNE_BATCH:
            return total


async def prune() -> dict[str, int]:
    """Delete the codes past their retention; how many of each kind."""
    now = clock.now()
    return {
        "authorization_codes": await _delete_expired(
            AuthorizationCode, now - code_flow.CODE_RETENTION
        ),
        "claim_codes": await _delete_expired(ClaimCode, now - CLAIM_CODE_RETENTION),
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
