"""Scopes a third-party app may ask a user for (Login with Device Cloud), and the OpenID Connect
identity scopes.

A token issued to a third-party app (an OAuth client a user registered, `OAuthClient.owner`)
acts for the user only within the device scopes the user consented to; first-party tokens and
product clients' tokens are not limited by scopes. The identity scopes (`openid`, `profile`,
`email`) reach no device: they ask for an ID token and userinfo about who signed in, so every
client that may use the authorization code flow may ask for them without registering them.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    DEVICES_READ = "devices:read"  # see the devices the user can see, and their state
    EVENTS_READ = "events:read"  # read and stream those devices' events
    DEVICES_CALL = "devices:call"  # call their functions and read their variables


class IdentityScope(StrEnum):
    OPENID = "openid"  # an ID token and userinfo naming the user (`sub`)
    PROFILE = "profile"  # the profile claims the account has (none yet: no name or picture)
    EMAIL = "email"  # `email` and `email_verified`


DESCRIPTIONS = {
    Scope.DEVICES_READ: "See your devices and whether they are online",
    Scope.EVENTS_READ: "Read the events your devices publish",
    Scope.DEVICES_CALL: "Call functions and read variables on your devices",
}

# Every scope, in the order scope strings are written in (`code_flow.canonical_scope`).
ALL: tuple[str, ...] = (*IdentityScope, *Scope)


def parse(scope: str) -> set[Scope] | None:
    """The device scopes of a space-separated `scope` string (identity scopes are left out),
    or None if one is unknown."""
    names = scope.split()
    if not all(name in ALL for name in names):
        return None
    return {Scope(name) for name in names if name in Scope._value2member_map_}


def identity(scope: str) -> set[IdentityScope]:
    """The identity scopes of a scope string."""
    return {IdentityScope(n) for n in scope.split() if n in IdentityScope._value2member_map_}

