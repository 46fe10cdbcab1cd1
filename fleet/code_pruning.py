"""Pruning single-use codes: authorization codes and claim codes, used or not, are deleted
once they have been expired for a while (`code_flow.CODE_RETENTION`, `CLAIM_CODE_RETENTION`),
in batches, at start-up and every `CODE_PRUNE_INTERVAL` seconds."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from auth import code_flow
from core import clock, periodic
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


def pruner(settings: Settings) -> contextlib.AbstractAsyncContextManager[None]:
    """Prune codes at start and every `CODE_PRUNE_INTERVAL` while the block runs."""

    async def prune_and_log() -> None:
        pruned = await prune()
        if any(pruned.values()):
            log.info("expired codes pruned", extra=pruned)

    return periodic.every(settings.code_prune_interval, prune_and_log, name="code-pruner",
                          failure="pruning codes failed", log=log)
