"""Organizations and their team: creation, slugs, invitations, roles, leaving, ownership, the
audit log, and bad input (each a userError naming its field, changing nothing)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.text import clean_slug
from fleet import access, products, team
from models.oauth import OAuthClient
from models.organizations import AuditEntry, Invitation, Membership, Organization
from models.outbox import OutboxEmail
from models.products import Product
from tests.support.accounts import access_token, make_user, organization_with_team, user_with_token
from tests.support.graphql import audit_trail, gid, graphql, run_mutation

ORGANIZATION = "organization { id name slug seats viewerRole }"
INVITATION = "invitation { id email role status invitedBy organizationName createdAt expiresAt }"
MEMBER = "member { id email role }"
TEAM = """query($slug: String!) { organization(slug: $slug) {
  seats members { edges { node { email role } } }
  invitations { edges { node { email role status } } } } }"""
ME = """{ me { organization { slug viewerRole }
  invitations { id email role status invitedBy organizationName expiresAt } } }"""


async def create_organization(http, token, **input) -> dict[str, Any]:
    return await run_mutation(http, "createOrganization", "CreateOrganizationInput", input,
                              ORGANIZATION, token=token)


async def invite(http, token, organization_id: int, email: str, role: str) -> dict[str, Any]:
    return await run_mutation(
        http, "inviteTeamMember", "InviteTeamMemberInput",
        {"organizationId": gid("Organization", organization_id), "email": email, "role": role},
        INVITATION, token=token,
    )


async def answer(http, token, verb: str, invitation_id: str) -> dict[str, Any]:
    """acceptInvitation, declineInvitation or revokeInvitation."""
    selection = MEMBER if verb == "acceptInvitation" else "invitation { id status }"
    return await run_mutation(http, verb, "InvitationInput", {"invitationId": invitation_id},
                              selection, token=token)


async def change_role(http, token, membership_id: int, role: str) -> dict[str, Any]:
    return await run_mutation(http, "changeTeamMemberRole", "ChangeTeamMemberRoleInput",
                              {"memberId": gid("Member", membership_id), "role": role}, MEMBER,
                              token=token)


async def on_member(http, token, verb: str, membership_id: int) -> dict[str, Any]:
    """removeTeamMember or transferOwnership."""
    return await run_mutation(http, verb, "MemberInput", {"memberId": gid("Member", membership_id)},
                              MEMBER, token=token)


async def leave(http, token, organization_id: int) -> dict[str, Any]:
    return await run_mutation(http, "leaveOrganization", "LeaveOrganizationInput",
                              {"organizationId": gid("Organization", organization_id)}, "left",
                              token=token)


async def team_of(http, token, slug: str = "acme") -> dict[str, Any]:
    organization = (await graphql(http, TEAM, {"slug": slug}, token=token))["data"]["organization"]
    return {
        "seats": organization["seats"],
        "members": [(e["node"]["email"], e["node"]["role"]) for e in
                    organization["members"]["edges"]],
        "invitations": [(e["node"]["email"], e["node"]["role"], e["node"]["status"])
                        for e in organization["invitations"]["edges"]],
    }


async def me(http, token) -> dict[str, Any]:
    return (await graphql(http, ME, token=token))["data"]["me"]


def error(code: str, field: str | None, message: str) -> list[dict[str, Any]]:
    return [{"field": field, "message": message, "code": code}]


def summary(entry: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (entry["action"], entry["actorEmail"], entry["targetType"], entry["targetLabel"],
            entry["ipAddress"])


async def counts() -> dict[str, int]:
    """How many rows each table touched by this module holds."""
    return {model.__name__: await model.all().count()
            for model in (Organization, Membership, Invitation, AuditEntry, OutboxEmail, Product)}


# --- Creating organizations --------------------------------------------------------------------


async def test_the_creator_becomes_owner_and_the_slug_comes_from_the_name(http):
    user, token = await user_with_token(http, "ada@example.com")
    created = await create_organization(http, token, name="Acme Sensors, Inc.")
    organization = await Organization.get(slug="acme-sensors-inc")
    assert created == {
        "organization": {"id": gid("Organization", organization.id), "name": "Acme Sensors, Inc.",
                         "slug": "acme-sensors-inc", "seats": 1, "viewerRole": "OWNER"},
        "userErrors": [],
    }
    membership = await Membership.get(user_id=user.id)
    assert (membership.organization_id, membership.role) == (organization.id, "OWNER")
    assert (await me(http, token))["organization"] == {"slug": "acme-sensors-inc",
                                                        "viewerRole": "OWNER"}
    assert await team_of(http, token, "acme-sensors-inc") == {
        "seats": 1, "members": [("ada@example.com", "OWNER")], "invitations": []}
    [entry] = await audit_trail(http, "acme-sensors-inc", token=token)
    assert {k: v for k, v in entry.items() if k != "createdAt"} == {
        "action": "organization.create", "actorEmail": "ada@example.com",
        "targetType": "Organization", "targetId": str(organization.id),
        "targetLabel": "Acme Sensors, Inc.", "details": {"slug": "acme-sensors-inc"},
        "ipAddress": "127.0.0.1",
    }


async def test_derived_slugs_are_made_unique_and_a_taken_explicit_slug_is_refused(http):
    _, first = await user_with_token(http, "a@example.com")
    _, second = await user_with_token(http, "b@example.com")
    third_user, third = await user_with_token(http, "c@example.com")
    one = await create_organization(http, first, name="Acme Sensors, Inc.")
    assert one["organization"]["slug"] == "acme-sensors-inc"
    two = await create_organization(http, second, name="  Acme   Sensors Inc ")
    assert (two["organization"]["name"], two["organization"]["slug"]) == (
        "Acme Sensors Inc", "acme-sensors-inc-2")
    before = await counts()
    taken = await create_organization(http, third, name="Acme", slug="acme-sensors-inc")
    assert taken == {"organization": None, "userErrors": error(
        "SLUG_TAKEN", "slug", "The slug 'acme-sensors-inc' is taken; choose another.")}
    assert await counts() == before
    assert not await Membership.exists(user_id=third_user.id)
    three = await create_organization(http, third, name="ACME sensors inc")
    assert three["organization"]["slug"] == "acme-sensors-inc-3"


async def test_an_explicit_slug_is_kept(http):
    _, token = await user_with_token(http, "ada@example.com")
    created = await create_organization(http, token, name="Acme Sensors", slug="acme-42")
    assert created["organization"]["slug"] == "acme-42"
    assert await Organization.filter(slug="acme-42", name="Acme Sensors").exists()


async def test_a_user_in_an_organization_cannot_create_another(http):
    acme = await organization_with_team(roles=("OWNER", "VIEWER"))
    before = await counts()
    for role in ("OWNER", "VIEWER"):
        token = await access_token(acme.email(role))
        refused = await create_organization(http, token, name="Second", slug="second")
        assert refused == {"organization": None, "userErrors": error(
            "ALREADY_IN_ORGANIZATION", None,
            "You already belong to an organization; a user belongs to at most one.")}
    assert await counts() == before


SLUG_RULE = ("A slug is 3 to 63 lowercase letters, digits and single hyphens between them "
             "(like 'acme-sensors'); '{}' is not.")


# Control characters and the bidirectional formatting characters.
UNSAFE = ["\t", "\x07", "\x7f", "\x85", "\u061c", "\u200e", "\u200f", "\u202a", "\u202b",
          "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize(
    ("input", "expected"),
    [
        ({"name": ""}, ("REQUIRED", "name", "Enter a name.")),
        ({"name": " \t "}, ("REQUIRED", "name", "Enter a name.")),
        ({"name": "x" * 300},
         ("TOO_LONG", "name", "The name is 300 characters long; the limit is 100.")),
        ({"name": "x" * 101},
         ("TOO_LONG", "name", "The name is 101 characters long; the limit is 100.")),
        ({"name": "Acme", "slug": "acme sensors"},
         ("INVALID_SLUG", "slug", SLUG_RULE.format("acme sensors"))),
        ({"name": "Acme", "slug": "Acme"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("Acme"))),
        ({"name": "Acme", "slug": "ab"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("ab"))),
        ({"name": "Acme", "slug": "acme--sensors"},
         ("INVALID_SLUG", "slug", SLUG_RULE.format("acme--sensors"))),
        ({"name": "Acme", "slug": "-acme"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("-acme"))),
        ({"name": "Acme", "slug": "a" * 64}, ("INVALID_SLUG", "slug", SLUG_RULE.format("a" * 64))),
        *(({"name": f"Acme {c} Sensors"},
           ("UNSAFE_CHARACTERS", "name", "A name cannot contain control or text-direction "
            f"characters; remove U+{ord(c):04X}.")) for c in UNSAFE),
    ],
    ids=["empty-name", "blank-name", "300-char-name", "101-char-name", "slug-with-space",
         "uppercase-slug", "short-slug", "double-hyphen-slug", "leading-hyphen-slug",
         "64-char-slug", *(f"U+{ord(c):04X}" for c in UNSAFE)],
)
async def test_bad_organization_input_is_a_user_error_and_creates_nothing(http, input, expected):
    _, token = await user_with_token(http, "ada@example.com")
    refused = await create_organization(http, token, **input)
    assert refused == {"organization": None, "userErrors": error(*expected)}
    assert await counts() == {"Organization": 0, "Membership": 0, "Invitation": 0,
                              "AuditEntry": 0, "OutboxEmail": 0, "Product": 0}


async def test_administrators_rename_the_organization_and_bad_names_change_nothing(http):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR"))
    token = await access_token(acme.email("ADMINISTRATOR"))
    organization_id = gid("Organization", acme.organization.id)

    async def rename(name: str) -> dict[str, Any]:
        return await run_mutation(http, "updateOrganization", "UpdateOrganizationInput",
                                  {"organizationId": organization_id, "name": name},
                                  "organization { name slug }", token=token)

    assert await rename("  Acme   Sensors ") == {
        "organization": {"name": "Acme Sensors", "slug": "acme"}, "userErrors": []}
    before = await counts()
    assert await rename("") == {"organization": None,
                                "userErrors": error("REQUIRED", "name", "Enter a name.")}
    assert await rename("y" * 300) == {"organization": None, "userErrors": error(
        "TOO_LONG", "name", "The name is 300 characters long; the limit is 100.")}
    assert await counts() == before
    assert (await Organization.get(id=acme.organization.id)).name == "Acme Sensors"
    newest = (await audit_trail(http, "acme", token=token))[0]
    assert summary(newest) == ("organization.update", "administrator@example.com",
                               "Organization", "Acme Sensors", "127.0.0.1")
    assert newest["details"] == {"name": ["Acme", "Acme Sensors"]}


# --- Inviting ----------------------------------------------------------------------------------


ROLE_RULE = ("'{}' is not a role you can give; choose one of ADMINISTRATOR, DEVELOPER, SUPPORT, "
             "VIEWER. Ownership moves only with transferOwnership.")


@pytest.mark.parametrize(
    ("email", "role", "expected"),
    [
        ("", "VIEWER", ("REQUIRED", "email", "Enter an email address.")),
        ("free@example.com", "OWNER", ("INVALID_ROLE", "role", ROLE_RULE.format("OWNER"))),
        ("free@example.com", "boss", ("INVALID_ROLE", "role", ROLE_RULE.format("boss"))),
        ("free@example.com", "viewer", ("INVALID_ROLE", "role", ROLE_RULE.format("viewer"))),
        (" Developer@Example.com ", "VIEWER", (
            "ALREADY_MEMBER", "email", "developer@example.com is already on this team.")),
        ("owner@example.com", "VIEWER", (
            "ALREADY_MEMBER", "email", "owner@example.com is already on this team.")),
    ],
    ids=["empty-email", "role-owner", "role-boss", "role-lowercase", "already-member",
         "the-owner"],
)
async def test_bad_invitations_are_user_errors_and_change_nothing(http, email, role, expected):
    acme = await organization_with_team(roles=("OWNER", "DEVELOPER"))
    await organization_with_team("Globex", "globex", domain="example.org", roles=("OWNER",))
    await make_user("free@example.com")
    token = await access_token(acme.email("OWNER"))
    before = await counts()
    refused = await invite(http, token, acme.organization.id, email, role)
    assert refused == {"invitation": None, "userErrors": error(*expected)}
    assert await counts() == before


async def test_an_invalid_email_is_refused(http):
    acme = await organization_with_team(roles=("OWNER",))
    token = await access_token(acme.email("OWNER"))
    before = await counts()
    refused = await invite(http, token, acme.organization.id, "not-an-email", "VIEWER")
    [user_error] = refused["userErrors"]
    assert (refused["invitation"], user_error["field"], user_error["code"]) == (
        None, "email", "INVALID_EMAIL")
    assert user_error["message"].startswith("'not-an-email' is not a valid email address: ")
    assert await counts() == before


async def test_inviting_a_pending_email_again_resends_the_same_invitation(http, frozen_clock):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR"))
    await make_user("ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    sent_at = frozen_clock.current
    first = await invite(http, owner, acme.organization.id, "ada@example.com", "VIEWER")
    invitation = await Invitation.get(email="ada@example.com")
    assert first["userErrors"] == []
    assert {k: v for k, v in first["invitation"].items() if k not in ("createdAt", "expiresAt")
            } == {"id": gid("Invitation", invitation.id), "email": "ada@example.com",
                  "role": "VIEWER", "status": "PENDING", "invitedBy": "owner@example.com",
                  "organizationName": "Acme"}
    assert datetime.fromisoformat(first["invitation"]["createdAt"]) == sent_at
    assert datetime.fromisoformat(first["invitation"]["expiresAt"]) == sent_at + timedelta(days=7)

    frozen_clock.advance(days=3)
    administrator = await access_token(acme.email("ADMINISTRATOR"))
    again = await invite(http, administrator, acme.organization.id, "ADA@example.com",
                         "DEVELOPER")
    assert again["userErrors"] == []
    assert again["invitation"]["id"] == first["invitation"]["id"]
    assert (again["invitation"]["role"], again["invitation"]["invitedBy"]) == (
        "DEVELOPER", "administrator@example.com")
    assert datetime.fromisoformat(again["invitation"]["createdAt"]) == sent_at
    assert datetime.fromisoformat(again["invitation"]["expiresAt"]) == (
        frozen_clock.current + timedelta(days=7))
    assert await Invitation.filter(email="ada@example.com").count() == 1
    assert await OutboxEmail.filter(to="ada@example.com").count() == 2
    newest = await audit_trail(http, "acme", token=administrator, first=2)
    assert [summary(e) for e in newest] == [
        ("team.invite.resend", "administrator@example.com", "Invitation", "ada@example.com",
         "127.0.0.1"),
        ("team.invite", "owner@example.com", "Invitation", "ada@example.com", "127.0.0.1"),
    ]
    assert [e["details"] for e in newest] == [{"role": "DEVELOPER"}, {"role": "VIEWER"}]


async def test_the_invitee_sees_the_invitation_and_accepts_it(http):
    acme = await organization_with_team(roles=("OWNER",))
    ada, ada_token = await user_with_token(http, "ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    sent = (await invite(http, owner, acme.organization.id, "ada@example.com", "DEVELOPER")
            )["invitation"]
    assert await me(http, ada_token) == {"organization": None, "invitations": [{
        "id": sent["id"], "email": "ada@example.com", "role": "DEVELOPER", "status": "PENDING",
        "invitedBy": "owner@example.com", "organizationName": "Acme",
        "expiresAt": sent["expiresAt"]}]}

    accepted = await answer(http, ada_token, "acceptInvitation", sent["id"])
    membership = await Membership.get(user_id=ada.id)
    assert accepted == {"member": {"id": gid("Member", membership.id), "email": "ada@example.com",
                                   "role": "DEVELOPER"}, "userErrors": []}
    assert await me(http, ada_token) == {
        "organization": {"slug": "acme", "viewerRole": "DEVELOPER"}, "invitations": []}
    assert await team_of(http, owner) == {
        "seats": 2,
        "members": [("owner@example.com", "OWNER"), ("ada@example.com", "DEVELOPER")],
        "invitations": [("ada@example.com", "DEVELOPER", "ACCEPTED")],
    }
    newest = (await audit_trail(http, "acme", token=owner))[0]
    assert summary(newest) == ("team.join", "ada@example.com", "Membership", "ada@example.com",
                               "127.0.0.1")
    assert (newest["targetId"], newest["details"]) == (str(membership.id), {"role": "DEVELOPER"})
    again = await answer(http, ada_token, "acceptInvitation", sent["id"])
    assert again == {"member": None, "userErrors": error(
        "INVITATION_CLOSED", "invitationId", "This invitation was already accepted.")}


async def test_the_invitee_declines(http):
    acme = await organization_with_team(roles=("OWNER",))
    ada, ada_token = await user_with_token(http, "ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    sent = (await invite(http, owner, acme.organization.id, "ada@example.com", "VIEWER")
            )["invitation"]
    declined = await answer(http, ada_token, "declineInvitation", sent["id"])
    assert declined == {"invitation": {"id": sent["id"], "status": "DECLINED"}, "userErrors": []}
    assert await me(http, ada_token) == {"organization": None, "invitations": []}
    assert not await Membership.exists(user_id=ada.id)
    assert await team_of(http, owner) == {
        "seats": 1, "members": [("owner@example.com", "OWNER")],
        "invitations": [("ada@example.com", "VIEWER", "DECLINED")]}
    newest = (await audit_trail(http, "acme", token=owner))[0]
    assert summary(newest) == ("team.invite.decline", "ada@example.com", "Invitation",
                               "ada@example.com", "127.0.0.1")
    before = await counts()
    late = await answer(http, ada_token, "acceptInvitation", sent["id"])
    assert late == {"member": None, "userErrors": error(
        "INVITATION_CLOSED", "invitationId", "This invitation was already declined.")}
    assert await counts() == before
    # A declined invitation is closed: inviting again sends a new one.
    renewed = await invite(http, owner, acme.organization.id, "ada@example.com", "VIEWER")
    assert renewed["invitation"]["status"] == "PENDING"
    assert renewed["invitation"]["id"] != sent["id"]


async def test_an_invitation_expires_after_seven_days(http, frozen_clock):
    acme = await organization_with_team(roles=("OWNER",))
    ada = await make_user("ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    sent = (await invite(http, owner, acme.organization.id, "ada@example.com", "VIEWER")
            )["invitation"]
    frozen_clock.advance(days=7, seconds=-1)
    ada_token = await access_token("ada@example.com")
    assert [i["id"] for i in (await me(http, ada_token))["invitations"]] == [sent["id"]]

    frozen_clock.advance(seconds=2)  # 7 days and 1 second after it was sent
    ada_token = await access_token("ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    assert await me(http, ada_token) == {"organization": None, "invitations": []}
    before = await counts()
    expired = error("INVITATION_EXPIRED", "invitationId",
                    "This invitation has expired; ask for a new one.")
    assert await answer(http, ada_token, "acceptInvitation", sent["id"]) == {
        "member": None, "userErrors": expired}
    assert await answer(http, ada_token, "declineInvitation", sent["id"]) == {
        "invitation": None, "userErrors": expired}
    assert await answer(http, owner, "revokeInvitation", sent["id"]) == {
        "invitation": None, "userErrors": error(
            "INVITATION_CLOSED", "invitationId", "Only a pending invitation can be revoked.")}
    assert await counts() == before
    assert not await Membership.exists(user_id=ada.id)
    assert (await team_of(http, owner))["invitations"] == [("ada@example.com", "VIEWER",
                                                            "EXPIRED")]
    renewed = await invite(http, owner, acme.organization.id, "ada@example.com", "VIEWER")
    assert renewed["invitation"]["id"] != sent["id"]
    assert renewed["invitation"]["status"] == "PENDING"


async def test_administrators_revoke_invitations(http):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR"))
    ada, ada_token = await user_with_token(http, "ada@example.com")
    owner = await access_token(acme.email("OWNER"))
    administrator = await access_token(acme.email("ADMINISTRATOR"))
    sent = (await invite(http, owner, acme.organization.id, "ada@example.com", "SUPPORT")
            )["invitation"]
    revoked = await answer(http, administrator, "revokeInvitation", sent["id"])
    assert revoked == {"invitation": {"id": sent["id"], "status": "REVOKED"}, "userErrors": []}
    assert await me(http, ada_token) == {"organization": None, "invitations": []}
    assert (await team_of(http, owner))["invitations"][0] == ("ada@example.com", "SUPPORT",
                                                              "REVOKED")
    newest = (await audit_trail(http, "acme", token=owner))[0]
    assert summary(newest) == ("team.invite.revoke", "administrator@example.com", "Invitation",
                               "ada@example.com", "127.0.0.1")
    before = await counts()
    assert await answer(http, ada_token, "acceptInvitation", sent["id"]) == {
        "member": None, "userErrors": error(
            "INVITATION_CLOSED", "invitationId", "This invitation was already revoked.")}
    assert await answer(http, administrator, "revokeInvitation", sent["id"]) == {
        "invitation": None, "userErrors": error(
            "INVITATION_CLOSED", "invitationId", "Only a pending invitation can be revoked.")}
    assert await counts() == before
    assert not await Membership.exists(user_id=ada.id)


# --- Roles, leaving, removing, ownership --------------------------------------------------------


async def test_administrators_change_roles_but_not_the_owners(http):
    acme = await organization_with_team()
    owner = await access_token(acme.email("OWNER"))
    administrator = await access_token(acme.email("ADMINISTRATOR"))
    developer = acme.memberships["DEVELOPER"]
    changed = await change_role(http, administrator, developer.id, "SUPPORT")
    assert changed == {"member": {"id": gid("Member", developer.id),
                                  "email": "developer@example.com", "role": "SUPPORT"},
                       "userErrors": []}
    assert ("developer@example.com", "SUPPORT") in (await team_of(http, owner))["members"]
    newest = (await audit_trail(http, "acme", token=owner))[0]
    assert summary(newest) == ("team.role.change", "administrator@example.com", "Membership",
                               "developer@example.com", "127.0.0.1")
    assert newest["details"] == {"role": ["DEVELOPER", "SUPPORT"]}

    before = await counts()
    for role in ("OWNER", "boss", ""):
        refused = await change_role(http, administrator, developer.id, role)
        assert refused == {"member": None,
                           "userErrors": error("INVALID_ROLE", "role", ROLE_RULE.format(role))}
    protected = error("OWNER_PROTECTED", "memberId",
                      "The owner's role cannot be changed; transfer ownership first.")
    owner_membership = acme.memberships["OWNER"].id
    for token in (administrator, owner):
        refused = await change_role(http, token, owner_membership, "ADMINISTRATOR")
        assert refused == {"member": None, "userErrors": protected}
    assert await on_member(http, administrator, "removeTeamMember", owner_membership) == {
        "member": None, "userErrors": error("OWNER_PROTECTED", "memberId",
                                            "The owner cannot be removed.")}
    assert await leave(http, owner, acme.organization.id) == {"left": False, "userErrors": error(
        "OWNER_PROTECTED", None,
        "The owner cannot leave; transfer ownership to another member first.")}
    assert await counts() == before
    assert {m.role for m in await Membership.filter(user_id=acme.users["OWNER"].id)} == {"OWNER"}
    assert (await Membership.get(id=developer.id)).role == "SUPPORT"


async def test_transferring_ownership_lets_the_previous_owner_leave(http):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR", "VIEWER"))
    owner = await access_token(acme.email("OWNER"))
    viewer = await access_token(acme.email("VIEWER"))
    viewer_membership = acme.memberships["VIEWER"].id
    transferred = await on_member(http, owner, "transferOwnership", viewer_membership)
    assert transferred == {"member": {"id": gid("Member", viewer_membership),
                                      "email": "viewer@example.com", "role": "OWNER"},
                           "userErrors": []}
    assert (await me(http, owner))["organization"] == {"slug": "acme",
                                                        "viewerRole": "ADMINISTRATOR"}
    assert (await me(http, viewer))["organization"] == {"slug": "acme", "viewerRole": "OWNER"}
    assert (await team_of(http, viewer))["members"] == [
        ("owner@example.com", "ADMINISTRATOR"), ("administrator@example.com", "ADMINISTRATOR"),
        ("viewer@example.com", "OWNER")]
    newest = (await audit_trail(http, "acme", token=viewer))[0]
    assert summary(newest) == ("team.ownership.transfer", "owner@example.com", "Membership",
                               "viewer@example.com", "127.0.0.1")
    assert newest["details"] == {"from": "owner@example.com"}

    before = await counts()
    assert await on_member(http, viewer, "transferOwnership", viewer_membership) == {
        "member": None, "userErrors": error("ALREADY_OWNER", "memberId",
                                            "You already own this organization.")}
    assert await leave(http, viewer, acme.organization.id) == {"left": False, "userErrors": error(
        "OWNER_PROTECTED", None,
        "The owner cannot leave; transfer ownership to another member first.")}
    assert await on_member(http, owner, "removeTeamMember", viewer_membership) == {
        "member": None, "userErrors": error("OWNER_PROTECTED", "memberId",
                                            "The owner cannot be removed.")}
    assert await counts() == before

    assert await leave(http, owner, acme.organization.id) == {"left": True, "userErrors": []}
    assert (await me(http, owner))["organization"] is None
    assert (await team_of(http, viewer))["seats"] == 2


async def test_leaving_and_removal_free_seats(http):
    acme = await organization_with_team()
    administrator = await access_token(acme.email("ADMINISTRATOR"))
    support = await access_token(acme.email("SUPPORT"))
    viewer = await access_token(acme.email("VIEWER"))
    assert (await team_of(http, administrator))["seats"] == 5

    support_membership = acme.memberships["SUPPORT"].id
    removed = await on_member(http, administrator, "removeTeamMember", support_membership)
    assert removed == {"member": {"id": gid("Member", support_membership),
                                  "email": "support@example.com", "role": "SUPPORT"},
                       "userErrors": []}
    assert (await team_of(http, administrator))["seats"] == 4
    assert (await me(http, support))["organization"] is None
    gone = await graphql(http, "{ organization(slug: \"acme\") { id } }", token=support)
    assert (gone["data"], "errors" in gone) == ({"organization": None}, False)

    assert await leave(http, viewer, acme.organization.id) == {"left": True, "userErrors": []}
    after = await team_of(http, administrator)
    assert after["seats"] == 3
    assert after["members"] == [("owner@example.com", "OWNER"),
                                ("administrator@example.com", "ADMINISTRATOR"),
                                ("developer@example.com", "DEVELOPER")]
    newest = await audit_trail(http, "acme", token=administrator, first=2)
    assert [summary(e) for e in newest] == [
        ("team.leave", "viewer@example.com", "Membership", "viewer@example.com", "127.0.0.1"),
        ("team.remove", "administrator@example.com", "Membership", "support@example.com",
         "127.0.0.1"),
    ]
    assert [e["details"] for e in newest] == [{"role": "VIEWER"}, {"role": "SUPPORT"}]

    before = await counts()
    assert await on_member(http, administrator, "removeTeamMember", support_membership) == {
        "member": None, "userErrors": error("NOT_FOUND", "memberId", "No such team member.")}
    assert await leave(http, viewer, acme.organization.id) == {"left": False, "userErrors": error(
        "NOT_FOUND", "organizationId", "No such organization.")}
    assert await counts() == before


# --- The audit log -----------------------------------------------------------------------------


async def test_every_mutation_writes_an_audit_entry_newest_first(http):
    owner_user, owner = await user_with_token(http, "owner@example.com")
    _, developer = await user_with_token(http, "dev@example.com")
    _, support = await user_with_token(http, "sup@example.com")
    _, viewer = await user_with_token(http, "viewer@example.com")
    organization_id = (await create_organization(http, owner, name="Acme", slug="acme")
                       )["organization"]["id"]
    org_pk = (await Organization.get(slug="acme")).id
    await run_mutation(http, "updateOrganization", "UpdateOrganizationInput",
                       {"organizationId": organization_id, "name": "Acme Sensors"},
                       "organization { id }", token=owner)
    to_developer = (await invite(http, owner, org_pk, "dev@example.com", "DEVELOPER")
                    )["invitation"]["id"]
    await invite(http, owner, org_pk, "dev@example.com", "DEVELOPER")
    await answer(http, developer, "acceptInvitation", to_developer)
    to_support = (await invite(http, owner, org_pk, "sup@example.com", "SUPPORT"))["invitation"]
    await answer(http, support, "declineInvitation", to_support["id"])
    to_viewer = (await invite(http, owner, org_pk, "viewer@example.com", "VIEWER"))["invitation"]
    await answer(http, owner, "revokeInvitation", to_viewer["id"])
    to_viewer = (await invite(http, owner, org_pk, "viewer@example.com", "VIEWER"))["invitation"]
    await answer(http, viewer, "acceptInvitation", to_viewer["id"])
    developer_membership = (await Membership.get(user__email="dev@example.com")).id
    viewer_membership = (await Membership.get(user__email="viewer@example.com")).id
    await change_role(http, owner, developer_membership, "ADMINISTRATOR")
    product = (await run_mutation(
        http, "createProduct", "CreateProductInput",
        {"organizationId": organization_id, "name": "Thermostat", "platform": "Photon",
         "customerAuth": "SIMPLE"}, "product { id productId }", token=developer))["product"]
    await run_mutation(http, "updateProduct", "UpdateProductInput",
                       {"productId": product["id"], "name": "Thermostat Pro"}, "product { id }",
                       token=developer)
    client_id = (await run_mutation(
        http, "createOAuthClient", "CreateOAuthClientInput",
        {"productId": product["id"], "name": "Web app", "type": "WEB",
         "redirectUris": ["https://app.example.com/cb"]}, "oauthClient { clientId }",
        token=developer))["oauthClient"]["clientId"]
    for verb in ("rotateOAuthClientSecret", "deleteOAuthClient"):
        await run_mutation(http, verb, "OAuthClientInput", {"clientId": client_id},
                           "oauthClient { clientId }", token=developer)
    await on_member(http, owner, "removeTeamMember", viewer_membership)
    await on_member(http, owner, "transferOwnership", developer_membership)
    await leave(http, owner, org_pk)

    log = await audit_trail(http, "acme", token=developer)
    ip = "127.0.0.1"
    assert [summary(e) for e in log] == [
        ("team.leave", "owner@example.com", "Membership", "owner@example.com", ip),
        ("team.ownership.transfer", "owner@example.com", "Membership", "dev@example.com", ip),
        ("team.remove", "owner@example.com", "Membership", "viewer@example.com", ip),
        ("oauth_client.delete", "dev@example.com", "OAuthClient", "Web app", ip),
        ("oauth_client.rotate_secret", "dev@example.com", "OAuthClient", "Web app", ip),
        ("oauth_client.create", "dev@example.com", "OAuthClient", "Web app", ip),
        ("product.update", "dev@example.com", "Product", "Thermostat Pro", ip),
        ("product.create", "dev@example.com", "Product", "Thermostat", ip),
        ("team.role.change", "owner@example.com", "Membership", "dev@example.com", ip),
        ("team.join", "viewer@example.com", "Membership", "viewer@example.com", ip),
        ("team.invite", "owner@example.com", "Invitation", "viewer@example.com", ip),
        ("team.invite.revoke", "owner@example.com", "Invitation", "viewer@example.com", ip),
        ("team.invite", "owner@example.com", "Invitation", "viewer@example.com", ip),
        ("team.invite.decline", "sup@example.com", "Invitation", "sup@example.com", ip),
        ("team.invite", "owner@example.com", "Invitation", "sup@example.com", ip),
        ("team.join", "dev@example.com", "Membership", "dev@example.com", ip),
        ("team.invite.resend", "owner@example.com", "Invitation", "dev@example.com", ip),
        ("team.invite", "owner@example.com", "Invitation", "dev@example.com", ip),
        ("organization.update", "owner@example.com", "Organization", "Acme Sensors", ip),
        ("organization.create", "owner@example.com", "Organization", "Acme", ip),
    ]
    client = await OAuthClient.get(client_id=client_id)
    assert [(e["targetId"], e["details"]) for e in log[3:8]] == [
        (str(client.id), {"clientId": client_id}),
        (str(client.id), {"clientId": client_id}),
        (str(client.id), {"clientId": client_id, "type": "WEB", "public": False,
                          "productId": product["productId"]}),
        (str(product["productId"]), {"name": ["Thermostat", "Thermostat Pro"]}),
        (str(product["productId"]), {"slug": "thermostat", "productId": product["productId"]}),
    ]
    times = [datetime.fromisoformat(e["createdAt"]) for e in log]
    assert times == sorted(times, reverse=True)
    # Paging through the log gives the same entries.
    paged, after = [], None
    while True:
        body = await graphql(
            http,
            """query($after: String) { organization(slug: "acme") { auditLog(first: 7,
               after: $after) { edges { node { action targetId } } pageInfo { hasNextPage
               endCursor } } } }""",
            {"after": after}, token=developer)
        page = body["data"]["organization"]["auditLog"]
        paged += [(e["node"]["action"], e["node"]["targetId"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert paged == [(e["action"], e["targetId"]) for e in log]
    assert await AuditEntry.filter(actor_id=owner_user.id).count() == 12


# --- Other organizations' IDs ------------------------------------------------------------------


async def _snapshot(organization_id: int) -> dict[str, Any]:
    """Everything about an organization that a mutation could change."""
    return {
        "organization": await Organization.filter(id=organization_id).values("name", "slug"),
        "members": await Membership.filter(organization_id=organization_id).order_by("id")
        .values("id", "user_id", "role"),
        "invitations": await Invitation.filter(organization_id=organization_id).order_by("id")
        .values("id", "email", "role", "status", "expires_at"),
        "products": await Product.filter(organization_id=organization_id).order_by("id")
        .values("id", "name", "slug", "description", "platform", "customer_auth"),
        "clients": await OAuthClient.filter(product__organization_id=organization_id)
        .order_by("id").values("client_id", "secret_hash", "redirect_uris", "deleted_at"),
        "audit": await AuditEntry.all().count(),
        "outbox": await OutboxEmail.all().count(),
        "organizations": await Organization.all().count(),
    }


async def test_another_organizations_ids_are_not_found_and_nothing_changes(http):
    acme = await organization_with_team(roles=("OWNER",))
    globex = await organization_with_team("Globex", "globex", domain="example.org",
                                          roles=("OWNER", "DEVELOPER"))
    await make_user("free@example.com")
    globex_owner = globex.principals["OWNER"]
    product = await products.create_product(
        globex_owner, globex.organization.id, name="Sensor", slug="sensor", description="",
        platform="Boron", customer_auth="TWO_LEGGED")
    client, _ = await products.create_oauth_client(globex_owner, product.id, name="Backend",
                                                   client_type="SERVER", redirect_uris=[])
    pending = await team.invite_team_member(globex_owner, globex.organization.id,
                                            "free@example.com", "VIEWER")
    token = await access_token(acme.email("OWNER"))
    before = await _snapshot(globex.organization.id)

    organization = gid("Organization", globex.organization.id)
    member = gid("Member", globex.memberships["DEVELOPER"].id)
    owner_member = gid("Member", globex.memberships["OWNER"].id)
    invitation = gid("Invitation", pending.id)
    product_id = gid("Product", product.id)
    no_organization = error("NOT_FOUND", "organizationId", "No such organization.")
    no_member = error("NOT_FOUND", "memberId", "No such team member.")
    no_invitation = error("NOT_FOUND", "invitationId", "No such invitation.")
    no_product = error("NOT_FOUND", "productId", "No such product.")
    no_client = error("NOT_FOUND", "clientId", "No such OAuth client.")
    attempts = [
        ("updateOrganization", "UpdateOrganizationInput",
         {"organizationId": organization, "name": "Mine"}, "organization { id }",
         no_organization),
        ("inviteTeamMember", "InviteTeamMemberInput",
         {"organizationId": organization, "email": "free@example.com", "role": "ADMINISTRATOR"},
         "invitation { id }", no_organization),
        ("revokeInvitation", "InvitationInput", {"invitationId": invitation},
         "invitation { id }", no_invitation),
        ("acceptInvitation", "InvitationInput", {"invitationId": invitation}, "member { id }",
         no_invitation),
        ("declineInvitation", "InvitationInput", {"invitationId": invitation},
         "invitation { id }", no_invitation),
        ("changeTeamMemberRole", "ChangeTeamMemberRoleInput",
         {"memberId": member, "role": "VIEWER"}, "member { id }", no_member),
        ("removeTeamMember", "MemberInput", {"memberId": member}, "member { id }", no_member),
        ("removeTeamMember", "MemberInput", {"memberId": owner_member}, "member { id }",
         no_member),
        ("transferOwnership", "MemberInput", {"memberId": member}, "member { id }", no_member),
        ("leaveOrganization", "LeaveOrganizationInput", {"organizationId": organization},
         "left", no_organization),
        ("createProduct", "CreateProductInput",
         {"organizationId": organization, "name": "Mine", "platform": "Photon",
          "customerAuth": "SIMPLE"}, "product { id }", no_organization),
        ("updateProduct", "UpdateProductInput", {"productId": product_id, "name": "Mine"},
         "product { id }", no_product),
        ("createOAuthClient", "CreateOAuthClientInput",
         {"productId": product_id, "name": "Mine", "type": "SERVER"}, "clientSecret",
         no_product),
        ("rotateOAuthClientSecret", "OAuthClientInput", {"clientId": client.client_id},
         "clientSecret", no_client),
        ("deleteOAuthClient", "OAuthClientInput", {"clientId": client.client_id},
         "oauthClient { clientId }", no_client),
    ]
    for name, input_type, input, selection, expected in attempts:
        payload = await run_mutation(http, name, input_type, input, selection, token=token)
        assert payload["userErrors"] == expected, name
        assert all(value in (None, False) for key, value in payload.items()
                   if key != "userErrors"), name
    # An ID that exists elsewhere is indistinguishable from one that exists nowhere.
    for name, input_type, field, type_name in [
        ("updateOrganization", "UpdateOrganizationInput", "organizationId", "Organization"),
        ("updateProduct", "UpdateProductInput", "productId", "Product"),
        ("removeTeamMember", "MemberInput", "memberId", "Member"),
        ("revokeInvitation", "InvitationInput", "invitationId", "Invitation"),
    ]:
        input = {field: gid(type_name, 987654321)} | ({"name": "Mine"} if "update" in name else {})
        selection = {"updateOrganization": "organization { id }", "updateProduct": "product { id }",
                     "removeTeamMember": "member { id }"}.get(name, "invitation { id }")
        payload = await run_mutation(http, name, input_type, input, selection, token=token)
        assert payload["userErrors"][0]["code"] == "NOT_FOUND", name
        assert payload["userErrors"][0]["field"] == field, name
    for query, variables in [
        ("query($s: String!) { organization(slug: $s) { id } }", {"s": "globex"}),
        ("query($s: String!) { product(idOrSlug: $s) { id } }", {"s": "sensor"}),
        ("query($s: String!) { product(idOrSlug: $s) { id } }", {"s": str(product.id)}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": organization}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": member}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": invitation}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": product_id}),
    ]:
        body = await graphql(http, query, variables, token=token)
        assert ("errors" in body, list(body["data"].values())) == (False, [None]), query
    assert await _snapshot(globex.organization.id) == before


async def test_an_id_of_the_wrong_type_is_a_user_error(http):
    acme = await organization_with_team(roles=("OWNER",))
    token = await access_token(acme.email("OWNER"))
    before = await counts()
    payload = await run_mutation(
        http, "updateOrganization", "UpdateOrganizationInput",
        {"organizationId": gid("Member", acme.memberships["OWNER"].id), "name": "Renamed"},
        "organization { id }", token=token)
    assert payload["organization"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        ("organizationId", "INVALID_ID")]
    assert await counts() == before


async def test_a_removed_member_can_be_invited_again(http):
    acme = await organization_with_team(roles=("OWNER", "VIEWER"))
    owner = await access_token(acme.email("OWNER"))
    viewer = await access_token(acme.email("VIEWER"))
    await on_member(http, owner, "removeTeamMember", acme.memberships["VIEWER"].id)
    sent = await invite(http, owner, acme.organization.id, "viewer@example.com", "SUPPORT")
    assert sent["userErrors"] == []
    accepted = await answer(http, viewer, "acceptInvitation", sent["invitation"]["id"])
    assert accepted["member"]["role"] == "SUPPORT"
    assert (await team_of(http, owner))["seats"] == 2


async def test_node_ids_that_cannot_be_keys_are_null(http):
    acme = await organization_with_team(roles=("OWNER",))
    owner = acme.principals["OWNER"]
    await make_user("ada@example.com")
    product = await products.create_product(
        owner, acme.organization.id, name="Thermostat", slug="thermostat", description="",
        platform="Photon", customer_auth="SIMPLE")
    invitation = await team.invite_team_member(owner, acme.organization.id, "ada@example.com",
                                               "VIEWER")
    entry = await AuditEntry.filter(organization_id=acme.organization.id).first()
    token = await access_token(acme.email("OWNER"))
    real = {"Organization": acme.organization.id, "Member": acme.memberships["OWNER"].id,
            "Invitation": invitation.id, "Product": product.id, "AuditEntry": entry.id}
    query = "query($id: ID!) { node(id: $id) { id } }"
    for type_name, key in real.items():
        body = await graphql(http, query, {"id": gid(type_name, key)}, token=token)
        assert body["data"] == {"node": {"id": gid(type_name, key)}}
        # Beyond BIGINT, digits int() refuses, signs, and a slug for a product ID.
        for node_id in ("9" * 25, str(2**63), "\u00b2", "-1", f"+{key}", "thermostat"):
            body = await graphql(http, query, {"id": gid(type_name, node_id)}, token=token)
            assert ("errors" in body, body["data"]) == (False, {"node": None}), (type_name,
                                                                                 node_id)


@pytest.mark.parametrize(
    ("name", "slug", "second"),
    [
        ("Ab", "ab-org", "ab-org-2"),
        ("日本", "org", "org-2"),
        ("Ünïcödé   Sensors!", "unicode-sensors", "unicode-sensors-2"),
        ("x" * 100, "x" * 63, "x" * 58 + "-2"),
        ("a-" * 50, "a-" * 31 + "a", "a-" * 28 + "a-2"),
    ],
    ids=["short", "no-ascii", "accents", "long", "long-ending-in-hyphen"],
)
async def test_derived_slugs_are_always_valid(http, name, slug, second):
    _, first = await user_with_token(http, "a@example.com")
    _, other = await user_with_token(http, "b@example.com")
    assert (await create_organization(http, first, name=name))["organization"]["slug"] == slug
    again = (await create_organization(http, other, name=name))["organization"]["slug"]
    assert again == second
    assert clean_slug(again) == again


async def test_joining_another_organization_first_leaves_the_invitation_unanswerable(http):
    acme = await organization_with_team(roles=("OWNER",))
    globex = await organization_with_team("Globex", "globex", domain="example.org",
                                          roles=("OWNER",))
    ada, token = await user_with_token(http, "ada@example.com")
    from_acme = await team.invite_team_member(acme.principals["OWNER"], acme.organization.id,
                                              ada.email, "DEVELOPER")
    from_globex = await team.invite_team_member(globex.principals["OWNER"],
                                                globex.organization.id, ada.email, "VIEWER")
    assert [i["organizationName"] for i in (await me(http, token))["invitations"]] == [
        "Globex", "Acme"]
    joined = await answer(http, token, "acceptInvitation", gid("Invitation", from_globex.id))
    assert joined["member"]["role"] == "VIEWER"
    # Acme's invitation is still addressed to her: she sees it, but cannot accept it now.
    assert [i["organizationName"] for i in (await me(http, token))["invitations"]] == ["Acme"]
    node = await graphql(http, "query($id: ID!) { node(id: $id) { ... on Invitation { status } } }",
                         {"id": gid("Invitation", from_acme.id)}, token=token)
    assert node == {"data": {"node": {"status": "PENDING"}}} | {
        k: v for k, v in node.items() if k == "extensions"}
    before = await counts()
    refused = await answer(http, token, "acceptInvitation", gid("Invitation", from_acme.id))
    assert refused == {"member": None, "userErrors": error(
        "IN_ANOTHER_ORGANIZATION", "invitationId",
        "Leave your current organization before joining another.")}
    assert await counts() == before
    assert (await me(http, token))["organization"] == {"slug": "globex", "viewerRole": "VIEWER"}


async def test_concurrent_transfers_leave_exactly_one_owner(monkeypatch: pytest.MonkeyPatch):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR", "DEVELOPER"))
    owner = acme.principals["OWNER"]
    # The race under test: both transfers have found their caller the owner before either
    # writes. Without holding each at that point, a slow machine may finish the first
    # transfer before the second even looks, and the second is then simply FORBIDDEN.
    both_checked = asyncio.Barrier(2)
    teammate = access.teammate

    async def teammate_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = await teammate(*args, **kwargs)
        await both_checked.wait()
        return found

    monkeypatch.setattr(access, "teammate", teammate_then_wait)
    outcomes = await asyncio.gather(
        team.transfer_ownership(owner, acme.memberships["ADMINISTRATOR"].id),
        team.transfer_ownership(owner, acme.memberships["DEVELOPER"].id),
        return_exceptions=True,
    )
    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failures) == 1
    assert (failures[0].code, failures[0].message) == (
        "NOT_OWNER", "You no longer own this organization."
    )
    roles = dict(await Membership.filter(organization_id=acme.organization.id).values_list(
        "id", "role"
    ))
    assert list(roles.values()).count("OWNER") == 1
    assert roles[acme.memberships["OWNER"].id] == "ADMINISTRATOR"



async def test_concurrent_invitations_of_one_address_make_one_pending_invitation(
        monkeypatch: pytest.MonkeyPatch):
    acme = await organization_with_team(roles=("OWNER", "ADMINISTRATOR"))
    # The race under test: both invitations have looked for a pending one, and found none,
    # before either writes. The unique index on pending invitations lets one create it; the
    # other then re-sends it, as an invitation made right after would.
    both_checked = asyncio.Barrier(2)
    lookups = 0
    pending_invitation = team.pending_invitation

    async def look_then_wait(*args: Any, **kwargs: Any) -> Any:
        nonlocal lookups
        found = await pending_invitation(*args, **kwargs)
        lookups += 1
        if lookups <= 2:
            await both_checked.wait()
        return found

    monkeypatch.setattr(team, "pending_invitation", look_then_wait)
    invitations = await asyncio.gather(
        team.invite_team_member(acme.principals["OWNER"], acme.organization.id,
                                "ada@example.com", "VIEWER"),
        team.invite_team_member(acme.principals["ADMINISTRATOR"], acme.organization.id,
                                "Ada@example.com", "DEVELOPER"),
    )
    assert lookups == 3  # the loser looked again, and found the winner's
    assert invitations[0].id == invitations[1].id
    pending = await Invitation.filter(organization_id=acme.organization.id,
                                      email="ada@example.com", status="PENDING")
    assert [i.id for i in pending] == [invitations[0].id]
    actions = await AuditEntry.filter(organization_id=acme.organization.id,
                                      target_label="ada@example.com").values_list(
        "action", flat=True)
    assert sorted(actions) == ["team.invite", "team.invite.resend"]
    assert await OutboxEmail.filter(to="ada@example.com").count() == 2
