"""Small client-side helpers shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from strawberry import relay

from auth import accounts, passwords, tokens
from auth.clients import create_service_client
from auth.principals import UserPrincipal
from core import clock
from core.settings import get_settings
from fleet import organizations, team
from models.accounts import User
from models.oauth import OAuthClient
from models.organizations import Membership, Organization
from tests.conftest import FIRST_PARTY_CLIENT_ID, PASSWORD


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_status: int = 200,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == expect_status, response.text
    return response.json()


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
    """Create an account and sign it in; returns the token response."""
    await accounts.sign_up(email, PASSWORD)
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


# --- Organizations and teams (issue 3) ---------------------------------------------------------

_password_hash: dict[str, str] = {}


def gid(type_name: str, pk: int | str) -> str:
    """The global ID of a `type_name` with primary key `pk`."""
    return str(relay.GlobalID(type_name, str(pk)))


async def make_user(email: str) -> User:
    """An account that signs in with PASSWORD, created without paying for a new argon2 hash
    (every such account shares one hash, computed once per test session)."""
    if PASSWORD not in _password_hash:
        _password_hash[PASSWORD] = await passwords.hash_password(PASSWORD)
    return await User.create(
        email=email, password_hash=_password_hash[PASSWORD], created_at=clock.now()
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


async def run_mutation(
    http: httpx.AsyncClient,
    name: str,
    input_type: str,
    input: dict[str, Any],
    selection: str,
    *,
    token: str | None,
) -> dict[str, Any]:
    """Call mutation `name` with `input`; returns its payload (`selection` plus userErrors)."""
    body = await graphql(
        http,
        f"mutation($input: {input_type}!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ field message code }} }} }}",
        {"input": input},
        token=token,
    )
    assert "errors" not in body, body
    return body["data"][name]


AUDIT_FIELDS = "action actorEmail targetType targetId targetLabel details ipAddress createdAt"


async def audit_trail(
    http: httpx.AsyncClient, slug: str, *, token: str, first: int = 50
) -> list[dict[str, Any]]:
    """The organization's audit log, newest first, as the holder of `token` sees it."""
    body = await graphql(
        http,
        "query($slug: String!, $first: Int!) { organization(slug: $slug) { "
        f"auditLog(first: $first) {{ edges {{ node {{ {AUDIT_FIELDS} }} }} }} }} }}",
        {"slug": slug, "first": first},
        token=token,
    )
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["organization"]["auditLog"]["edges"]]
