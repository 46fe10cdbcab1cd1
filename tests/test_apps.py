"""Third-party apps in GraphQL: registering (secret shown once, stored hashed), listing and
deleting one's apps, the apps one authorized and withdrawing that consent; who may do it; and
how Login with Device Cloud links a platform account to a product's customer."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pytest

from auth import apps, code_flow, tokens
from auth.principals import UserPrincipal
from core import clock
from core.errors import Conflict, PermissionDenied
from fleet import products
from models.accounts import User
from models.customers import Customer
from models.oauth import AuthorizationCode, Consent, OAuthClient, TokenFamily
from tests.support.accounts import (
    access_token,
    acting_as,
    make_user,
    organization_with_team,
    service_client,
)
from tests.support.graphql import graphql, run_mutation
from tests.support.matrix import OK, Matrix, Probe, ok_if

APP = "app { clientId name redirectUris scopes createdAt }"
CALLBACK = "https://dash.example.com/callback"


async def create_app(http, token: str | None, **fields: Any) -> dict[str, Any]:
    input = {"name": "Dashboard", "redirectUris": [CALLBACK], "scopes": ["devices:read"]}
    return await run_mutation(http, "createApp", "CreateAppInput", input | fields,
                              f"{APP} clientSecret", token=token)


@pytest.mark.parametrize(("public", "expected"), [
    (True, None),
    (False, {"field": "redirectUris", "code": "INVALID_REDIRECT_URI",
             "message": "The redirect URI 'com.example.cli:/callback' uses the scheme "
                        "'com.example.cli'; use https."}),
])
async def test_a_public_app_has_no_secret_and_may_use_a_private_use_scheme(
    http, public, expected
):
    await make_user("maker@example.com")
    maker = await access_token("maker@example.com")
    uris = ["http://127.0.0.1/callback", "com.example.cli:/callback"]
    created = await run_mutation(
        http, "createApp", "CreateAppInput",
        {"name": "CLI", "redirectUris": uris, "scopes": ["devices:read"], "public": public},
        "app { clientId redirectUris public } clientSecret", token=maker)
    if expected is not None:
        assert created == {"app": None, "clientSecret": None, "userErrors": [expected]}
        assert not await OAuthClient.exists(owner_id__not_isnull=True)
        return
    client_id = created["app"]["clientId"]
    assert created == {"app": {"clientId": client_id, "redirectUris": uris, "public": True},
                       "clientSecret": None, "userErrors": []}
    row = await OAuthClient.get(client_id=client_id)
    assert (row.secret_hash, row.grant_types) == (None, ["authorization_code", "refresh_token"])
    listed = await graphql(http, "{ me { apps { public } } }", token=maker)
    assert listed["data"]["me"]["apps"] == [{"public": True}]


async def my_apps(http, token: str) -> list[dict[str, Any]]:
    body = await graphql(http, "{ me { apps { clientId name scopes } } }", token=token)
    assert "errors" not in body, body
    return body["data"]["me"]["apps"]


async def issue(client: OAuthClient, **who: Any) -> str:
    issued = await tokens.issue(client=client, scope=who.pop("scope", ""),
                                grant_type="authorization_code", access_lifetime=3600,
                                refresh_lifetime=None, **who)
    return issued.access_token


async def test_create_list_and_delete_an_app(http):
    maker_user = await make_user("maker@example.com")
    maker = await access_token("maker@example.com")

    created = await create_app(
        http, maker, name="  Dashboard   Pro ",
        redirectUris=[CALLBACK, "http://127.0.0.1:3000/cb", CALLBACK],
        scopes=["devices:call", "devices:read", "devices:call"],
    )
    assert created["userErrors"] == []
    app, secret = created["app"], created["clientSecret"]
    assert re.fullmatch(r"dc_app_[0-9a-f]{24}", app["clientId"])
    assert re.fullmatch(r"dc_cs_[A-Za-z0-9_-]{43}", secret)
    assert {k: v for k, v in app.items() if k != "createdAt"} == {
        "clientId": app["clientId"], "name": "Dashboard Pro",
        "redirectUris": [CALLBACK, "http://127.0.0.1:3000/cb"],
        "scopes": ["devices:read", "devices:call"],
    }
    row = await OAuthClient.get(client_id=app["clientId"])
    assert (row.owner_id, row.kind, row.product_id, row.first_party, row.grant_types,
            row.scope) == (maker_user.id, "WEB", None, False,
                           ["authorization_code", "refresh_token"], "devices:read devices:call")
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(await OAuthClient.filter(id=row.id).values())

    # Listed for its owner only, without the secret.
    assert await my_apps(http, maker) == [{"clientId": app["clientId"],
                                           "name": "Dashboard Pro",
                                           "scopes": ["devices:read", "devices:call"]}]
    await make_user("other@example.com")
    other = await access_token("other@example.com")
    assert await my_apps(http, other) == []

    # Another user cannot delete it; its owner can, and its tokens and consents go with it.
    assert (await run_mutation(http, "deleteApp", "AppInput", {"clientId": app["clientId"]},
                               "app { clientId }", token=other))["userErrors"] == [
        {"field": "clientId", "message": "No such app.", "code": "NOT_FOUND"}]
    user = await make_user("ada@example.com")
    app_token = await issue(row, user=user, scope="devices:read")
    await Consent.create(user=user, client=row, scope="devices:read", created_at=clock.now(),
                         updated_at=clock.now())
    deleted = await run_mutation(http, "deleteApp", "AppInput", {"clientId": app["clientId"]},
                                 "app { clientId }", token=maker)
    assert deleted == {"app": {"clientId": app["clientId"]}, "userErrors": []}
    await graphql(http, "{ me { email } }", token=app_token, expect_status=401)
    assert await Consent.filter(client_id=row.id).count() == 0
    assert await my_apps(http, maker) == []
    again = await run_mutation(http, "deleteApp", "AppInput", {"clientId": app["clientId"]},
                               "app { clientId }", token=maker)
    assert again["userErrors"][0]["code"] == "NOT_FOUND"


PUBLIC_HTTP = ("uses plain http to a public host; use https (http is allowed only for "
               "127.0.0.1, [::1] or localhost)")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "  "}, ("name", "REQUIRED", "Enter a name.")),
        ({"redirectUris": []},
         ("redirectUris", "REQUIRED", "An app needs at least one redirect URI.")),
        ({"redirectUris": [f"https://dash.example.com/{n}" for n in range(11)]},
         ("redirectUris", "TOO_MANY", "At most 10 redirect URIs.")),
        ({"redirectUris": ["http://dash.example.com/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          f"The redirect URI 'http://dash.example.com/cb' {PUBLIC_HTTP}.")),
        ({"redirectUris": ["com.example.dash:/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          "The redirect URI 'com.example.dash:/cb' uses the scheme 'com.example.dash'; "
          "use https.")),
        ({"redirectUris": ["https://*.example.com/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          "The redirect URI 'https://*.example.com/cb' contains a wildcard; redirect URIs are "
          "matched exactly.")),
        ({"name": "Device Cloud \u202eppa live"},
         ("name", "UNSAFE_CHARACTERS",
          "A name cannot contain control or text-direction characters; remove U+202E.")),
        ({"redirectUris": ["https://user:pass@evil.example/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          "The redirect URI 'https://user:pass@evil.example/cb' has a user name or password "
          "(userinfo), which redirect URIs must not have.")),
        ({"redirectUris": ["https://dash.example.com@evil.example/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          "The redirect URI 'https://dash.example.com@evil.example/cb' has a user name or "
          "password (userinfo), which redirect URIs must not have.")),
        ({"redirectUris": ["https://faß.example/cb"]},
         ("redirectUris", "INVALID_REDIRECT_URI",
          "The redirect URI 'https://faß.example/cb' has a host that is not in ASCII; write it "
          "in its A-label (punycode) form, as browsers send it: xn--fa-hia.de, not faß.de.")),
        ({"scopes": ["devices:read", "devices:write"]},
         ("scopes", "INVALID_SCOPE", "Unknown scope 'devices:write'; the scopes are "
                                     "devices:read, events:read, devices:call.")),
    ],
)
async def test_bad_app_input_is_refused(http, fields, error):
    await make_user("maker@example.com")
    created = await create_app(http, await access_token("maker@example.com"), **fields)
    field, code, message = error
    assert created == {"app": None, "clientSecret": None,
                       "userErrors": [{"field": field, "code": code, "message": message}]}
    assert await OAuthClient.filter(owner_id__not_isnull=True).count() == 0


async def test_an_app_without_scopes_only_signs_users_in(http):
    await make_user("maker@example.com")
    created = await create_app(http, await access_token("maker@example.com"), scopes=[])
    assert created["app"]["scopes"] == []
    assert (await OAuthClient.get(client_id=created["app"]["clientId"])).scope == ""


async def test_a_user_registers_at_most_20_apps(http):
    maker = await make_user("maker@example.com")
    for n in range(20):
        await apps.create_app(await acting_as(maker), name=f"App {n}", redirect_uris=[CALLBACK],
                              scopes=[])
    refused = await create_app(http, await access_token("maker@example.com"))
    assert refused["userErrors"] == [{"field": None, "code": "LIMIT_REACHED",
                                      "message": "You can register at most 20 apps; delete "
                                                 "one first."}]
    first = await OAuthClient.filter(owner_id=maker.id).order_by("id").first()
    await apps.delete_app(await acting_as(maker), first.client_id)
    assert (await create_app(http, await access_token("maker@example.com")))["userErrors"] == []


async def test_authorized_apps_list_and_revoke(http):
    user = await make_user("ada@example.com")
    mine = await access_token("ada@example.com")
    maker = await make_user("maker@example.com")
    older, _ = await apps.create_app(await acting_as(maker), name="Older",
                                     redirect_uris=[CALLBACK], scopes=["events:read"])
    newer, _ = await apps.create_app(await acting_as(maker), name="Newer",
                                     redirect_uris=[CALLBACK], scopes=["devices:read"])
    gone, _ = await apps.create_app(await acting_as(maker), name="Gone",
                                    redirect_uris=[CALLBACK], scopes=[])
    for client in (older, newer, gone):
        await code_flow.remember_consent(user, client, client.scope)
    await code_flow.remember_consent(user, older, "")  # nothing new: scopes kept
    await OAuthClient.filter(id=gone.id).update(deleted_at=clock.now())
    older_token, newer_token = await issue(older, user=user), await issue(newer, user=user)
    code = await AuthorizationCode.create(
        code_hash="h" * 64, client=older, user=user, redirect_uri=CALLBACK,
        code_challenge="c" * 43, code_challenge_method="S256", created_at=clock.now(),
        expires_at=clock.now())

    body = await graphql(http, "{ me { authorizedApps { clientId name productName scopes } } }",
                         token=mine)
    assert body["data"]["me"]["authorizedApps"] == [
        {"clientId": older.client_id, "name": "Older", "productName": None,
         "scopes": ["events:read"]},
        {"clientId": newer.client_id, "name": "Newer", "productName": None,
         "scopes": ["devices:read"]},
    ]  # the most recently allowed first; a deleted app is not listed

    revoked = await run_mutation(http, "revokeAuthorizedApp", "AppInput",
                                 {"clientId": older.client_id},
                                 "authorizedApp { clientId name scopes }", token=mine)
    assert revoked == {"authorizedApp": {"clientId": older.client_id, "name": "Older",
                                         "scopes": ["events:read"]}, "userErrors": []}
    await graphql(http, "{ me { email } }", token=older_token, expect_status=401)
    assert (await graphql(http, "{ me { email } }", token=mine))["data"]["me"] is not None
    assert not await AuthorizationCode.exists(id=code.id)
    assert await TokenFamily.filter(client_id=newer.id, revoked_at=None).count() == 1
    assert newer_token

    again = await run_mutation(http, "revokeAuthorizedApp", "AppInput",
                               {"clientId": older.client_id}, "authorizedApp { clientId }",
                               token=mine)
    assert again == {"authorizedApp": None, "userErrors": [
        {"field": "clientId", "message": "You have not authorized this app.",
         "code": "NOT_FOUND"}]}


# Who may register apps and read whether they are public: a user signed in directly; not
# anonymous callers, a service client, a product's customer, nor a third-party app acting for
# the user. The user has a public app (CLI) and a confidential one (Dashboard).
APP_CALLERS = ("anonymous", "client", "customer", "user", "app")
UA, FB = "UNAUTHENTICATED", "FORBIDDEN"
APP_MATRIX = Matrix(APP_CALLERS, {
    #                      anon  clnt  cust  user app
    "me.apps.public":      (None, None, None, OK,  FB),
    "createApp":           (UA,   UA,   UA,   OK,  FB),
    "createApp(public)":   (UA,   UA,   UA,   OK,  FB),
})


@dataclass
class AppWorld:
    user: User
    cli: OAuthClient
    dashboard: OAuthClient


@APP_MATRIX.operation("createApp", False)
@APP_MATRIX.operation("createApp(public)", True)
async def _create_app(p: Probe[AppWorld], public: bool) -> Any:
    before = await OAuthClient.filter(owner_id=p.world.user.id).count()
    payload, code = await p.mutate("createApp", "CreateAppInput", {
        "name": "New", "redirectUris": [CALLBACK], "scopes": [], "public": public},
        "app { public } clientSecret")
    created = await OAuthClient.filter(owner_id=p.world.user.id).count() - before
    if code is not None:
        return code if created == 0 else f"{code}, and an app was created"
    return ok_if((payload["app"], payload["clientSecret"] is None, created),
                 ({"public": public}, public, 1))


@APP_MATRIX.operation("me.apps.public")
async def _apps_public(p: Probe[AppWorld]) -> Any:
    found = await p.read("{ me { apps { clientId public } } }", {}, "me", "apps")
    if not isinstance(found, list):
        return found
    return ok_if(sorted(found, key=lambda app: app["public"]), [
        {"clientId": p.world.dashboard.client_id, "public": False},
        {"clientId": p.world.cli.client_id, "public": True}])


def test_the_app_table_covers_every_operation_and_caller() -> None:
    APP_MATRIX.assert_complete()


@pytest.mark.parametrize("caller", APP_CALLERS)
async def test_app_permission_matrix(http, caller: str) -> None:
    user = await make_user("ada@example.com")
    principal = await acting_as(user)
    cli, _ = await apps.create_app(principal, name="CLI", public=True, scopes=[],
                                   redirect_uris=["http://127.0.0.1/callback"])
    dashboard, _ = await apps.create_app(principal, name="Dashboard", scopes=[],
                                         redirect_uris=[CALLBACK])
    if caller == "anonymous":
        token = None
    elif caller == "client":
        token = await issue((await service_client())[0], user=None)
    elif caller == "customer":
        token = await _customer_token()
    elif caller == "user":
        token = await access_token("ada@example.com")
    else:
        maker = await make_user("maker@example.com")
        other, _ = await apps.create_app(await acting_as(maker), name="Other", scopes=[],
                                         redirect_uris=[CALLBACK])
        token = await issue(other, user=user)
    await APP_MATRIX.check(caller, Probe(http, token, AppWorld(user, cli, dashboard)))


MUTATIONS = [
    ("deleteApp", "AppInput", {"clientId": "dc_app_x"}, "app { clientId }"),
    ("revokeAuthorizedApp", "AppInput", {"clientId": "dc_app_x"}, "authorizedApp { clientId }"),
]


async def _customer_token() -> str:
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Kettle", slug=None, description="",
        platform="Photon", customer_auth="LOGIN_WITH_PLATFORM",
    )
    client, _ = await products.create_oauth_client(
        owner, product.id, name="Web", client_type="WEB", redirect_uris=[CALLBACK])
    customer = await Customer.create(product=product, email="c@example.com",
                                     created_at=clock.now())
    return await issue(client, user=None, customer=customer)


@pytest.mark.parametrize("who", ["anonymous", "client", "customer"])
@pytest.mark.parametrize(("name", "input_type", "input", "selection"), MUTATIONS)
async def test_only_users_manage_apps(http, who, name, input_type, input, selection):
    if who == "anonymous":
        token = None
    elif who == "client":
        client, _ = await service_client()
        token = await issue(client, user=None)
    else:
        token = await _customer_token()
    payload = await run_mutation(http, name, input_type, input, selection, token=token)
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("UNAUTHENTICATED", None)
    assert await OAuthClient.filter(owner_id__not_isnull=True).count() == 0


async def test_a_third_party_app_cannot_manage_apps_for_its_user():
    user = await make_user("ada@example.com")
    maker = await make_user("maker@example.com")
    app, _ = await apps.create_app(await acting_as(maker), name="App",
                                   redirect_uris=[CALLBACK], scopes=["devices:read"])
    through_app = UserPrincipal(client=app, family_id=0, scope="devices:read", user=user)
    for attempt in (
        apps.create_app(through_app, name="Mine", redirect_uris=[CALLBACK], scopes=[]),
        apps.delete_app(through_app, app.client_id),
        apps.authorized_apps(through_app),
        apps.revoke_authorized_app(through_app, app.client_id),
    ):
        with pytest.raises(PermissionDenied) as refused:
            await attempt
        assert refused.value.message == "This app's token does not allow this."
    with pytest.raises(PermissionDenied):
        apps.apps_of(through_app)


async def test_linking_a_platform_account_to_a_customer():
    team = await organization_with_team(roles=("OWNER",))
    product = await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Kettle", slug=None,
        description="", platform="Photon", customer_auth="LOGIN_WITH_PLATFORM",
    )
    ada = await make_user("ada@example.com")

    created = await code_flow.link_customer(product.id, ada)
    assert (created.email, created.user_id, created.last_active_at) == (
        "ada@example.com", ada.id, created.created_at)
    assert (await code_flow.link_customer(product.id, ada)).id == created.id

    # A customer with the account's email that the product created is never taken over, be
    # it unlinked or linked to another account.
    bob = await make_user("bob@example.com")
    waiting = await Customer.create(product=product, email="bob@example.com",
                                    created_at=clock.now())
    with pytest.raises(Conflict):
        await code_flow.link_customer(product.id, bob)
    assert (await Customer.get(id=waiting.id)).user_id is None
    await Customer.filter(id=created.id).delete()
    await Customer.filter(id=waiting.id).update(user_id=ada.id)
    with pytest.raises(Conflict):
        await code_flow.link_customer(product.id, bob)
