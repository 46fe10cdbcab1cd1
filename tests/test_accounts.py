"""Accounts: sign-up rules, `me`, sessions, and who may use each field and mutation."""

from __future__ import annotations

import pytest
from strawberry import relay

from models.accounts import User
from tests.support.accounts import client_token, password_login, service_client, signed_in_user
from tests.support.constants import PASSWORD
from tests.support.graphql import graphql

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { user { id email } userErrors { field message code } }
}
"""
SESSIONS = "{ me { id sessions { edges { node { id clientId current } } } } }"
REVOKE = """
mutation Revoke($input: RevokeSessionInput!) {
  revokeSession(input: $input) { session { id } userErrors { field message code } }
}
"""
REVOKE_ALL = """
mutation RevokeAll($input: RevokeAllSessionsInput!) {
  revokeAllSessions(input: $input) { revokedCount userErrors { field message code } }
}
"""


async def test_sign_up_normalises_the_email_and_hashes_with_argon2id(http):
    body = await graphql(
        http, SIGN_UP, {"input": {"email": "  Ada@Example.COM ", "password": PASSWORD}}
    )
    payload = body["data"]["signUp"]
    assert payload["userErrors"] == []
    assert payload["user"]["email"] == "ada@example.com"
    user = await User.get(email="ada@example.com")
    assert payload["user"]["id"] == str(relay.GlobalID("User", str(user.id)))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    login = await password_login(http, "ADA@example.com ")
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("email", "password", "error"),
    [
        ("not-an-email", PASSWORD, {"field": "email", "code": "INVALID_EMAIL"}),
        (
            "   ",
            PASSWORD,
            {"field": "email", "code": "REQUIRED", "message": "Enter an email address."},
        ),
        (
            "ada@example.com",
            "short",
            {
                "field": "password",
                "code": "TOO_SHORT",
                "message": "Password must be at least 8 characters long.",
            },
        ),
        (
            "ada@example.com",
            "x" * 257,
            {
                "field": "password",
                "code": "TOO_LONG",
                "message": "Password must be at most 256 characters long.",
            },
        ),
    ],
)
async def test_sign_up_rejects_bad_input_and_creates_nothing(http, email, password, error):
    body = await graphql(http, SIGN_UP, {"input": {"email": email, "password": password}})
    payload = body["data"]["signUp"]
    assert payload["user"] is None
    [user_error] = payload["userErrors"]
    assert {k: user_error[k] for k in error} == error
    assert user_error["message"]
    assert await User.all().count() == 0


async def test_duplicate_email_is_taken_whatever_its_case(http):
    first = await graphql(
        http, SIGN_UP, {"input": {"email": "ada@example.com", "password": PASSWORD}}
    )
    assert first["data"]["signUp"]["userErrors"] == []
    again = await graphql(
        http, SIGN_UP, {"input": {"email": "ADA@example.com", "password": "another password"}}
    )
    assert again["data"]["signUp"] == {
        "user": None,
        "userErrors": [
            {
                "field": "email",
                "code": "EMAIL_TAKEN",
                "message": "An account with this email already exists; sign in instead.",
            }
        ],
    }
    assert await User.all().count() == 1


async def test_sessions_list_and_revoke_one(http):
    first = await signed_in_user(http, "ada@example.com")
    second = (await password_login(http, "ada@example.com")).json()
    body = await graphql(http, SESSIONS, token=first["access_token"])
    edges = body["data"]["me"]["sessions"]["edges"]
    assert [(e["node"]["clientId"], e["node"]["current"]) for e in edges] == [
        ("devicecloud", False),
        ("devicecloud", True),
    ]
    other_session = edges[0]["node"]["id"]
    revoked = await graphql(
        http, REVOKE, {"input": {"sessionId": other_session}}, token=first["access_token"]
    )
    assert revoked["data"]["revokeSession"] == {"session": {"id": other_session}, "userErrors": []}
    await graphql(http, SESSIONS, token=second["access_token"], expect_status=401)
    refresh = await http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": second["refresh_token"],
            "client_id": "devicecloud",
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    still = await graphql(http, SESSIONS, token=first["access_token"])
    assert len(still["data"]["me"]["sessions"]["edges"]) == 1


async def test_revoke_all_sessions_keeping_the_current_one(http):
    current = await signed_in_user(http, "ada@example.com")
    others = [(await password_login(http, "ada@example.com")).json() for _ in range(2)]
    body = await graphql(
        http, REVOKE_ALL, {"input": {"keepCurrent": True}}, token=current["access_token"]
    )
    assert body["data"]["revokeAllSessions"] == {"revokedCount": 2, "userErrors": []}
    for tokens in others:
        await graphql(http, SESSIONS, token=tokens["access_token"], expect_status=401)
    await graphql(http, SESSIONS, token=current["access_token"])
    everything = await graphql(http, REVOKE_ALL, {"input": {}}, token=current["access_token"])
    assert everything["data"]["revokeAllSessions"]["revokedCount"] == 1
    await graphql(http, SESSIONS, token=current["access_token"], expect_status=401)


async def test_sessions_are_paged_with_stable_cursors(http):
    tokens = await signed_in_user(http, "ada@example.com")
    for _ in range(4):
        await password_login(http, "ada@example.com")
    query = """query Page($after: String) { me { sessions(first: 2, after: $after) {
        edges { node { id } } pageInfo { hasNextPage endCursor } } } }"""
    seen, after, has_next = [], None, True
    while has_next:
        page = (await graphql(http, query, {"after": after}, token=tokens["access_token"]))["data"][
            "me"
        ]["sessions"]
        seen.append([e["node"]["id"] for e in page["edges"]])
        has_next, after = page["pageInfo"]["hasNextPage"], page["pageInfo"]["endCursor"]
        await password_login(http, "ada@example.com")  # a new session must not shift pages
    assert [len(ids) for ids in seen] == [2, 2, 1]
    assert len({i for ids in seen for i in ids}) == 5
    bad = await graphql(http, query, {"after": "garbage"}, token=tokens["access_token"])
    assert bad["errors"][0]["extensions"] == {"code": "INVALID_CURSOR"}


async def _principal_tokens(http) -> dict[str, str | None]:
    """One token per kind of caller, plus the session of the account under test."""
    owner = await signed_in_user(http, "owner@example.com")
    outsider = await signed_in_user(http, "outsider@example.com")
    client, secret = await service_client()
    return {
        "anonymous": None,
        "client": await client_token(http, client, secret),
        "outsider": outsider["access_token"],
        "owner": owner["access_token"],
    }


# Who may do what with the owner's account. Each cell: the expected outcome.
MATRIX = {
    #              anonymous          client              outsider      owner
    "me": {"anonymous": None, "client": None, "outsider": "outsider", "owner": "owner"},
    "node": {"anonymous": None, "client": None, "outsider": None, "owner": "owner"},
    "revoke": {
        "anonymous": "UNAUTHENTICATED",
        "client": "UNAUTHENTICATED",
        "outsider": "NOT_FOUND",
        "owner": "OK",
    },
    "revoke_all": {
        "anonymous": "UNAUTHENTICATED",
        "client": "UNAUTHENTICATED",
        "outsider": "OK",
        "owner": "OK",
    },
    # Both accounts are verified already; an unverified one gets a new link (tests/e2e).
    "resend_verification": {
        "anonymous": "UNAUTHENTICATED",
        "client": "UNAUTHENTICATED",
        "outsider": "EMAIL_ALREADY_VERIFIED",
        "owner": "EMAIL_ALREADY_VERIFIED",
    },
    # Anyone may ask; the answer never depends on the caller or the address.
    "request_reset": {"anonymous": "OK", "client": "OK", "outsider": "OK", "owner": "OK"},
}


@pytest.mark.parametrize("caller", ["anonymous", "client", "outsider", "owner"])
async def test_permission_matrix(http, caller):
    tokens = await _principal_tokens(http)
    token = tokens[caller]
    owner = await User.get(email="owner@example.com")
    owner_id = str(relay.GlobalID("User", str(owner.id)))
    await password_login(http, "owner@example.com")  # a second session, the one to revoke
    owner_sessions = (await graphql(http, SESSIONS, token=tokens["owner"]))["data"]["me"][
        "sessions"
    ]["edges"]
    [session_id] = [e["node"]["id"] for e in owner_sessions if not e["node"]["current"]]

    me = (await graphql(http, "{ me { email } }", token=token))["data"]["me"]
    expected = MATRIX["me"][caller]
    assert me == (None if expected is None else {"email": f"{expected}@example.com"})

    node = (
        await graphql(
            http, "query($id: ID!) { node(id: $id) { id } }", {"id": owner_id}, token=token
        )
    )["data"]["node"]
    assert node == (None if MATRIX["node"][caller] is None else {"id": owner_id})

    revoke = (await graphql(http, REVOKE, {"input": {"sessionId": session_id}}, token=token))[
        "data"
    ]["revokeSession"]
    outcome = revoke["userErrors"][0]["code"] if revoke["userErrors"] else "OK"
    assert outcome == MATRIX["revoke"][caller]

    revoke_all = (await graphql(http, REVOKE_ALL, {"input": {"keepCurrent": True}}, token=token))[
        "data"
    ]["revokeAllSessions"]
    outcome = revoke_all["userErrors"][0]["code"] if revoke_all["userErrors"] else "OK"
    assert outcome == MATRIX["revoke_all"][caller]

    resend = (await graphql(
        http, "mutation { resendVerificationEmail { userErrors { code } } }", token=token
    ))["data"]["resendVerificationEmail"]
    outcome = resend["userErrors"][0]["code"] if resend["userErrors"] else "OK"
    assert outcome == MATRIX["resend_verification"][caller]

    reset = (await graphql(
        http, 'mutation { requestPasswordReset(input: {email: "owner@example.com"}) '
              "{ userErrors { code } } }", token=token,
    ))["data"]["requestPasswordReset"]
    outcome = reset["userErrors"][0]["code"] if reset["userErrors"] else "OK"
    assert outcome == MATRIX["request_reset"][caller]


async def test_sessions_of_another_user_are_forbidden(http):
    tokens = await _principal_tokens(http)
    owner = await User.get(email="owner@example.com")
    query = (
        """query($id: ID!) { node(id: $id) { ... on User { sessions { edges { cursor } } } } }"""
    )
    body = await graphql(
        http, query, {"id": str(relay.GlobalID("User", str(owner.id)))}, token=tokens["owner"]
    )
    assert len(body["data"]["node"]["sessions"]["edges"]) == 1
    session = await graphql(
        http,
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": str(relay.GlobalID("Session", "999999"))},
        token=tokens["owner"],
    )
    assert session["data"]["node"] is None


async def test_a_malformed_session_id_is_a_user_error(http):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(
        http,
        REVOKE,
        {"input": {"sessionId": str(relay.GlobalID("User", "1"))}},
        token=tokens["access_token"],
    )
    assert body["data"]["revokeSession"]["userErrors"] == [
        {"field": "sessionId", "code": "INVALID_ID", "message": "This is not the ID of a Session."}
    ]


@pytest.mark.parametrize(
    "look_alike",
    ["\uff44emo@example.com", "d\u0435mo@example.com", "DEMO@example.com"],
    ids=["fullwidth-d", "cyrillic-e", "upper-case"],
)
async def test_a_look_alike_of_an_existing_email_is_taken(http, look_alike):
    first = await graphql(http, SIGN_UP, {"input": {"email": "demo@example.com",
                                                    "password": PASSWORD}})
    assert first["data"]["signUp"]["userErrors"] == []
    again = await graphql(http, SIGN_UP, {"input": {"email": look_alike, "password": PASSWORD}})
    assert again["data"]["signUp"] == {"user": None, "userErrors": [{
        "field": "email", "code": "EMAIL_TAKEN",
        "message": "An account with this email already exists; sign in instead."}]}
    assert await User.all().count() == 1


async def test_sign_up_is_throttled_per_address_and_per_client_address(
        http, cheap_password_hashing):
    def codes(body):
        return [e["code"] for e in body["data"]["signUp"]["userErrors"]]

    # The same address (look-alikes included) again and again: refused past the limit even
    # though each attempt was already EMAIL_TAKEN, so guessing is slow too.
    answers = [codes(await graphql(http, SIGN_UP, {"input": {
        "email": email, "password": PASSWORD}})) for email in (
        "ada@example.com", "ada@example.com", "\uff41da@example.com", "ada@example.com")]
    assert answers == [[], ["EMAIL_TAKEN"], ["EMAIL_TAKEN"], ["TOO_MANY_REQUESTS"]]
    # Distinct addresses from one client address: 10 an hour, the 3 above included.
    answers = [codes(await graphql(http, SIGN_UP, {"input": {
        "email": f"user{n}@example.com", "password": PASSWORD}})) for n in range(8)]
    assert answers == [[]] * 7 + [["TOO_MANY_REQUESTS"]]
    assert await User.all().count() == 8
