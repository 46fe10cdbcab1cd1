"""Accounts, teams and tokens, made the quick way (rows and direct service calls); the sign-in
flows have their own tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from auth import accounts, passwords, tokens
from auth.clients import create_service_client
from auth.emails import email_skeleton
from auth.principals import UserPrincipal
from core import clock
from core.settings import get_settings
from fleet import organizations, team
from models.accounts import User
from models.oauth import OAuthClient
from models.organizations import Membership, Organization
from tests.support.constants import FIRST_PARTY_CLIENT_ID, PASSWORD


async def password_login(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": FIRST_PARTY_CLIENT_ID,
            "username": email,
            "password": password,
        },
    )


async def signed_in_user(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Create an account (its email verified) and sign it in; returns the token response."""
    await accounts.sign_up(email, PASSWORD, email_verified=True)
    response = await password_login(http, email)
    assert response.status_code == 200, response.text
    return response.json()


async def service_client(
    name: str = "Backend", *, first_party: bool = False
) -> tuple[OAuthClient, str]:
    return await create_service_client(name, first_party=first_party)


async def client_token(http: httpx.AsyncClient, client: OAuthClient, secret: str) -> str:
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


_password_hash: dict[str, str] = {}


async def make_user(email: str, *, verified: bool = True) -> User:
    """An account that signs in with PASSWORD, its email verified unless asked otherwise,
    created without paying for a new argon2 hash (every such account shares one hash,
    computed once per test session)."""
    if PASSWORD not in _password_hash:
        _password_hash[PASSWORD] = await passwords.hash_password(PASSWORD)
    now = clock.now()
    return await User.create(
        email=email, email_skeleton=email_skeleton(email),
        password_hash=_password_hash[PASSWORD], created_at=now,
        email_verified_at=now if verified else None,
    )


async def acting_as(user: User) -> UserPrincipal:
    """A principal for calling fleet services directly as `user` (no token involved)."""
    client = await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID)
    return UserPrincipal(client=client, family_id=0, scope="", user=user)


async def access_token(email: str) -> str:
    """An access token for an existing account, as the password grant of the first-party client
    issues it (same storage, lifetime and scope), minted directly: verifying an argon2 hash
    costs about 0.3 s a sign-in, and the password grant has its own tests."""
    user = await User.get(email=email)
    client = await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID)
    issued = await tokens.issue(
        client=client,
        user=user,
        scope="",
        grant_type="password",
        access_lifetime=get_settings().access_token_lifetime,
        refresh_lifetime=None,
    )
    return issued.access_token


TEAM_ROLES = ("OWNER", "ADMINISTRATOR", "DEVELOPER", "SUPPORT", "VIEWER")


@dataclass
class Team:
    """An organization with one member per role (emails `<role>@<domain>`, lower-case)."""

    organization: Organization
    users: dict[str, User]  # role -> user
    memberships: dict[str, Membership]  # role -> membership
    principals: dict[str, UserPrincipal]  # role -> principal for fleet services

    def email(self, role: str) -> str:
        return self.users[role].email


async def organization_with_team(
    name: str = "Acme",
    slug: str | None = "acme",
    *,
    domain: str = "example.com",
    roles: tuple[str, ...] = TEAM_ROLES,
) -> Team:
    """Create an organization owned by `owner@<domain>` whose other members join by accepting
    invitations (through the fleet services, as the GraphQL API would)."""
    owner = await make_user(f"owner@{domain}")
    owner_principal = await acting_as(owner)
    organization = await organizations.create_organization(owner_principal, name, slug)
    users, principals = {"OWNER": owner}, {"OWNER": owner_principal}
    for role in roles:
        if role == "OWNER":
            continue
        user = await make_user(f"{role.lower()}@{domain}")
        principals[role] = await acting_as(user)
        users[role] = user
        invitation = await team.invite_team_member(
            owner_principal, organization.id, user.email, role
        )
        await team.accept_invitation(principals[role], invitation.id)
    memberships = {role: await Membership.get(user_id=user.id) for role, user in users.items()}
    return Team(organization, users, memberships, principals)


async def user_with_token(http: httpx.AsyncClient, email: str) -> tuple[User, str]:
    """A new account, signed in: the user and an access token."""
    user = await make_user(email)
    return user, await access_token(email)
