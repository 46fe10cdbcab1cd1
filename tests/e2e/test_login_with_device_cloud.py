"""Login with Device Cloud end to end: the authorization code flow with PKCE driven through the
real hosted login and consent pages (parsed and posted like a browser, with its cookies), the
code exchanged by independent client libraries (requests-oauthlib for a third-party app,
httpx-oauth for a product's web app), and everything RFC 9700 asks to refuse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from httpx_oauth.oauth2 import BaseOAuth2, GetAccessTokenError
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session
from starlette.responses import Response

from api import authorize
from api.app import create_app
from auth import apps, tokens
from auth.principals import CustomerPrincipal, UserPrincipal
from auth.scopes import Scope
from core.errors import PermissionDenied
from core.settings import Environment, get_settings
from fleet import access, products
from models.accounts import User
from models.customers import Customer
from models.oauth import (
    AuthorizationCode,
    Consent,
    OAuthClient,
    ThrottleCounter,
    Token,
    TokenFamily,
)
from tests.support.accounts import access_token, acting_as, make_user, organization_with_team
from tests.support.constants import PASSWORD
from tests.support.graphql import graphql, run_mutation
from tests.support.hosted_login import (
    AUTHORIZE,
    EMAIL,
    ISSUER,
    Browser,
    assert_page,
    assert_secure,
    pkce,
    sign_in,
    the_form,
)
from tests.support.oauth import (
    TOKEN,
    WRONG_PASSWORD,
    assert_oauth_error,
    assert_rejected,
    introspect,
    refresh,
    sha256,
)
from tests.support.servers import LiveServer

REDIRECT = "http://127.0.0.1:8765/callback"


# --- A browser: cookies, and forms parsed from the pages ---------------------------------------


@pytest.fixture
async def browser(live_server: LiveServer) -> AsyncIterator[Browser]:
    b = Browser(live_server)
    async with b.http:
        yield b


def callback(response: httpx.Response) -> dict[str, str]:
    """The client's redirect URI the browser is sent back to, and its parameters."""
    assert response.status_code == 302, response.text
    assert_secure(response)
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    params = parse_qs(urlsplit(location).query, strict_parsing=True)
    assert all(len(v) == 1 for v in params.values()), params
    return {k: v[0] for k, v in params.items()}


# --- PKCE and clients -------------------------------------------------------------------------


def authorize_url(client_id: str, challenge: str | None = None, **params: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
             "state": "st-123"}
    if challenge:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{AUTHORIZE}?{urlencode(query | params)}"


@dataclass
class App:
    client_id: str
    secret: str
    row: OAuthClient


@pytest.fixture
async def user() -> User:
    return await make_user(EMAIL)


@pytest.fixture
async def app() -> App:
    """A third-party app registered by another user."""
    owner = await make_user("maker@example.com")
    row, secret = await apps.create_app(
        await acting_as(owner), name="Dashboard Pro", redirect_uris=[REDIRECT],
        scopes=["devices:read", "events:read"],
    )
    return App(row.client_id, secret, row)


async def exchange(http: httpx.AsyncClient, app: App, code: str, verifier: str | None,
                   redirect_uri: str = REDIRECT) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    return await http.post(TOKEN, data=data, auth=(app.client_id, app.secret))


async def authorized_code(browser: Browser, app: App, **params: str) -> tuple[str, str]:
    """Sign in and allow through the pages; the code and its verifier."""
    verifier, challenge = pkce()
    page = await sign_in(browser, await browser.open(authorize_url(app.client_id, challenge,
                                                                   **params)))
    returned = callback(await browser.submit(page, "allow"))
    return returned["code"], verifier


# --- The flow -----------------------------------------------------------------------------------


async def test_a_third_party_app_through_requests_oauthlib(live_server, browser, user, app,
                                                           monkeypatch, http):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is plain http
    session = OAuth2Session(app.client_id, redirect_uri=REDIRECT,
                            scope=["devices:read", "events:read"], pkce="S256")
    session.trust_env = False
    url, state = session.authorization_url(live_server.url + AUTHORIZE)
    query = parse_qs(urlsplit(url).query)
    assert (query["code_challenge_method"], query["response_type"]) == (["S256"], ["code"])

    login = await browser.open(url)
    assert_page(login, 200, "Sign in with Device Cloud", "to continue to <strong>Dashboard Pro")
    consent = await sign_in(browser, login)
    assert_page(consent, 200, "<strong>Dashboard Pro</strong> wants to use your Device Cloud "
                "account", "See your devices and whether they are online",
                "Read the events your devices publish", f"Signed in as {EMAIL}",
                "sends you back to 127.0.0.1:8765")
    assert "Call functions" not in consent.text
    assert {v for _, v in the_form(consent).buttons} == {"allow", "deny", "switch_account"}

    allowed = await browser.submit(consent, "allow")
    returned = callback(allowed)
    assert set(returned) == {"code", "state", "iss"}
    assert (returned["state"], returned["iss"]) == (state, ISSUER)
    assert returned["code"].startswith("dc_ac_") and len(returned["code"]) == 6 + 43

    token = await asyncio.to_thread(
        session.fetch_token, live_server.url + TOKEN,
        authorization_response=allowed.headers["location"], client_secret=app.secret,
    )
    assert set(token) == {"access_token", "token_type", "expires_in", "refresh_token", "scope",
                          "expires_at"}  # requests-oauthlib adds expires_at
    assert token["scope"] == ["devices:read", "events:read"]
    assert (token["token_type"], token["expires_in"]) == ("Bearer", 3600)

    # A user token, for this app, carrying the consented scopes.
    principal = await tokens.authenticate(token["access_token"])
    assert isinstance(principal, UserPrincipal)
    assert (principal.user.id, principal.client.client_id, principal.scope) == (
        user.id, app.client_id, "devices:read events:read")
    family = await TokenFamily.get(id=principal.family_id)
    assert (family.grant_type, family.customer_id) == ("authorization_code", None)
    seen = await introspect(http, token["access_token"], (app.client_id, app.secret))
    assert (seen["active"], seen["sub"], seen["scope"], seen["client_id"]) == (
        True, f"user:{user.id}", "devices:read events:read", app.client_id)

    # The code is stored hashed, used, and linked to what it issued.
    code = await AuthorizationCode.get(code_hash=sha256(returned["code"]))
    assert (code.used_at is not None, code.family_id, code.scope, code.redirect_uri) == (
        True, family.id, "devices:read events:read", REDIRECT)
    assert (code.expires_at - code.created_at).total_seconds() == 60
    assert (code.code_challenge_method, code.code_challenge) == ("S256", query["code_challenge"][0])
    consent_row = await Consent.get(user_id=user.id, client_id=app.row.id)
    assert consent_row.scope == "devices:read events:read"

    # Refresh rotates within the same family.
    refreshed = await asyncio.to_thread(
        session.refresh_token, live_server.url + TOKEN,
        auth=HTTPBasicAuth(app.client_id, app.secret),
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    again = await tokens.authenticate(refreshed["access_token"])
    assert (again.family_id, again.scope) == (family.id, "devices:read events:read")


class WebApp(BaseOAuth2[dict[str, Any]]):
    """httpx-oauth's generic client, kept off any proxy from the environment."""

    def get_httpx_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(trust_env=False)


@pytest.fixture
async def product_app(live_server) -> tuple[WebApp, int]:
    """A product whose customers log in with their platform account, and its web app."""
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Smart Kettle", slug=None, description="",
        platform="Photon", customer_auth="LOGIN_WITH_PLATFORM",
    )
    client, secret = await products.create_oauth_client(
        owner, product.id, name="Kettle Web", client_type="WEB", redirect_uris=[REDIRECT]
    )
    web = WebApp(client.client_id, secret, live_server.url + AUTHORIZE, live_server.url + TOKEN,
                 refresh_token_endpoint=live_server.url + TOKEN,
                 token_endpoint_auth_method="client_secret_basic")
    return web, product.id


async def test_a_product_web_app_signs_the_user_in_as_its_customer(browser, user, product_app,
                                                                    http):
    web, product_id = product_app
    verifier, challenge = pkce()
    url = await web.get_authorization_url(REDIRECT, state="kettle-state", code_challenge=challenge,
                                          code_challenge_method="S256")
    consent = await sign_in(browser, await browser.open(url))
    assert_page(consent, 200, "<strong>Kettle Web (Smart Kettle)</strong> wants to use your "
                "Device Cloud account", "Sign you in to Smart Kettle as a customer with your "
                f"email address ({EMAIL})", "Reach the Smart Kettle devices you claim")
    returned = callback(await browser.submit(consent, "allow"))
    assert (returned["state"], returned["iss"]) == ("kettle-state", ISSUER)

    token = await web.get_access_token(returned["code"], REDIRECT, code_verifier=verifier)
    assert set(token) == {"access_token", "token_type", "expires_in", "refresh_token",
                          "expires_at"}

    [customer] = await Customer.filter(product_id=product_id)
    assert (customer.email, customer.user_id, customer.password_hash) == (EMAIL, user.id, None)
    principal = await tokens.authenticate(token["access_token"])
    assert isinstance(principal, CustomerPrincipal)
    assert (principal.customer.id, principal.client.client_id, principal.scope) == (
        customer.id, web.client_id, "")
    family = await TokenFamily.get(id=principal.family_id)
    assert (family.customer_id, family.user_id) == (customer.id, user.id)
    seen = await introspect(http, token["access_token"], (web.client_id, web.client_secret))
    assert (seen["sub"], seen["username"]) == (f"customer:{customer.id}", EMAIL)

    # Signing in again (consent remembered: no page) finds the same customer.
    verifier, challenge = pkce()
    url = await web.get_authorization_url(REDIRECT, state="again", code_challenge=challenge,
                                          code_challenge_method="S256")
    returned = callback(await browser.open(url))
    second = await web.get_access_token(returned["code"], REDIRECT, code_verifier=verifier)
    again = await tokens.authenticate(second["access_token"])
    assert again.customer.id == customer.id
    assert await Customer.filter(product_id=product_id).count() == 1

    refreshed = await web.refresh_token(second["refresh_token"])
    assert (await tokens.authenticate(refreshed["access_token"])).customer.id == customer.id


async def _consent_and_exchange(browser, http, web) -> httpx.Response:
    """Sign in on the hosted page, allow, and exchange the code (PKCE) at the token endpoint."""
    verifier, challenge = pkce()
    url = await web.get_authorization_url(REDIRECT, code_challenge=challenge,
                                          code_challenge_method="S256")
    consent = await sign_in(browser, await browser.open(url))
    returned = callback(await browser.submit(consent, "allow"))
    return await http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": returned["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": web.client_id,
        "client_secret": web.client_secret})


async def test_an_account_never_takes_over_a_customer_by_email(
    browser, http, user, product_app
):
    # Platform emails are not verified: signing up with a customer's email must not be a way
    # into their devices.
    web, product_id = product_app
    existing = await Customer.create(product_id=product_id, email=EMAIL,
                                     created_at=user.created_at)
    response = await _consent_and_exchange(browser, http, web)
    assert_oauth_error(response, 400, "invalid_grant",
                       "This product already has a customer with this email, not linked to "
                       "this account; an account cannot take it over.")
    assert (await Customer.get(id=existing.id)).user_id is None
    assert await TokenFamily.all().count() == 0


async def test_an_unverified_account_does_not_become_a_customer(browser, http, product_app):
    web, product_id = product_app
    await make_user(EMAIL, verified=False)
    response = await _consent_and_exchange(browser, http, web)
    assert_oauth_error(response, 400, "invalid_grant",
                       f"Verify your email first: open the link we sent to {EMAIL}, or ask "
                       "for a new one with resendVerificationEmail.")
    assert not await Customer.exists(product_id=product_id)
    assert await TokenFamily.all().count() == 0


@pytest.mark.parametrize("method", ["SIMPLE", "TWO_LEGGED"])
async def test_a_product_with_another_customer_auth_cannot_use_the_flow(browser, user, method):
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Thermostat", slug=None, description="",
        platform="Photon", customer_auth=method,
    )
    client, _ = await products.create_oauth_client(
        owner, product.id, name="Web", client_type="WEB", redirect_uris=[REDIRECT]
    )
    returned = callback(await browser.open(authorize_url(client.client_id, pkce()[1])))
    assert returned == {
        "error": "unauthorized_client",
        "error_description": f"The customers of this product sign in with {method}, not with "
                             "the authorization code flow.",
        "state": "st-123", "iss": ISSUER,
    }


# --- Untrusted clients and redirect URIs: an error page, never a redirect -------------------


@pytest.mark.parametrize(
    ("client", "redirect_uri", "message"),
    [
        ("dc_app_unknown", REDIRECT, "The client does not exist on this server."),
        (None, "http://127.0.0.1:8765/callback/", "is not registered for this client."),
        (None, "http://localhost:8765/callback", "is not registered for this client."),
        (None, "https://evil.example/callback", "is not registered for this client."),
        (None, "http://127.0.0.1:8765/callback?x=1", "is not registered for this client."),
        (None, "", "Missing &#x27;redirect_uri&#x27; in request."),
        ("devicecloud", REDIRECT, "is not registered for this client."),
    ],
)
async def test_an_untrusted_client_or_redirect_uri_gets_an_error_page(
        browser, user, app, client, redirect_uri, message):
    response = await browser.open(authorize_url(client or app.client_id, pkce()[1],
                                                redirect_uri=redirect_uri))
    assert_page(response, 400, "This sign-in link is not valid", message,
                "you were not sent back to it")
    assert "form-action 'none'" in response.headers["content-security-policy"]
    assert "<form" not in response.text
    assert await AuthorizationCode.all().count() == 0


async def test_a_repeated_parameter_gets_an_error_page(browser, app):
    url = authorize_url(app.client_id, pkce()[1]) + "&state=other"
    assert_page(await browser.open(url), 400, "Multiple &#x27;state&#x27; in request.")


@pytest.mark.parametrize(
    ("params", "error", "description"),
    [
        ({}, "invalid_request",
         "PKCE is required: send code_challenge with code_challenge_method=S256."),
        ({"code_challenge": "x" * 43}, "invalid_request",
         "code_challenge_method must be S256; plain is refused."),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request",
         "code_challenge_method must be S256; plain is refused."),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request",
         "Invalid 'code_challenge'"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S256", "scope": "devices:write"},
         "invalid_scope",
         "Unknown scope; the scopes are openid, profile, email, devices:read, events:read, "
         "devices:call."),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S256", "scope": "devices:call"},
         "invalid_scope", "The client is not registered for the requested scope."),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S256", "response_type": "token"},
         "unsupported_response_type", "Only response_type=code is supported."),
    ],
)
async def test_a_bad_request_from_a_trusted_client_is_sent_back_to_it(
        browser, user, app, params, error, description):
    response = await browser.open(authorize_url(app.client_id, **params))
    expected = {"error": error, "error_description": description, "state": "st-123",
                "iss": ISSUER}
    assert callback(response) == expected
    # Signed in, the answer is the same: it comes before any page.
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    await sign_in(browser, login)
    assert callback(await browser.open(authorize_url(app.client_id, **params))) == expected
    assert await AuthorizationCode.all().count() == 0


# --- The login and consent pages ----------------------------------------------------------


async def test_the_cookies_are_signed_httponly_and_samesite(browser, user, app):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    [csrf] = login.headers.get_list("set-cookie")
    assert csrf.startswith("dc_csrf=")
    assert "; HttpOnly; Path=/oauth/authorize; SameSite=lax" in csrf
    assert "Secure" not in csrf  # development: production adds Secure

    posted = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    [session] = posted.headers.get_list("set-cookie")
    assert session.startswith("dc_session=")
    assert "; HttpOnly; Max-Age=43200; Path=/oauth/authorize; SameSite=lax" in session
    assert "Secure" not in session

    # A tampered session is no session: back to the login page.
    value = browser.http.cookies["dc_session"]
    user_id, rest = value.split(".", 1)
    other = await make_user("eve@example.com")
    browser.http.cookies.set("dc_session", f"{other.id}.{rest}", path="/oauth/authorize")
    assert user_id == str(user.id)
    assert_page(await browser.open(authorize_url(app.client_id, pkce()[1])), 200,
                "Sign in with Device Cloud")


async def test_a_session_expires_after_12_hours(browser, user, app, frozen_clock):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    await sign_in(browser, login)
    frozen_clock.advance(hours=12, seconds=-1)
    assert_page(await browser.open(authorize_url(app.client_id, pkce()[1])), 200,
                "wants to use your Device Cloud account")
    frozen_clock.advance(seconds=1)
    assert_page(await browser.open(authorize_url(app.client_id, pkce()[1])), 200,
                "Sign in with Device Cloud")


@pytest.mark.parametrize("keep_current", [False, True])
async def test_revoking_all_sessions_signs_the_browser_out(browser, http, user, app,
                                                           frozen_clock, keep_current):
    callback(await browser.submit(await sign_in(browser, await browser.open(
        authorize_url(app.client_id, pkce()[1]))), "allow"))
    assert callback(await browser.open(authorize_url(app.client_id, pkce()[1])))["code"]

    frozen_clock.advance(seconds=5)
    mine = await access_token(EMAIL)
    revoked = await run_mutation(http, "revokeAllSessions", "RevokeAllSessionsInput",
                                 {"keepCurrent": keep_current}, "revokedCount", token=mine)
    assert revoked["userErrors"] == []
    # The browser session is not the current API session: it ends either way, no silent code.
    codes = await AuthorizationCode.all().count()
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    assert_page(login, 200, "Sign in with Device Cloud")
    assert await AuthorizationCode.all().count() == codes

    # A sign-in at the very instant of the revocation is void too (issued at or before it)...
    posted = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    assert_page(await browser.follow(posted), 200, "Sign in with Device Cloud")
    # ...one a microsecond later lasts: the consent is remembered, the code comes at once.
    frozen_clock.advance(microseconds=1)
    assert callback(await sign_in(browser, login))["code"]
    assert callback(await browser.open(authorize_url(app.client_id, pkce()[1])))["code"]


async def test_413_and_500_forbid_framing_caching_and_referrers(browser, user, app,
                                                                 monkeypatch):
    url = authorize_url(app.client_id, pkce()[1])
    too_large = await browser.http.post(url, content=b"x" * (get_settings().max_body_bytes + 1),
                                        headers={"content-type": "application/octet-stream"})
    assert too_large.status_code == 413
    assert_secure(too_large)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(authorize.code_flow, "check_request", broken)
    failed = await browser.open(url)
    assert_page(failed, 500, "Something went wrong")
    assert "boom" not in failed.text


async def test_deny_sends_access_denied_back(browser, user, app):
    page = await sign_in(browser, await browser.open(authorize_url(app.client_id, pkce()[1])))
    returned = callback(await browser.submit(page, "deny"))
    assert returned == {"error": "access_denied",
                        "error_description": "The user denied the request.",
                        "state": "st-123", "iss": ISSUER}
    assert await Consent.all().count() == 0
    assert await AuthorizationCode.all().count() == 0


async def test_use_another_account(browser, user, app):
    await make_user("bob@example.com")
    url = authorize_url(app.client_id, pkce()[1])
    consent = await sign_in(browser, await browser.open(url))
    switched = await browser.submit(consent, "switch_account")
    assert_page(switched, 200, "Sign in with Device Cloud")
    assert 'dc_session=""; expires=' in switched.headers["set-cookie"]
    consent = await sign_in(browser, switched, "bob@example.com")
    assert_page(consent, 200, "Signed in as bob@example.com")


async def test_a_wrong_password_shows_the_login_page_again(browser, user, app):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    again = await browser.submit(login, "sign_in", email=EMAIL, password=WRONG_PASSWORD)
    assert_page(again, 400, "The email or password is incorrect.", f'value="{EMAIL}"')
    assert "dc_session" not in browser.http.cookies
    assert (await ThrottleCounter.get(key=f"account:{EMAIL}")).failures == 1
    signed_in = await browser.submit(again, "sign_in", email=EMAIL, password=PASSWORD)
    assert signed_in.status_code == 303
    assert not await ThrottleCounter.exists(key=f"account:{EMAIL}")


async def test_the_login_page_is_throttled_like_the_password_grant(browser, user, app, http,
                                                                   frozen_clock):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    for _ in range(10):
        page = await browser.submit(login, "sign_in", email=EMAIL, password=WRONG_PASSWORD)
        assert_page(page, 400, "The email or password is incorrect.")

    locked = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    assert_page(locked, 429, "Too many failed sign-in attempts. Try again in 30 minutes.")
    assert locked.headers["retry-after"] == "1800"
    assert "dc_session" not in browser.http.cookies
    # The same counters as the password grant: it is locked out too.
    response = await http.post(TOKEN, data={"grant_type": "password", "client_id": "devicecloud",
                                            "username": EMAIL, "password": PASSWORD})
    assert_oauth_error(response, 429, "too_many_attempts")

    frozen_clock.advance(seconds=1800)
    await sign_in(browser, login)


@pytest.mark.parametrize("forgery", ["missing", "forged", "no cookie", "login token"])
async def test_a_consent_without_its_csrf_token_is_refused(browser, user, app, forgery):
    consent = await sign_in(browser, await browser.open(authorize_url(app.client_id,
                                                                      pkce()[1])))
    form = the_form(consent)
    data = {**form.fields, "action": "allow"}
    if forgery == "missing":
        del data["csrf_token"]
    elif forgery == "forged":
        data["csrf_token"] = "A" * 43
    elif forgery == "no cookie":
        browser.http.cookies.delete("dc_csrf")
    else:  # a valid token of the login form is not one of the consent form
        login = await Browser(browser.server).open(authorize_url(app.client_id, pkce()[1]))
        browser.http.cookies.set("dc_csrf", login.cookies["dc_csrf"], path="/oauth/authorize")
        data["csrf_token"] = the_form(login).fields["csrf_token"]
    response = await browser.http.post(urljoin(str(consent.url), form.action), data=data)
    assert_page(response, 403, "This form has expired")
    assert await Consent.all().count() == 0
    assert await AuthorizationCode.all().count() == 0


@pytest.mark.parametrize("forgery", ["missing", "forged", "no cookie"])
async def test_a_login_without_its_csrf_token_is_refused(browser, user, app, forgery):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    form = the_form(login)
    data = {**form.fields, "action": "sign_in", "email": EMAIL, "password": PASSWORD}
    if forgery == "missing":
        del data["csrf_token"]
    elif forgery == "forged":
        data["csrf_token"] = "A" * 43
    else:
        browser.http.cookies.delete("dc_csrf")
    response = await browser.http.post(urljoin(str(login.url), form.action), data=data)
    assert_page(response, 403, "This form has expired")
    assert "dc_session" not in response.headers.get("set-cookie", "")
    assert await ThrottleCounter.all().count() == 0


# --- Codes at the token endpoint ----------------------------------------------------------


async def test_a_wrong_code_verifier_is_invalid_grant(browser, http, user, app):
    code, verifier = await authorized_code(browser, app)
    wrong = await exchange(http, app, code, pkce()[0])
    assert_oauth_error(wrong, 400, "invalid_grant", "Code challenge failed.")
    missing = await exchange(http, app, code, None)
    assert_oauth_error(missing, 400, "invalid_request", "Missing 'code_verifier'")
    assert await TokenFamily.all().count() == 0
    # A refused attempt does not use the code up: its client can still redeem it.
    assert (await exchange(http, app, code, verifier)).status_code == 200


async def test_the_redirect_uri_must_be_the_same_at_the_token_endpoint(browser, http, user,
                                                                       app):
    code, verifier = await authorized_code(browser, app)
    for other in ("http://127.0.0.1:8765/callback/", ""):
        response = await exchange(http, app, code, verifier, redirect_uri=other)
        assert_oauth_error(response, 400, "invalid_grant", "Invalid 'redirect_uri' in request.")


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(browser, http, user, app):
    code, verifier = await authorized_code(browser, app)
    first = await exchange(http, app, code, verifier)
    assert first.status_code == 200, first.text
    issued = first.json()

    replay = await exchange(http, app, code, verifier)
    assert_oauth_error(replay, 400, "invalid_grant", "Invalid 'code' in request.")
    await assert_rejected(http, issued["access_token"])
    assert_oauth_error(await refresh(http, issued["refresh_token"], app.client_id), 401,
                       "invalid_client")
    refreshed = await http.post(TOKEN, data={"grant_type": "refresh_token",
                                             "refresh_token": issued["refresh_token"]},
                                auth=(app.client_id, app.secret))
    assert_oauth_error(refreshed, 400, "invalid_grant")
    assert (await TokenFamily.get()).revoked_at is not None


async def test_a_code_expires_after_60_seconds(browser, http, user, app, frozen_clock):
    code, verifier = await authorized_code(browser, app)
    frozen_clock.advance(seconds=61)
    response = await exchange(http, app, code, verifier)
    assert_oauth_error(response, 400, "invalid_grant", "Invalid 'code' in request.")
    assert await TokenFamily.all().count() == 0

    verifier, challenge = pkce()  # signed in and consented: the code comes back at once
    code = callback(await browser.open(authorize_url(app.client_id, challenge)))["code"]
    frozen_clock.advance(seconds=59)
    assert (await exchange(http, app, code, verifier)).status_code == 200


async def test_a_code_is_only_for_its_client(browser, http, user, app):
    code, verifier = await authorized_code(browser, app)
    other_owner = await make_user("other@example.com")
    row, secret = await apps.create_app(await acting_as(other_owner), name="Other",
                                        redirect_uris=[REDIRECT], scopes=[])
    response = await exchange(http, App(row.client_id, secret, row), code, verifier)
    assert_oauth_error(response, 400, "invalid_grant", "Invalid 'code' in request.")
    assert (await exchange(http, app, code, verifier)).status_code == 200


async def test_the_code_grant_needs_the_client_secret(browser, http, user, app):
    code, verifier = await authorized_code(browser, app)
    response = await http.post(TOKEN, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": app.client_id})
    assert_oauth_error(response, 401, "invalid_client")


# --- Consent: remembered, widened, revoked -------------------------------------------------


async def test_consent_is_remembered_and_revoked(browser, http, user, app):
    code, verifier = await authorized_code(browser, app, scope="devices:read")
    first = (await exchange(http, app, code, verifier)).json()

    # The same scopes (or fewer) again: no page, the code comes back at once.
    verifier, challenge = pkce()
    returned = callback(await browser.open(authorize_url(app.client_id, challenge,
                                                         scope="devices:read")))
    second = (await exchange(http, app, returned["code"], verifier)).json()
    assert callback(await browser.open(authorize_url(app.client_id, pkce()[1])))["code"]

    # More scopes: the page again, naming them; allowing keeps both.
    wider = await browser.open(authorize_url(app.client_id, pkce()[1], scope="events:read"))
    assert_page(wider, 200, "Read the events your devices publish")
    callback(await browser.submit(wider, "allow"))
    consent = await Consent.get(user_id=user.id, client_id=app.row.id)
    assert consent.scope == "devices:read events:read"

    mine = await access_token(EMAIL)
    listed = await graphql(http, "{ me { authorizedApps { clientId name productName scopes "
                                 "consentedAt updatedAt } } }", token=mine)
    [entry] = listed["data"]["me"]["authorizedApps"]
    assert entry == {"clientId": app.client_id, "name": "Dashboard Pro", "productName": None,
                     "scopes": ["devices:read", "events:read"],
                     "consentedAt": consent.created_at.isoformat(),
                     "updatedAt": consent.updated_at.isoformat()}

    revoked = await run_mutation(http, "revokeAuthorizedApp", "AppInput",
                                 {"clientId": app.client_id}, "authorizedApp { clientId }",
                                 token=mine)
    assert revoked == {"authorizedApp": {"clientId": app.client_id}, "userErrors": []}
    for issued in (first, second):
        await assert_rejected(http, issued["access_token"])
    assert await TokenFamily.filter(revoked_at=None, client_id=app.row.id).count() == 0
    assert await AuthorizationCode.filter(used_at=None).count() == 0  # pending codes are gone
    # The next authorization asks again.
    assert_page(await browser.open(authorize_url(app.client_id, pkce()[1])), 200,
                "wants to use your Device Cloud account")
    # The user's own session goes on.
    assert (await graphql(http, "{ me { email } }", token=mine))["data"] == {
        "me": {"email": EMAIL}}


async def test_a_product_app_is_listed_with_its_product_and_revoked(browser, http, user,
                                                                    product_app):
    web, _ = product_app
    verifier, challenge = pkce()
    url = await web.get_authorization_url(REDIRECT, code_challenge=challenge,
                                          code_challenge_method="S256")
    consent = await sign_in(browser, await browser.open(url))
    returned = callback(await browser.submit(consent, "allow"))
    token = await web.get_access_token(returned["code"], REDIRECT, code_verifier=verifier)

    mine = await access_token(EMAIL)
    listed = await graphql(http, "{ me { authorizedApps { name productName scopes } } }",
                           token=mine)
    assert listed["data"]["me"]["authorizedApps"] == [
        {"name": "Kettle Web", "productName": "Smart Kettle", "scopes": []}]
    await run_mutation(http, "revokeAuthorizedApp", "AppInput", {"clientId": web.client_id},
                       "authorizedApp { clientId }", token=mine)
    await assert_rejected(http, token["access_token"])
    with pytest.raises(GetAccessTokenError):
        await web.get_access_token(returned["code"], REDIRECT, code_verifier=verifier)


# --- Every answer of the endpoint ---------------------------------------------------------


async def test_every_page_and_redirect_forbids_framing_caching_and_referrers(browser, user,
                                                                             app):
    login = await browser.open(authorize_url(app.client_id, pkce()[1]))
    policy = login.headers["content-security-policy"]
    style = policy.split("style-src ")[1].split(";")[0]
    assert policy == (f"default-src 'none'; style-src {style}; form-action 'self' "
                      "http://127.0.0.1:8765; frame-ancestors 'none'; base-uri 'none'")
    assert style.startswith("'sha256-")
    responses = [login, await browser.submit(login, "sign_in", email=EMAIL,
                                             password=WRONG_PASSWORD)]
    posted = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    consent = await browser.follow(posted)
    responses += [posted, consent, await browser.submit(consent, "allow"),
                  await browser.open(authorize_url(app.client_id)),
                  await browser.open(authorize_url("nobody", pkce()[1]))]
    forged = await browser.http.post(AUTHORIZE + "?" + urlsplit(str(login.url)).query,
                                     data={"action": "allow", "csrf_token": "x"})
    responses.append(forged)
    assert [r.status_code for r in responses] == [200, 400, 303, 200, 302, 302, 400, 403]
    for response in responses:
        assert_secure(response)
        assert response.headers["pragma"] == "no-cache"



async def test_two_concurrent_redemptions_issue_nothing_that_lasts(browser, http, user, app):
    code, verifier = await authorized_code(browser, app)
    answers = await asyncio.gather(*(exchange(http, app, code, verifier) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [200, 400]
    [won] = [a.json() for a in answers if a.status_code == 200]
    # The loser is a replay: what the winner got is revoked.
    await assert_rejected(http, won["access_token"])
    assert await TokenFamily.filter(revoked_at=None).count() == 0


def test_the_cookies_are_host_prefixed_and_secure_in_production():
    settings = get_settings().model_copy(update={"environment": Environment.PRODUCTION})
    response = Response()
    authorize._set_cookie(response, settings, "dc_session", "v", max_age=60)
    # `__Host-`: Secure, Path=/ and no Domain (RFC 6265bis §4.1.3.2).
    assert response.headers["set-cookie"] == (
        "__Host-dc_session=v; HttpOnly; Max-Age=60; Path=/; SameSite=lax; Secure")
    assert authorize.cookie_name(settings, "dc_csrf") == "__Host-dc_csrf"


# --- Characters an error description cannot carry (RFC 6749 §4.1.2.1) ---------------------


@pytest.mark.parametrize("character", ["\t", '"', "\\", "é"])
async def test_an_unregistered_redirect_uri_with_any_character_gets_the_error_page(
        browser, user, app, character, caplog):
    response = await browser.open(authorize_url(
        app.client_id, pkce()[1], redirect_uri=f"https://evil.example/c{character}b"))
    assert_page(response, 400, "This sign-in link is not valid",
                "is not registered for this client.", "you were not sent back to it")
    assert response.headers["x-request-id"]
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]


@pytest.mark.parametrize("character", ["\t", '"', "\\", "é"])
async def test_a_response_type_with_any_character_is_sent_back_to_the_client(
        browser, user, app, character, caplog):
    response = await browser.open(authorize_url(
        app.client_id, pkce()[1], response_type=f"co{character}de"))
    assert callback(response) == {
        "error": "unsupported_response_type",
        "error_description": "Only response_type=code is supported.",
        "state": "st-123", "iss": ISSUER}
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]


@pytest.mark.parametrize("character", ["\t", '"', "\\", "é"])
async def test_a_response_type_with_any_character_and_an_untrusted_uri_gets_the_error_page(
        browser, user, app, character):
    response = await browser.open(authorize_url(
        app.client_id, pkce()[1], response_type=f"co{character}de",
        redirect_uri="https://evil.example/cb"))
    assert_page(response, 400, "This sign-in link is not valid",
                "Only response_type=code is supported.")


UNVERIFIED = ('<p class="error"><strong>Unverified app.</strong> Device Cloud has not checked who '
              "made this app; its name is its own claim. It is hosted at "
              "<strong>127.0.0.1:8765</strong>.</p>")


async def test_the_consent_page_marks_a_third_party_app_unverified(browser, user, app):
    consent = await sign_in(browser, await browser.open(authorize_url(app.client_id,
                                                                      pkce()[1])))
    assert_page(consent, 200, "<strong>Dashboard Pro</strong> wants to use your Device Cloud "
                "account</h1>" + UNVERIFIED)


async def test_a_product_app_is_not_marked_unverified(browser, user, product_app):
    web, _ = product_app
    url = await web.get_authorization_url(REDIRECT, state="s", code_challenge=pkce()[1],
                                          code_challenge_method="S256")
    consent = await sign_in(browser, await browser.open(url))
    assert_page(consent, 200, "Kettle Web (Smart Kettle)")
    assert "Unverified" not in consent.text


async def test_a_refresh_narrows_one_token_and_the_grant_stays(browser, http, user, app):
    """RFC 6749 §6: a refresh may ask for less than was granted; that access token can do only
    that, while a later refresh may ask for the whole grant again, never for more."""
    code, verifier = await authorized_code(browser, app, scope="devices:read events:read")
    first = (await exchange(http, app, code, verifier)).json()
    auth = (app.client_id, app.secret)

    async def refreshed(refresh_token: str, **scope: str) -> httpx.Response:
        return await http.post(TOKEN, auth=auth, data={
            "grant_type": "refresh_token", "refresh_token": refresh_token, **scope})

    narrowed = await refreshed(first["refresh_token"], scope="devices:read")
    assert narrowed.status_code == 200, narrowed.text
    second = narrowed.json()
    assert second["scope"] == "devices:read"
    assert (await introspect(http, second["access_token"], auth))["scope"] == "devices:read"
    assert (await introspect(http, second["refresh_token"], auth))["scope"] == (
        "devices:read events:read")
    principal = await tokens.authenticate(second["access_token"])
    assert principal is not None and principal.scope == "devices:read"
    access.require_app_scope(principal, Scope.DEVICES_READ)
    with pytest.raises(PermissionDenied) as refused:
        access.require_app_scope(principal, Scope.EVENTS_READ)
    assert refused.value.message == "This app's token does not allow this."

    # Beyond the grant is refused, and leaves the refresh token usable.
    beyond = await refreshed(second["refresh_token"], scope="devices:read devices:call")
    assert_oauth_error(beyond, 400, "invalid_scope")
    # The whole grant again, by name or by leaving scope out.
    widened = await refreshed(second["refresh_token"], scope="devices:read events:read")
    assert widened.status_code == 200, widened.text
    assert widened.json()["scope"] == "devices:read events:read"
    principal = await tokens.authenticate(widened.json()["access_token"])
    assert principal is not None
    access.require_app_scope(principal, Scope.EVENTS_READ)
    third = await refreshed(widened.json()["refresh_token"])
    assert third.status_code == 200, third.text
    assert third.json()["scope"] == "devices:read events:read"
    assert (await introspect(http, third.json()["access_token"], auth))["scope"] == (
        "devices:read events:read")


async def test_a_token_issued_before_tokens_kept_a_scope_has_its_familys(browser, http, user,
                                                                         app):
    code, verifier = await authorized_code(browser, app, scope="devices:read events:read")
    issued = (await exchange(http, app, code, verifier)).json()
    await Token.all().update(scope=None)  # as migration 0009 leaves the rows before it
    principal = await tokens.authenticate(issued["access_token"])
    assert principal is not None and principal.scope == "devices:read events:read"
    assert (await introspect(http, issued["access_token"], (app.client_id, app.secret)))[
        "scope"] == "devices:read events:read"


# --- prompt (OpenID Connect Core §3.1.2.1) --------------------------------------------------


async def allowed_once(browser: Browser, app: App) -> None:
    """Sign in and allow the app its scopes, so later requests need no page."""
    page = await sign_in(browser, await browser.open(authorize_url(app.client_id, pkce()[1])))
    assert "code" in callback(await browser.submit(page, "allow"))


async def test_prompt_login_asks_a_signed_in_user_to_sign_in_again(browser, user, app):
    await allowed_once(browser, app)
    login = await browser.open(authorize_url(app.client_id, pkce()[1], prompt="login"))
    assert_page(login, 200, "Sign in with Device Cloud")
    # Signed in afresh, the remembered consent sends the browser straight back with a code.
    posted = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    assert "code" in callback(posted)


async def test_prompt_login_then_consent_for_a_new_app(browser, user, app):
    login = await browser.open(authorize_url(app.client_id, pkce()[1], prompt="login"))
    consent = await browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    assert_page(consent, 200, "wants to use your Device Cloud account")
    assert "code" in callback(await browser.submit(consent, "allow"))


async def test_prompt_consent_shows_the_consent_page_again(browser, user, app):
    await allowed_once(browser, app)
    consent = await browser.open(authorize_url(app.client_id, pkce()[1], prompt="consent"))
    assert_page(consent, 200, "wants to use your Device Cloud account")
    assert "code" in callback(await browser.submit(consent, "allow"))


async def test_prompt_none_never_shows_a_page(browser, user, app):
    def prompt_none() -> str:
        return authorize_url(app.client_id, pkce()[1], prompt="none")

    assert callback(await browser.open(prompt_none())) == {
        "error": "login_required", "error_description": "The user is not signed in.",
        "state": "st-123", "iss": ISSUER}
    consent = await sign_in(browser, await browser.open(authorize_url(app.client_id,
                                                                      pkce()[1])))
    assert callback(await browser.open(prompt_none())) == {
        "error": "consent_required",
        "error_description": "The user has not allowed this app these scopes.",
        "state": "st-123", "iss": ISSUER}
    assert await AuthorizationCode.all().count() == 0
    assert "code" in callback(await browser.submit(consent, "allow"))
    assert "code" in callback(await browser.open(prompt_none()))


@pytest.mark.parametrize("prompt", ["none login", "none consent", "sometimes"])
async def test_a_bad_prompt_is_sent_back_as_invalid_request(browser, user, app, prompt):
    response = await browser.open(authorize_url(app.client_id, pkce()[1], prompt=prompt))
    assert callback(response) == {
        "error": "invalid_request",
        "error_description": "prompt is none alone, or any of login, consent and "
                             "select_account.",
        "state": "st-123", "iss": ISSUER}


@pytest.mark.parametrize(("name", "error"), [
    ("request", "request_not_supported"),
    ("request_uri", "request_uri_not_supported"),
    ("registration", "registration_not_supported"),
])
async def test_request_objects_and_registration_are_refused_not_ignored(
    browser, user, app, name, error
):
    response = await browser.open(authorize_url(app.client_id, pkce()[1], **{name: "eyJx"}))
    assert callback(response) == {
        "error": error,
        "error_description": f"The {name} parameter is not supported; send the request's "
                             "parameters in the query string.",
        "state": "st-123", "iss": ISSUER}
    assert await AuthorizationCode.all().count() == 0


@pytest.mark.parametrize("mode", ["fragment", "form_post", "Query"])
async def test_a_response_mode_other_than_query_is_refused(browser, user, app, mode):
    response = await browser.open(authorize_url(app.client_id, pkce()[1], response_mode=mode))
    assert callback(response) == {
        "error": "invalid_request",
        "error_description": "response_mode must be query, the only one supported.",
        "state": "st-123", "iss": ISSUER}


@pytest.mark.parametrize("params", [{"response_mode": "query"}, {"response_mode": ""},
                                    {"request": "", "request_uri": ""}])
async def test_query_mode_and_empty_parameters_are_accepted(browser, user, app, params):
    """An empty parameter is an omitted one (RFC 6749 section 3.1)."""
    page = await browser.open(authorize_url(app.client_id, pkce()[1], **params))
    assert_page(page, 200, "Sign in with Device Cloud")


async def test_a_repeated_parameter_is_refused_naming_it(browser, user, app):
    url = authorize_url(app.client_id, pkce()[1], nonce="a", prompt="login", max_age="5")
    response = await browser.open(f"{url}&nonce=b&max_age=6&prompt=login")
    assert callback(response) == {
        "error": "invalid_request",
        "error_description": "Send each parameter once (RFC 6749 section 3.1); repeated: "
                             "nonce, prompt, max_age.",
        "state": "st-123", "iss": ISSUER}
    assert await AuthorizationCode.all().count() == 0


# --- The consent form's CSRF token: this request's, once --------------------------------------


async def test_a_consent_token_works_only_for_its_own_request(browser, user, app):
    consent = await sign_in(browser, await browser.open(authorize_url(app.client_id,
                                                                      pkce()[1])))
    other = await browser.open(authorize_url(app.client_id, pkce()[1]))
    assert_page(other, 200, "wants to use your Device Cloud account")
    # The first page's token, posted to the second request.
    data = {**the_form(consent).fields, "action": "allow"}
    response = await browser.http.post(urljoin(str(other.url), the_form(other).action),
                                       data=data)
    assert_page(response, 403, "This form has expired")
    assert await AuthorizationCode.all().count() == 0


async def test_a_consent_token_works_once(browser, user, app):
    consent = await sign_in(browser, await browser.open(authorize_url(app.client_id,
                                                                      pkce()[1])))
    assert "code" in callback(await browser.submit(consent, "allow"))
    again = await browser.submit(consent, "allow")
    assert_page(again, 403, "This form has expired")
    assert await AuthorizationCode.all().count() == 1


async def test_production_signs_in_with_host_prefixed_cookies(user, app):
    settings = get_settings().model_copy(update={
        "environment": Environment.PRODUCTION, "base_url": "https://auth.example"})
    transport = httpx.ASGITransport(app=create_app(settings, manage_database=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://auth.example") as http:
        login = await http.get(authorize_url(app.client_id, pkce()[1]))
        assert_page(login, 200, "Sign in with Device Cloud")
        [csrf] = login.headers.get_list("set-cookie")
        assert csrf.startswith("__Host-dc_csrf=")
        assert csrf.endswith("; HttpOnly; Path=/; SameSite=lax; Secure")
        form = the_form(login)
        posted = await http.post(form.action, data={
            **form.fields, "action": "sign_in", "email": EMAIL, "password": PASSWORD})
        assert posted.status_code == 303, posted.text
        [session] = posted.headers.get_list("set-cookie")
        assert session.startswith("__Host-dc_session=")
        assert session.endswith("; HttpOnly; Max-Age=43200; Path=/; SameSite=lax; Secure")
        # The browser sends both back: signed in, the consent page comes next.
        consent = await http.get(posted.headers["location"])
        assert_page(consent, 200, "wants to use your Device Cloud account")
