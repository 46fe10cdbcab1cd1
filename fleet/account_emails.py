"""The emails of an account's own life: the link that verifies its email (sent at sign-up,
and again on request) and the link that resets its password. Both go through the outbox, in
the transaction that stores the link's token."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from tortoise.transactions import in_transaction

from auth import accounts
from auth.emails import email_skeleton, normalize_email
from auth.errors import AuthCode
from auth.principals import AnyPrincipal, require_user
from core.errors import Conflict
from core.settings import get_settings
from fleet import outbox
from models.accounts import AccountTokenPurpose, User

VERIFY_PATH = "/account/verify"
RESET_PATH = "/account/reset"
ACCOUNT_PATH = "/account"


def page_url(path: str, token: str | None = None) -> str:
    query = f"?{urlencode({'token': token})}" if token else ""
    return f"{get_settings().issuer}{path}{query}"


async def sign_up(email: str, password: str, client_address: str) -> User:
    """Create an account and email it the link that verifies its address."""
    user = await accounts.sign_up(email, password, client_address)
    await _send_verification(user)
    return user


async def resend_verification(principal: AnyPrincipal, client_address: str) -> User:
    """Email the signed-in account a new verification link (throttled like sign-ups)."""
    user = require_user(principal).user
    await user.refresh_from_db(fields=["email_verified_at"])
    if user.email_verified_at is not None:
        raise Conflict("Your email is already verified.", code=AuthCode.EMAIL_ALREADY_VERIFIED)
    await accounts.spend_request("verify", email_skeleton(user.email), client_address,
                                 "Too many verification emails asked for.")
    await _send_verification(user)
    return user


async def _send_verification(user: User) -> None:
    settings = get_settings()
    async with in_transaction():
        token = await accounts.issue_link_token(user, AccountTokenPurpose.VERIFY_EMAIL)
        await outbox.enqueue_email(
            to=user.email,
            subject=f"Verify your email for {settings.platform_name}",
            body=(
                f"Hello,\n\nopen this link to verify {user.email} for your "
                f"{settings.platform_name} account:\n\n{page_url(VERIFY_PATH, token)}\n\n"
                f"The link works once, for {_hours(accounts.VERIFICATION_LIFETIME)} hours. "
                "Until you verify, you can sign in but not join a team or link a customer.\n"
                "If you did not sign up, ignore this email.\n"
            ),
        )
    outbox.notify()


async def request_password_reset(email: str, client_address: str) -> None:
    """Email a reset link if an account uses the address. The answer is the same whether or
    not one does; the throttle counts both alike."""
    settings = get_settings()
    address = normalize_email(email)
    await accounts.spend_request("reset", email_skeleton(address), client_address,
                                 "Too many password resets asked for.")
    user = await User.get_or_none(email=address)
    if user is None:
        return
    async with in_transaction():
        token = await accounts.issue_link_token(user, AccountTokenPurpose.RESET_PASSWORD)
        await outbox.enqueue_email(
            to=user.email,
            subject=f"Reset your {settings.platform_name} password",
            body=(
                f"Hello,\n\nsomeone asked to reset the password of the {settings.platform_name} "
                f"account {user.email}. To choose a new one, open:\n\n"
                f"{page_url(RESET_PATH, token)}\n\n"
                f"The link works once, for {_hours(accounts.RESET_LIFETIME)} hour(s). Setting a "
                "new password signs the account out everywhere.\n"
                "If it was not you, ignore this email: your password stays as it is.\n"
            ),
        )
    outbox.notify()


def _hours(lifetime: timedelta) -> int:
    return int(lifetime.total_seconds() // 3600)
