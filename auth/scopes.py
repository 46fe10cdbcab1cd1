"""Scopes a third-party app may ask a user for (Login with Device Cloud).

A token issued to a third-party app (an OAuth client a user registered, `OAuthClient.owner`)
acts for the user only within the scopes the user consented to; first-party tokens and product
clients' tokens are not limited by scopes.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    DEVICES_READ = "devices:read"  # see the devices the user can see, and their state
    EVENTS_READ = "events:read"  # read and stream those devices' events
    DEVICES_CALL = "devices:call"  # call their functions and read their variables


DESCRIPTIONS = {
    Scope.DEVICES_READ: "See your devices and whether they are online",
    Scope.EVENTS_READ: "Read the events your devices publish",
    Scope.DEVICES_CALL: "Call functions and read variables on your devices",
}


def parse(scope: str) -> set[Scope] | None:
    """The scopes of a space-separated `scope` string, or None if one is unknown."""
    names = scope.split()
    if not all(name in Scope._value2member_map_ for name in names):
        return None
    return {Scope(name) for name in names}
