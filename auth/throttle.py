"""Sign-in throttling. Counters live in the database so every app process shares them."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from core import clock
from core.errors import DomainError
from core.settings import get_settings
from models.oauth import ThrottleCounter

# Consecutive failures for one account never expire on their own: only a success or the
# end of a lockout resets them.
_NO_WINDOW = datetime(1970, 1, 1, tzinfo=UTC)


class Throttled(DomainError):
    code = "TOO_MANY_ATTEMPTS"

    def __init__(self, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"Too many failed sign-in attempts. Try again in {minutes} minutes.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignInKeys:
    account: str
    address: str

    @classmethod
    def of(cls, account: str, address: str) -> SignInKeys:
        return cls(account=f"account:{account}", address=f"address:{address}")


async def check(keys: SignInKeys) -> None:
    """Raise `Throttled` while either the account or the address is locked out."""
    now = clock.now()
    locked = await ThrottleCounter.filter(
        key__in=[keys.account, keys.address], locked_until__gt=now
    ).values_list("locked_until", flat=True)
    if locked:
        raise Throttled(math.ceil((max(locked) - now).total_seconds()))


async def record_failure(keys: SignInKeys) -> None:
    settings = get_settings()
    await _count(keys.account, settings.login_max_account_failures, None)
    await _count(keys.address, settings.login_max_address_failures, settings.login_address_window)


async def record_success(keys: SignInKeys) -> None:
    """A correct password ends the run of consecutive failures for the account."""
    await ThrottleCounter.filter(key=keys.account).delete()


async def _count(key: str, limit: int, window_seconds: int | None) -> None:
    settings = get_settings()
    now = clock.now()
    window_start = now - timedelta(seconds=window_seconds) if window_seconds else _NO_WINDOW
    # Another process may create the row first: it exists then, which is all we need.
    with contextlib.suppress(IntegrityError):
        await ThrottleCounter.get_or_create(
            key=key, defaults={"failures": 0, "window_started_at": now}
        )
    # Each step is one conditional UPDATE, so concurrent processes never lose a count.
    await ThrottleCounter.filter(
        Q(key=key) & (Q(window_started_at__lt=window_start) | Q(locked_until__lte=now))
    ).update(failures=0, window_started_at=now, locked_until=None)
    await ThrottleCounter.filter(key=key).update(failures=F("failures") + 1)
    await ThrottleCounter.filter(key=key, failures__gte=limit, locked_until=None).update(
        locked_until=now + timedelta(seconds=settings.login_lockout)
    )
