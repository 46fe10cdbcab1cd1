"""Sign-in throttling. Counters live in the database so every app process shares them."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from auth.errors import AuthCode
from core import clock
from core.errors import LimitReached
from core.settings import get_settings
from models.oauth import ThrottleCounter

# Consecutive failures for one account never expire on their own: only a success or the
# end of a lockout resets them.
_NO_WINDOW = datetime(1970, 1, 1, tzinfo=UTC)


class Throttled(LimitReached):
    code = AuthCode.TOO_MANY_ATTEMPTS

    def __init__(self, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"Too many failed sign-in attempts. Try again in {minutes} minutes.")
        self.retry_after = retry_after


class TooManyRequests(LimitReached):
    code = AuthCode.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"{message} Try again in {minutes} minutes.")
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
    # Tortoise types the rows of `values_list(flat=True)` as tuples; they are the values.
    locked: list[datetime] = await ThrottleCounter.filter(  # type: ignore[assignment]
        key__in=[keys.account, keys.address], locked_until__gt=now
    ).values_list("locked_until", flat=True)
    if locked:
        raise Throttled(math.ceil((max(locked) - now).total_seconds()))


async def begin_attempt(keys: SignInKeys) -> None:
    """Count a sign-in attempt as a failure before its password is checked.

    Counting first means parallel guesses cannot outrun the limit: an attempt whose count
    goes past it is refused without its password being checked. A success takes its count
    back (`record_success`)."""
    settings = get_settings()
    account = await _count(keys.account, settings.login_max_account_failures, None)
    address = await _count(
        keys.address, settings.login_max_address_failures, settings.login_address_window
    )
    if (
        account > settings.login_max_account_failures
        or address > settings.login_max_address_failures
    ):
        raise Throttled(settings.login_lockout)


async def record_success(keys: SignInKeys) -> None:
    """A correct password ends the run of consecutive failures for the account, and its
    attempt no longer counts against the address."""
    settings = get_settings()
    await ThrottleCounter.filter(key=keys.account).delete()
    await ThrottleCounter.filter(key=keys.address, failures__gt=0).update(
        failures=F("failures") - 1
    )
    # If this very attempt reached the address limit, the lockout it set is undone with it.
    await ThrottleCounter.filter(
        key=keys.address, failures__lt=settings.login_max_address_failures
    ).update(locked_until=None)


async def spend(keys: list[str], limit: int, window_seconds: int, message: str) -> None:
    """Count one request against each key (at most `limit` per `window_seconds` each); raise
    `TooManyRequests` once any key is past its limit. Every attempt counts, refused ones too,
    so hammering does not reopen the window."""
    now = clock.now()
    window_start = now - timedelta(seconds=window_seconds)
    over = False
    for key in keys:
        with contextlib.suppress(IntegrityError):
            await ThrottleCounter.get_or_create(
                key=key, defaults={"failures": 0, "window_started_at": now}
            )
        await ThrottleCounter.filter(key=key, window_started_at__lt=window_start).update(
            failures=0, window_started_at=now, locked_until=None
        )
        over = await _increment(key) > limit or over
    if over:
        started: list[datetime] = await ThrottleCounter.filter(  # type: ignore[assignment]
            key__in=keys
        ).values_list("window_started_at", flat=True)
        reopens = min(started) + timedelta(seconds=window_seconds)
        raise TooManyRequests(message, max(1, math.ceil((reopens - now).total_seconds())))


async def _count(key: str, limit: int, window_seconds: int | None) -> int:
    """Add a failure to `key`'s counter (locking it out at `limit`); the new count."""
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
    failures = await _increment(key)
    await ThrottleCounter.filter(key=key, failures__gte=limit, locked_until=None).update(
        locked_until=now + timedelta(seconds=settings.login_lockout)
    )
    return failures


async def _increment(key: str) -> int:
    """Add one failure and read the new count in one statement (UPDATE … RETURNING, which
    both PostgreSQL and SQLite ≥ 3.35 have), so concurrent attempts each see their own count."""
    db = ThrottleCounter._meta.db
    placeholder = "$1" if db.capabilities.dialect == "postgres" else "?"
    rows = await db.execute_query_dict(
        "UPDATE throttle_counters SET failures = failures + 1 "  # noqa: S608 - no user input
        f"WHERE key = {placeholder} RETURNING failures",
        [key],
    )
    return rows[0]["failures"]
