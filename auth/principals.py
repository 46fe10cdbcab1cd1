"""Principals: who a request acts for, resolved from its bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PermissionDenied, Unauthenticated
from models.accounts import User
from models.customers import Customer
from models.oauth import OAuthClient


@dataclass(frozen=True, slots=True)
class Principal:
    """Base of every authenticated caller."""

    client: OAuthClient
    family_id: int
    scope: str


@dataclass(frozen=True, slots=True)
class UserPrincipal(Principal):
    """A platform user signed in through a client."""

    user: User


@dataclass(frozen=True, slots=True)
class ClientPrincipal(Principal):
    """A confidential client acting for itself (client_credentials)."""


@dataclass(frozen=True, slots=True)
class CustomerPrincipal(Principal):
    """A product's customer, signed in through one of the product's clients (simple auth,
    two-legged auth or Login with Device Cloud). It reaches only the customer's devices."""

    customer: Customer


AnyPrincipal = UserPrincipal | ClientPrincipal | CustomerPrincipal | None


def is_third_party_app(principal: AnyPrincipal) -> bool:
    """The principal is a user acting through a third-party app (an OAuth client a user
    registered), which may do only what its token's scopes allow."""
    return isinstance(principal, UserPrincipal) and principal.client.owner_id is not None


def require_user(principal: AnyPrincipal) -> UserPrincipal:
    """The principal as a signed-in user acting for themself, or `Unauthenticated` (not a
    user) / `PermissionDenied` (a third-party app's token: account actions are no app's to
    take, whatever its scopes)."""
    if not isinstance(principal, UserPrincipal):
        raise Unauthenticated("Sign in as a user to do this.")
    if is_third_party_app(principal):
        raise PermissionDenied("This app's token does not allow this.")
    return principal
