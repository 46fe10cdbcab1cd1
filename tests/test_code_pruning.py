"""Used and expired authorization and claim codes are pruned, in batches, once past their
retention (the clock is moved by hand)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from auth import tokens
from fleet import code_pruning
from models.customers import ClaimCode
from models.oauth import AuthorizationCode
from tests.support.accounts import make_user, service_client
from tests.support.customers import make_customer
from tests.support.servers import Clock
from tests.support.worlds import two_organizations

DAY = timedelta(hours=24)


def ages(now: datetime) -> list[tuple[str, datetime, bool]]:
    """Codes by name, expiry and whether used: three past the retention, two within it."""
    return [
        ("old-used", now - DAY - timedelta(seconds=1), True),
        ("old-unused", now - DAY - timedelta(seconds=2), False),
        ("older", now - DAY - timedelta(hours=5), True),
        ("edge", now - DAY, False),
        ("live", now + timedelta(seconds=30), False),
    ]


async def test_codes_past_their_retention_are_pruned_in_batches(
    frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(code_pruning, "PRUNE_BATCH", 2)
    user = await make_user("ada@example.com")
    client, _ = await service_client()
    customer = await make_customer((await two_organizations()).thermostat, "c@example.com")
    for name, expires_at, used in ages(frozen_clock.current):
        created_at = expires_at - timedelta(seconds=60)
        await AuthorizationCode.create(
            code_hash=tokens.digest(name), client=client, user=user, redirect_uri="x",
            scope="", code_challenge="c", code_challenge_method="S256",
            created_at=created_at, expires_at=expires_at,
            used_at=expires_at if used else None,
        )
        await ClaimCode.create(code_hash=tokens.digest(name), customer=customer,
                               created_at=created_at, expires_at=expires_at,
                               used_at=expires_at if used else None)

    assert await code_pruning.prune() == {"authorization_codes": 3, "claim_codes": 3}
    kept = sorted([tokens.digest("edge"), tokens.digest("live")])
    assert sorted(await AuthorizationCode.all().values_list("code_hash", flat=True)) == kept
    assert sorted(await ClaimCode.all().values_list("code_hash", flat=True)) == kept
    assert await code_pruning.prune() == {"authorization_codes": 0, "claim_codes": 0}

    frozen_clock.advance(hours=25)
    assert await code_pruning.prune() == {"authorization_codes": 2, "claim_codes": 2}
