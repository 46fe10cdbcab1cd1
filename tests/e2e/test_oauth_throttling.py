"""Sign-in throttling of the password grant: per account (10 consecutive failures) and per
client address (100 failures in 5 minutes), both locking out for 30 minutes, with counters kept
in the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from auth import accounts
from models.oauth import ThrottleCounter, Token
from tests.support.accounts import password_login
from tests.support.constants import PASSWORD
from tests.support.oauth import (
    BAD_CREDENTIALS,
    WRONG_PASSWORD,
    assert_oauth_error,
    assert_token_response,
)

EMAIL = "ada@example.com"
ACCOUNT_KEY = f"account:{EMAIL}"
ADDRESS_KEY = "address:127.0.0.1"  # the live server sees the test client's loopback address
LOCKOUT = 1800
LOCKED_OUT = "Too many failed sign-in attempts. Try again in 30 minutes."


async def fail(http: httpx.AsyncClient, email: str = EMAIL) -> None:
    response = await password_login(http, email, WRONG_PASSWORD)
    assert_oauth_error(response, 400, "invalid_grant", BAD_CREDENTIALS)


def assert_locked_out(response: httpx.Response, retry_after: int) -> None:
    assert_oauth_error(response, 429, "too_many_attempts")
    assert response.headers["retry-after"] == str(retry_after)


async def test_ten_wrong_passwords_lock_the_account_for_30_minutes(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)
    await accounts.sign_up("bob@example.com", PASSWORD)

    for attempt in range(10):
        # The email is normalised, so changing its case or padding it does not dodge the count.
        await fail(http, EMAIL if attempt % 2 else "  ADA@Example.COM ")

    counter = await ThrottleCounter.get(key=ACCOUNT_KEY)
    assert counter.failures == 10
    assert counter.locked_until == frozen_clock.current + timedelta(seconds=LOCKOUT)

    # Locked: even the right password is refused, and nothing is issued.
    locked = await password_login(http, EMAIL, PASSWORD)
    assert_locked_out(locked, LOCKOUT)
    assert locked.json()["error_description"] == LOCKED_OUT
    assert await Token.all().count() == 0
    # More wrong guesses while locked are not even checked, and do not extend the lockout.
    assert_locked_out(await password_login(http, EMAIL, WRONG_PASSWORD), LOCKOUT)
    assert (await ThrottleCounter.get(key=ACCOUNT_KEY)).failures == 10
    # The lockout is the account's, not the address's.
    assert_token_response(await password_login(http, "bob@example.com", PASSWORD))

    frozen_clock.advance(seconds=LOCKOUT - 1)
    assert_locked_out(await password_login(http, EMAIL, PASSWORD), 1)

    frozen_clock.advance(seconds=1)
    assert_token_response(await password_login(http, EMAIL, PASSWORD))
    assert not await ThrottleCounter.exists(key=ACCOUNT_KEY)


async def test_a_success_resets_the_consecutive_failures(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)

    for _ in range(9):
        await fail(http)
    assert (await ThrottleCounter.get(key=ACCOUNT_KEY)).failures == 9
    assert_token_response(await password_login(http, EMAIL, PASSWORD))
    assert not await ThrottleCounter.exists(key=ACCOUNT_KEY)

    for _ in range(9):
        await fail(http)  # without the reset, the second of these would have locked it

    counter = await ThrottleCounter.get(key=ACCOUNT_KEY)
    assert (counter.failures, counter.locked_until) == (9, None)
    assert_token_response(await password_login(http, EMAIL, PASSWORD))


async def test_failures_for_an_unknown_account_are_counted_too(http, frozen_clock):
    for _ in range(10):
        await fail(http, "nobody@example.com")

    counter = await ThrottleCounter.get(key="account:nobody@example.com")
    assert counter.failures == 10
    assert_locked_out(await password_login(http, "nobody@example.com", PASSWORD), LOCKOUT)


async def test_100_failures_from_one_address_in_5_minutes_lock_the_address(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)

    # 100 different (non-existent) accounts: no account reaches its own limit.
    for i in range(50):
        await fail(http, f"nobody{i}@example.com")
    frozen_clock.advance(minutes=4, seconds=59)
    for i in range(50, 100):
        await fail(http, f"nobody{i}@example.com")

    counter = await ThrottleCounter.get(key=ADDRESS_KEY)
    assert counter.failures == 100
    assert counter.locked_until == frozen_clock.current + timedelta(seconds=LOCKOUT)
    assert (await ThrottleCounter.get(key="account:nobody99@example.com")).failures == 1

    # The 101st attempt is refused, even for an account that never failed, with the right
    # password.
    locked = await password_login(http, EMAIL, PASSWORD)
    assert_locked_out(locked, LOCKOUT)
    assert locked.json()["error_description"] == LOCKED_OUT
    assert not await ThrottleCounter.exists(key=ACCOUNT_KEY)
    assert await Token.all().count() == 0

    frozen_clock.advance(seconds=LOCKOUT)
    assert_token_response(await password_login(http, EMAIL, PASSWORD))


async def test_failures_older_than_5_minutes_do_not_count_for_the_address(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)
    for i in range(99):
        await fail(http, f"nobody{i}@example.com")

    frozen_clock.advance(minutes=5, seconds=1)
    # With the old 99 still counted, the first of these would lock the address and the
    # second would get 429.
    for i in range(99, 101):
        await fail(http, f"nobody{i}@example.com")

    counter = await ThrottleCounter.get(key=ADDRESS_KEY)
    assert (counter.failures, counter.locked_until) == (2, None)
    assert_token_response(await password_login(http, EMAIL, PASSWORD))


async def test_parallel_guesses_cannot_outrun_the_account_limit(http, frozen_clock):
    await accounts.sign_up(EMAIL, PASSWORD)
    guesses = await asyncio.gather(*(password_login(http, EMAIL, "wrong guess") for _ in range(20)))
    statuses = sorted(r.status_code for r in guesses)
    assert statuses == [400] * 10 + [429] * 10
    assert (await password_login(http, EMAIL)).status_code == 429
