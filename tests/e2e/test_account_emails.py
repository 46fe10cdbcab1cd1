"""Email verification, password reset and the invitation hijack, end to end: the emails reach a
real SMTP server, and their links open the app's own pages, driven as a browser without
JavaScript drives them (GET the page, POST its form)."""

from __future__ import annotations

import re

import httpx

from auth import accounts
from models.accounts import AccountToken, User
from tests.support.accounts import access_token, make_user, organization_with_team, password_login
from tests.support.constants import PASSWORD
from tests.support.graphql import gid, graphql
from tests.support.servers import SmtpServer

SIGN_UP = """
mutation($input: SignUpInput!) {
  signUp(input: $input) { user { email emailVerified } userErrors { field code message } }
}
"""
ME = "{ me { email emailVerified invitations { id } } }"
ACCEPT = """
mutation($id: ID!) { acceptInvitation(input: {invitationId: $id}) {
  member { email role } userErrors { field code message } } }
"""
INVITE = """
mutation($input: InviteTeamMemberInput!) {
  inviteTeamMember(input: $input) { invitation { id email status } userErrors { code } }
}
"""
RESEND = "mutation { resendVerificationEmail { user { emailVerified } userErrors { code } } }"
REQUEST_RESET = """
mutation($email: String!) { requestPasswordReset(input: {email: $email}) { userErrors { code } } }
"""
HOSTED_HEADERS = ("X-Frame-Options", "Content-Security-Policy", "Referrer-Policy",
                  "X-Content-Type-Options", "Cache-Control")
LINK = re.compile(r"http://127\.0\.0\.1(/account/(?:verify|reset)\?token=[\w%-]+)")
NEW_PASSWORD = "a brand new password"


def link_in(body: str) -> str:
    [path] = LINK.findall(body)
    return path


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


async def submit(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Open a page and post its form with `fields`, as a browser would."""
    shown = await http.get(path)
    assert shown.status_code == 200, shown.text
    for name in HOSTED_HEADERS:
        assert name in shown.headers
    assert "form-action 'self'" in shown.headers["Content-Security-Policy"]
    form = {"csrf_token": hidden(shown.text, "csrf_token"), **fields}
    if 'name="token"' in shown.text:
        form["token"] = hidden(shown.text, "token")
    return await http.post(path.partition("?")[0], data=form)


async def sign_up(http: httpx.AsyncClient, email: str) -> dict:
    body = await graphql(http, SIGN_UP, {"input": {"email": email, "password": PASSWORD}})
    return body["data"]["signUp"]


async def test_sign_up_emails_a_single_use_link_that_verifies_the_email(
        http, smtp_server: SmtpServer):
    assert await sign_up(http, "ada@example.com") == {
        "user": {"email": "ada@example.com", "emailVerified": False}, "userErrors": []}
    [email] = await smtp_server.wait_for(1)
    assert email.rcpt_tos == ["ada@example.com"]
    assert email.message["Subject"] == "Verify your email for Device Cloud"
    path = link_in(email.message.get_content())
    token = path.partition("token=")[2]
    stored = await AccountToken.get(user__email="ada@example.com")
    assert token not in stored.token_hash  # only a hash is stored
    login = await password_login(http, "ada@example.com")
    assert login.status_code == 200  # an unverified account signs in
    ada = login.json()["access_token"]
    assert (await graphql(http, ME, token=ada))["data"]["me"]["emailVerified"] is False

    opened = await http.get(path)  # opening the link alone verifies nothing
    assert opened.status_code == 200
    assert (await User.get(email="ada@example.com")).email_verified_at is None
    done = await submit(http, path)
    assert done.status_code == 200
    assert "ada@example.com is verified" in done.text
    assert (await graphql(http, ME, token=ada))["data"]["me"]["emailVerified"] is True

    again = await submit(http, path)
    assert again.status_code == 400
    assert "This link is unknown, already used or expired" in again.text
    assert (await graphql(http, RESEND, token=ada))["data"]["resendVerificationEmail"] == {
        "user": None, "userErrors": [{"code": "EMAIL_ALREADY_VERIFIED"}]}


async def test_a_form_without_its_csrf_token_is_refused(http, smtp_server: SmtpServer):
    await sign_up(http, "ada@example.com")
    [email] = await smtp_server.wait_for(1)
    path = link_in(email.message.get_content())
    forged = await http.post("/account/verify", data={"token": path.partition("token=")[2],
                                                      "csrf_token": "forged"})
    assert forged.status_code == 403
    assert (await User.get(email="ada@example.com")).email_verified_at is None


async def test_an_expired_verification_link_is_refused_and_a_new_one_works(
        http, smtp_server: SmtpServer, frozen_clock):
    await sign_up(http, "ada@example.com")
    [first] = await smtp_server.wait_for(1)
    frozen_clock.advance(seconds=accounts.VERIFICATION_LIFETIME.total_seconds() + 1)
    expired = await submit(http, link_in(first.message.get_content()))
    assert expired.status_code == 400
    ada = await access_token("ada@example.com")
    assert (await graphql(http, RESEND, token=ada))["data"]["resendVerificationEmail"] == {
        "user": {"emailVerified": False}, "userErrors": []}
    [_, second] = await smtp_server.wait_for(2)
    assert (await submit(http, link_in(second.message.get_content()))).status_code == 200
    assert (await User.get(email="ada@example.com")).email_verified_at is not None


async def test_the_invitation_hijack_waits_for_verification(http, smtp_server: SmtpServer):
    """Someone signs up as newhire@ before the owner invites that address: the invitation
    shows, but accepting it needs the address proven, which the squatter cannot do."""
    acme = await organization_with_team(roles=("OWNER",), domain="acme.example")
    await sign_up(http, "newhire@acme.example")
    squatter = await access_token("newhire@acme.example")
    owner = await access_token(acme.email("OWNER"))
    invited = await graphql(http, INVITE, {"input": {
        "organizationId": gid("Organization", acme.organization.id),
        "email": "newhire@acme.example", "role": "DEVELOPER"}}, token=owner)
    invitation = invited["data"]["inviteTeamMember"]["invitation"]
    mine = (await graphql(http, ME, token=squatter))["data"]["me"]
    assert mine["invitations"] == [{"id": invitation["id"]}]
    refused = await graphql(http, ACCEPT, {"id": invitation["id"]}, token=squatter)
    assert refused["data"]["acceptInvitation"] == {"member": None, "userErrors": [{
        "field": "invitationId", "code": "EMAIL_NOT_VERIFIED",
        "message": "Verify your email first: open the link we sent to newhire@acme.example, "
                   "or ask for a new one with resendVerificationEmail."}]}

    # The address's real owner reads the verification email and then accepts.
    emails = await smtp_server.wait_for(2)
    [verification] = [e for e in emails if e.message["Subject"].startswith("Verify")]
    assert (await submit(http, link_in(verification.message.get_content()))).status_code == 200
    accepted = await graphql(http, ACCEPT, {"id": invitation["id"]}, token=squatter)
    assert accepted["data"]["acceptInvitation"] == {
        "member": {"email": "newhire@acme.example", "role": "DEVELOPER"}, "userErrors": []}


async def test_an_unverified_account_cannot_create_an_organization(http):
    await make_user("ada@example.com", verified=False)
    ada = await access_token("ada@example.com")
    created = await graphql(http, 'mutation { createOrganization(input: {name: "Acme"}) '
                                  "{ organization { id } userErrors { code } } }", token=ada)
    assert created["data"]["createOrganization"] == {
        "organization": None, "userErrors": [{"code": "EMAIL_NOT_VERIFIED"}]}


async def test_inviting_an_address_without_an_account_emails_a_sign_up_invitation(
        http, smtp_server: SmtpServer):
    acme = await organization_with_team(roles=("OWNER",), domain="acme.example")
    await organization_with_team("Globex", "globex", domain="globex.example", roles=("OWNER",))
    owner = await access_token(acme.email("OWNER"))
    answers = []
    for address in ("nobody@acme.example", "owner@globex.example"):
        invited = await graphql(http, INVITE, {"input": {
            "organizationId": gid("Organization", acme.organization.id), "email": address,
            "role": "VIEWER"}}, token=owner)
        answers.append(invited["data"]["inviteTeamMember"]["invitation"] | {"id": None})
    assert answers == [  # the same answer whether or not an account uses the address
        {"id": None, "email": "nobody@acme.example", "status": "PENDING"},
        {"id": None, "email": "owner@globex.example", "status": "PENDING"},
    ]
    emails = await smtp_server.wait_for(2)
    by_address = {e.rcpt_tos[0]: e.message.get_content() for e in emails}
    assert ("No Device Cloud account uses nobody@acme.example yet: sign up with this "
            "address, verify it") in by_address["nobody@acme.example"]
    assert "Sign in with owner@globex.example" in by_address["owner@globex.example"]
    for body in by_address.values():
        [url] = re.findall(r"\((http://127\.0\.0\.1/account) shows how\)", body)
        page = await http.get(url.removeprefix("http://127.0.0.1"))
        assert page.status_code == 200  # the email's URL exists
        assert "acceptInvitation" in page.text


async def test_password_reset_end_to_end_revokes_every_session(http, smtp_server: SmtpServer):
    await make_user("ada@example.com")
    first = (await password_login(http, "ada@example.com")).json()
    asked = await submit(http, "/account/reset", email="Ada@Example.com")
    assert asked.status_code == 200
    assert "If an account uses this address, we emailed it a link" in asked.text
    [email] = await smtp_server.wait_for(1)
    assert email.rcpt_tos == ["ada@example.com"]
    path = link_in(email.message.get_content())

    short = await submit(http, path, password="short")
    assert short.status_code == 400
    assert "at least 8 characters" in short.text
    done = await submit(http, path, password=NEW_PASSWORD)
    assert done.status_code == 200
    assert "every session of your account is signed out" in done.text

    stale = await http.post("/graphql", json={"query": ME},
                            headers={"Authorization": f"Bearer {first['access_token']}"})
    assert stale.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    refreshed = await http.post("/oauth/token", data={
        "grant_type": "refresh_token", "client_id": "devicecloud",
        "refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 400
    assert (await password_login(http, "ada@example.com")).status_code == 400
    assert (await password_login(http, "ada@example.com", NEW_PASSWORD)).status_code == 200
    reused = await submit(http, path, password="yet another password")
    assert reused.status_code == 400
    assert "already used or expired" in reused.text


async def test_a_reset_request_answers_the_same_for_an_unknown_address(
        http, smtp_server: SmtpServer):
    await make_user("ada@example.com")
    unknown = await graphql(http, REQUEST_RESET, {"email": "nobody@example.com"})
    known = await graphql(http, REQUEST_RESET, {"email": "ada@example.com"})
    assert unknown["data"] == {"requestPasswordReset": {"userErrors": []}}
    assert known["data"] == unknown["data"]
    [email] = await smtp_server.wait_for(1)
    assert email.rcpt_tos == ["ada@example.com"]


async def test_reset_requests_are_throttled_per_address_and_per_client(http):
    await make_user("ada@example.com")
    codes = []
    for _ in range(accounts.PER_EMAIL_PER_HOUR + 1):
        answer = await graphql(http, REQUEST_RESET, {"email": "ada@example.com"})
        codes.append([e["code"] for e in answer["data"]["requestPasswordReset"]["userErrors"]])
    assert codes == [[]] * accounts.PER_EMAIL_PER_HOUR + [["TOO_MANY_REQUESTS"]]
    codes = []
    for n in range(accounts.PER_CLIENT_PER_HOUR + 1):
        answer = await graphql(http, REQUEST_RESET, {"email": f"someone{n}@example.com"})
        codes.append([e["code"] for e in answer["data"]["requestPasswordReset"]["userErrors"]])
    # The client address counted ada's first three (the fourth was refused for the address).
    allowed = accounts.PER_CLIENT_PER_HOUR - accounts.PER_EMAIL_PER_HOUR
    assert codes == [[]] * allowed + [["TOO_MANY_REQUESTS"]] * (len(codes) - allowed)
    page = await submit(http, "/account/reset", email="other@example.com")
    assert page.status_code == 429
    assert "Retry-After" in page.headers
