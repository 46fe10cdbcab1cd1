"""Platform accounts, their sessions (token families), and the single-use links emailed to
them: verifying the email, resetting the password."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import passwords, throttle
from auth.emails import email_skeleton, normalize_email
from auth.errors import AuthCode
from auth.principals import UserPrincipal
from core import clock
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from models.accounts import AccountToken, AccountTokenPurpose, User
from models.oauth import TokenFamily

VERIFICATION_LIFETIME = timedelta(hours=48)
RESET_LIFETIME = timedelta(hours=1)
# Sign-ups, and emailed links asked for, per hour: per email address and per client address.
PER_EMAIL_PER_HOUR = 3
PER_CLIENT_PER_HOUR = 10
_HOUR = 3600


async def spend_request(kind: str, skeleton: str, client_address: str, message: str) -> None:
    """Count one `kind` request for the address (by skeleton, so look-alikes share a count)
    and for the client address; `throttle.TooManyRequests` past either limit."""
    await throttle.spend([f"{kind}:email:{skeleton}"], PER_EMAIL_PER_HOUR, _HOUR, message)
    if client_address:
        await throttle.spend([f"{kind}:client:{client_address}"], PER_CLIENT_PER_HOUR, _HOUR,
                             message)


async def sign_up(email: str, password: str, client_address: str = "", *,
                  email_verified: bool = False) -> User:
    """Create an account, its email not yet verified unless an operator vouches for it
    (`email_verified`, the command line's accounts). The email is normalised; an address that
    is, or looks like (same confusable skeleton), an existing account's is refused."""
    address = normalize_email(email)
    passwords.validate(password)
    skeleton = email_skeleton(address)
    await spend_request("sign-up", skeleton, client_address,
                        "Too many sign-ups for this email address or from your network.")
    taken = Conflict(  # a look-alike gets the same answer: the address is taken
        "An account with this email already exists; sign in instead.",
        field="email",
        code=AuthCode.EMAIL_TAKEN,
    )
    if await User.filter(email_skeleton=skeleton).exists():
        raise taken
    password_hash = await passwords.hash_password(password)
    try:
        now = clock.now()
        return await User.create(email=address, email_skeleton=skeleton,
                                 password_hash=password_hash, created_at=now,
                                 email_verified_at=now if email_verified else None)
    except IntegrityError:
        raise taken from None  # a concurrent sign-up with the same email won the race


def require_verified(user: User, field: str | None = None) -> None:
    """Refuse what only a proven email may do (joining a team, linking a customer)."""
    if user.email_verified_at is None:
        raise PermissionDenied(
            f"Verify your email first: open the link we sent to {user.email}, or ask for a "
            "new one with resendVerificationEmail.",
            field=field,
            code=AuthCode.EMAIL_NOT_VERIFIED,
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_link_token(user: User, purpose: AccountTokenPurpose) -> str:
    """A new single-use token for an emailed link (only its SHA-256 is stored). Call it in
    the transaction that queues the email."""
    lifetime = (VERIFICATION_LIFETIME if purpose == AccountTokenPurpose.VERIFY_EMAIL
                else RESET_LIFETIME)
    token = secrets.token_urlsafe(32)
    now = clock.now()
    await AccountToken.create(user=user, purpose=purpose, token_hash=_digest(token),
                              email=user.email, created_at=now, expires_at=now + lifetime)
    return token


async def _redeem(token: str, purpose: AccountTokenPurpose) -> AccountToken:
    """Use up a link's token (conditionally, so two uses cannot both succeed)."""
    now = clock.now()
    found = await AccountToken.get_or_none(token_hash=_digest(token), purpose=purpose)
    if (
        found is None
        or found.expires_at <= now
        or not await AccountToken.filter(id=found.id, used_at=None).update(used_at=now)
    ):
        raise InvalidInput(
            "This link is unknown, already used or expired; ask for a new one.",
            field="token", code=AuthCode.INVALID_LINK,
        )
    await found.fetch_related("user")
    return found


async def verify_email(token: str) -> User:
    """Mark the account's email verified: the link proves the address it was sent to."""
    async with in_transaction():
        link = await _redeem(token, AccountTokenPurpose.VERIFY_EMAIL)
        user = link.user
        if link.email != user.email:
            raise InvalidInput("This link was sent to an address the account no longer uses.",
                               field="token", code=AuthCode.INVALID_LINK)
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()
            await User.filter(id=user.id).update(email_verified_at=user.email_verified_at)
    return user


async def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; every session and token of the account ends,
    and the account's other reset links stop working."""
    passwords.validate(new_password, field="password")
    password_hash = await passwords.hash_password(new_password)
    async with in_transaction():
        link = await _redeem(token, AccountTokenPurpose.RESET_PASSWORD)
        user = link.user
        await User.filter(id=user.id).update(password_hash=password_hash)
        await AccountToken.filter(
            user_id=user.id, purpose=AccountTokenPurpose.RESET_PASSWORD, used_at=None
        ).update(used_at=clock.now())
        await end_all_sessions(user.id)
    return user


def live_sessions(actor: UserPrincipal) -> QuerySet[TokenFamily]:
    """The actor's sign-ins that still hold a usable token."""
    return TokenFamily.filter(
        user_id=actor.user.id, revoked_at=None, expires_at__gt=clock.now()
    ).select_related("client")


async def get_session(actor: UserPrincipal, session_id: int) -> TokenFamily:
    session = await live_sessions(actor).filter(id=session_id).first()
    if session is None:
        raise NotFound("No such session.", field="sessionId")
    return session


async def revoke_session(actor: UserPrincipal, session_id: int) -> TokenFamily:
    session = await get_session(actor, session_id)
    session.revoked_at = clock.now()
    await TokenFamily.filter(id=session.id, revoked_at=None).update(revoked_at=session.revoked_at)
    return session


async def revoke_all_sessions(actor: UserPrincipal, *, keep_current: bool) -> int:
    """End every session of the actor (but the one making the request, if asked)."""
    return await end_all_sessions(actor.user.id, keep=actor.family_id if keep_current else None)


async def end_all_sessions(user_id: int, *, keep: int | None = None) -> int:
    """End every session (token family) of the account but `keep`. The hosted login page's
    browser sessions end too: they are never the one kept."""
    now = clock.now()
    await User.filter(id=user_id).update(sessions_valid_after=now)
    sessions = TokenFamily.filter(user_id=user_id, revoked_at=None)
    if keep is not None:
        sessions = sessions.exclude(id=keep)
    return await sessions.update(revoked_at=now)
