"""Platform accounts and their sessions (token families)."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from auth import passwords
from auth.emails import normalize_email
from auth.errors import AuthCode
from auth.principals import UserPrincipal
from core import clock
from core.errors import Conflict, NotFound
from models.accounts import User
from models.oauth import TokenFamily


async def sign_up(email: str, password: str) -> User:
    """Create an account. The email is normalised; duplicates are refused."""
    address = normalize_email(email)
    passwords.validate(password)
    taken = Conflict(
        "An account with this email already exists; sign in instead.",
        field="email",
        code=AuthCode.EMAIL_TAKEN,
    )
    if await User.exists(email=address):
        raise taken
    password_hash = await passwords.hash_password(password)
    try:
        return await User.create(email=address, password_hash=password_hash, created_at=clock.now())
    except IntegrityError:
        raise taken from None  # a concurrent sign-up with the same email won the race


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
    """End every session of the actor (but the one making the request, if asked). The
    hosted login page's browser sessions end too: they are never the current one."""
    now = clock.now()
    await User.filter(id=actor.user.id).update(sessions_valid_after=now)
    sessions = TokenFamily.filter(user_id=actor.user.id, revoked_at=None)
    if keep_current:
        sessions = sessions.exclude(id=actor.family_id)
    return await sessions.update(revoked_at=now)
