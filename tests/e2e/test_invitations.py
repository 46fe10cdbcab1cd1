"""The invitation story end to end: the email reaches a real SMTP server, the invitee signs in,
sees the invitation and answers it."""

from __future__ import annotations

from auth import accounts
from tests.support.accounts import password_login
from tests.support.constants import PASSWORD
from tests.support.graphql import graphql

INVITE = """
mutation($input: InviteTeamMemberInput!) {
  inviteTeamMember(input: $input) { invitation { id email role status } userErrors { code } }
}
"""
MY_INVITATIONS = "{ me { invitations { id organizationName role invitedBy status } } }"
ANSWER = """
mutation($input: InvitationInput!) {
  %s(input: $input) { userErrors { field code message } }
}
"""
MEMBERS = """
query($slug: String!) { organization(slug: $slug) {
  seats members { edges { node { email role } } } } }
"""


async def _sign_in(http, email: str) -> str:
    await accounts.sign_up(email, PASSWORD, email_verified=True)
    response = await password_login(http, email)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def _organization_with_invitee(http, smtp_server):
    owner = await _sign_in(http, "owner@acme.example")
    created = await graphql(
        http,
        'mutation { createOrganization(input: {name: "Acme Sensors"}) '
        "{ organization { id slug } userErrors { code } } }",
        token=owner,
    )
    organization = created["data"]["createOrganization"]["organization"]
    assert organization["slug"] == "acme-sensors"
    invitee = await _sign_in(http, "dev@acme.example")
    invited = await graphql(
        http, INVITE,
        {"input": {"organizationId": organization["id"], "email": " Dev@ACME.example ",
                   "role": "DEVELOPER"}},
        token=owner,
    )
    invitation = invited["data"]["inviteTeamMember"]["invitation"]
    assert invitation | {"id": None} == {
        "id": None, "email": "dev@acme.example", "role": "DEVELOPER", "status": "PENDING"
    }
    return owner, invitee, organization, invitation


async def test_invite_email_accept_and_membership(http, smtp_server):
    _, invitee, _, invitation = await _organization_with_invitee(http, smtp_server)
    [email] = await smtp_server.wait_for(1)
    assert email.rcpt_tos == ["dev@acme.example"]
    assert email.message["Subject"] == (
        "owner@acme.example invited you to Acme Sensors on Device Cloud"
    )
    body = email.message.get_content()
    assert "invited you to join the team of Acme Sensors on Device Cloud as developer" in body
    assert ("Sign in with dev@acme.example (http://127.0.0.1/account shows how) and accept or "
            "decline it; joining a team needs your email verified.") in body

    mine = await graphql(http, MY_INVITATIONS, token=invitee)
    assert mine["data"]["me"]["invitations"] == [{
        "id": invitation["id"], "organizationName": "Acme Sensors", "role": "DEVELOPER",
        "invitedBy": "owner@acme.example", "status": "PENDING",
    }]
    accepted = await graphql(http, ANSWER % "acceptInvitation",
                             {"input": {"invitationId": invitation["id"]}}, token=invitee)
    assert accepted["data"]["acceptInvitation"]["userErrors"] == []

    team = await graphql(http, MEMBERS, {"slug": "acme-sensors"}, token=invitee)
    assert team["data"]["organization"] == {"seats": 2, "members": {"edges": [
        {"node": {"email": "owner@acme.example", "role": "OWNER"}},
        {"node": {"email": "dev@acme.example", "role": "DEVELOPER"}},
    ]}}
    assert (await graphql(http, MY_INVITATIONS, token=invitee))["data"]["me"]["invitations"] == []


async def test_decline(http, smtp_server):
    owner, invitee, _, invitation = await _organization_with_invitee(http, smtp_server)
    await smtp_server.wait_for(1)
    declined = await graphql(http, ANSWER % "declineInvitation",
                             {"input": {"invitationId": invitation["id"]}}, token=invitee)
    assert declined["data"]["declineInvitation"]["userErrors"] == []
    assert (await graphql(http, MY_INVITATIONS, token=invitee))["data"]["me"]["invitations"] == []
    team = await graphql(http, MEMBERS, {"slug": "acme-sensors"}, token=owner)
    assert team["data"]["organization"]["seats"] == 1
    again = await graphql(http, ANSWER % "acceptInvitation",
                          {"input": {"invitationId": invitation["id"]}}, token=invitee)
    assert again["data"]["acceptInvitation"]["userErrors"] == [{
        "field": "invitationId", "code": "INVITATION_CLOSED",
        "message": "This invitation was already declined.",
    }]


async def test_expiry(http, smtp_server, frozen_clock):
    _, _, _, invitation = await _organization_with_invitee(http, smtp_server)
    await smtp_server.wait_for(1)
    frozen_clock.advance(days=7, seconds=1)
    # Access tokens last an hour: sign in again a week later.
    owner = (await password_login(http, "owner@acme.example")).json()["access_token"]
    invitee = (await password_login(http, "dev@acme.example")).json()["access_token"]
    assert (await graphql(http, MY_INVITATIONS, token=invitee))["data"]["me"]["invitations"] == []
    late = await graphql(http, ANSWER % "acceptInvitation",
                         {"input": {"invitationId": invitation["id"]}}, token=invitee)
    assert late["data"]["acceptInvitation"]["userErrors"] == [{
        "field": "invitationId", "code": "INVITATION_EXPIRED",
        "message": "This invitation has expired; ask for a new one.",
    }]
    team = await graphql(http, MEMBERS, {"slug": "acme-sensors"}, token=owner)
    assert team["data"]["organization"]["seats"] == 1


async def test_inviting_again_resends_the_same_invitation(http, smtp_server):
    owner, _, organization, invitation = await _organization_with_invitee(http, smtp_server)
    again = await graphql(
        http, INVITE,
        {"input": {"organizationId": organization["id"], "email": "dev@acme.example",
                   "role": "DEVELOPER"}},
        token=owner,
    )
    assert again["data"]["inviteTeamMember"]["invitation"]["id"] == invitation["id"]
    emails = await smtp_server.wait_for(2)
    assert [e.rcpt_tos for e in emails] == [["dev@acme.example"], ["dev@acme.example"]]
