"""OpenID Connect end to end, validated by a relying party library we did not write: openid-client
(tests/clients/oidc-rp.mjs) discovers the issuer, builds the authorization request (PKCE,
`nonce`, `state`), exchanges the code and validates the ID token (signature through the JWKS,
`iss`, `aud`, `exp`, `nonce`, `at_hash`, `auth_time` against `max_age`), then fetches userinfo
for the same `sub`. The browser's part (the hosted login and consent pages) is driven here, as
with tests/support/hosted_login. And what is refused: identity scopes outside the code flow,
bad nonces, and userinfo without a good `openid` token (RFC 6750 challenges)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from auth import apps, signing_keys
from core.settings import get_settings
from fleet import products
from models.accounts import User
from models.customers import Customer
from models.oauth import AuthorizationCode, SigningKey, Token, TokenFamily
from tests.support.accounts import (
    access_token,
    acting_as,
    make_user,
    organization_with_team,
    service_client,
)
from tests.support.constants import PASSWORD
from tests.support.hosted_login import AUTHORIZE, Browser, assert_page, pkce, sign_in
from tests.support.oauth import TOKEN, assert_oauth_error, introspect
from tests.support.processes import app_processes
from tests.support.servers import Clock, LiveServer

RP_SCRIPT = Path(__file__).resolve().parents[1] / "clients" / "oidc-rp.mjs"
RP_TIMEOUT = 60  # seconds for one run of the relying party
EMAIL = "ada@example.com"
USERINFO = "/oauth/userinfo"
REDIRECT = "http://127.0.0.1:8765/callback"


def authorize_url(client_id: str, challenge: str, **params: str) -> str:
    """An authorization request built by hand, for what a library would not send."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
             "state": "st-123", "code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{AUTHORIZE}?{urlencode(query | params)}"


async def rp(**request: Any) -> dict[str, Any]:
    """One step of the openid-client relying party; its JSON answer."""
    child = await asyncio.create_subprocess_exec(
        "node", str(RP_SCRIPT), json.dumps(request), cwd=RP_SCRIPT.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=RP_TIMEOUT)
    answer: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    assert child.returncode == 0, (answer, err.decode())
    return answer


class RelyingParty:
    """A registered client as openid-client sees it, with the browser of its user."""

    def __init__(self, issuer: str, client_id: str, secret: str | None, browser: Browser):
        self.common = {"issuer": issuer, "clientId": client_id, "clientSecret": secret}
        self.client_id = client_id
        self.secret = secret
        self.browser = browser

    async def start(self, scope: str, **extra: str) -> dict[str, Any]:
        return await rp(command="start", redirectUri=REDIRECT, scope=scope, extra=extra,
                        **self.common)

    async def finish(self, started: dict[str, Any], callback_url: str,
                     **checks: Any) -> dict[str, Any]:
        return await rp(command="finish", callbackUrl=callback_url,
                        verifier=started["verifier"], nonce=started["nonce"],
                        state=started["state"], **checks, **self.common)

    async def sign_in_and_allow(self, scope: str, *, consent_texts: tuple[str, ...] = (),
                                **extra: str) -> dict[str, Any]:
        """The whole code flow: the login page, the consent page, the exchange."""
        started = await self.start(scope, **extra)
        consent = await sign_in(self.browser, await self.browser.open(started["url"]))
        assert_page(consent, 200, *consent_texts)
        allowed = await self.browser.submit(consent, "allow")
        assert allowed.status_code == 302, allowed.text
        return await self.finish(started, allowed.headers["location"])

    async def signed_in_again(self, scope: str) -> dict[str, Any]:
        """The code flow of a browser still signed in, its consent remembered: no page."""
        started = await self.start(scope)
        direct = await self.browser.open(started["url"])
        assert direct.status_code == 302, direct.text
        return await self.finish(started, direct.headers["location"])

    async def verify(self, id_token: str) -> dict[str, Any]:
        return await rp(command="verify", idToken=id_token, **self.common)

    async def refresh(self, refresh_token: str, expected_sub: str) -> dict[str, Any]:
        return await rp(command="refresh", refreshToken=refresh_token, expectedSub=expected_sub,
                        **self.common)


@pytest.fixture
def issuer(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The live server's URL as the issuer: a relying party checks that discovery names the
    URL it was fetched from (the app reads BASE_URL from this very settings object)."""
    monkeypatch.setattr(get_settings(), "base_url", live_server.url)
    return live_server.url


@pytest.fixture
def clock_now(frozen_clock: Clock) -> Clock:
    """The server's clock stopped at whole seconds of the real time, which the relying party
    (another process) checks `iat` and `exp` against."""
    frozen_clock.current = datetime.now(UTC).replace(microsecond=0)
    return frozen_clock


@pytest.fixture
async def browser(live_server: LiveServer) -> AsyncIterator[Browser]:
    b = Browser(live_server)
    async with b.http:
        yield b


@pytest.fixture
async def user() -> User:
    return await make_user(EMAIL)


@pytest.fixture
async def third_party(issuer: str, browser: Browser) -> RelyingParty:
    """A user's third-party app, registered for devices:read only."""
    owner = await make_user("maker@example.com")
    row, secret = await apps.create_app(
        await acting_as(owner), name="Dashboard Pro", redirect_uris=[REDIRECT],
        scopes=["devices:read"],
    )
    return RelyingParty(issuer, row.client_id, secret, browser)


async def product_client(customer_auth: str = "LOGIN_WITH_PLATFORM",
                         client_type: str = "WEB", name: str = "Smart Kettle"
                         ) -> tuple[int, str, str]:
    """A product of a new organization, and one of its clients."""
    slug = name.lower().replace(" ", "-")
    team = await organization_with_team(name, slug, domain=f"{slug}.example", roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name=name, slug=None, description="",
        platform="Photon", customer_auth=customer_auth,
    )
    redirect_uris = [REDIRECT] if client_type != "SERVER" else []
    client, secret = await products.create_oauth_client(
        owner, product.id, name="Kettle Web", client_type=client_type,
        redirect_uris=redirect_uris,
    )
    return product.id, client.client_id, secret


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


# --- The code flow through openid-client ----------------------------------------------------


async def test_a_third_party_app_signs_a_user_in(third_party, user, clock_now, http, issuer):
    signed_in_at = clock_now.current
    done = await third_party.sign_in_and_allow(
        "openid profile email devices:read",
        consent_texts=(
            "Know who you are on Device Cloud: an identifier for your account that never "
            "changes",
            "See your profile: your account has no name or picture, so nothing more is shared",
            f"See your email address ({EMAIL}) and whether it is verified",
            "See your devices and whether they are online",
        ),
    )
    [key] = await SigningKey.all()
    assert done["header"] == {"typ": "JWT", "alg": "RS256", "kid": key.kid}
    claims = done["claims"]
    sub = f"user:{user.id}"
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                           "email", "email_verified"}
    assert (claims["iss"], claims["sub"], claims["aud"]) == (issuer, sub, third_party.client_id)
    assert (claims["email"], claims["email_verified"]) == (EMAIL, True)
    assert claims["iat"] == seconds(clock_now.current)
    assert claims["exp"] == claims["iat"] + get_settings().id_token_lifetime
    assert claims["auth_time"] == seconds(signed_in_at)
    assert done["userinfo"] == {"sub": sub, "email": EMAIL, "email_verified": True}
    assert done["tokens"]["scope"] == "openid profile email devices:read"
    code = await AuthorizationCode.get(client__client_id=third_party.client_id)
    assert code.nonce == claims["nonce"]
    # Introspection names the same subject.
    seen = await introspect(http, done["tokens"]["access_token"],
                            (third_party.client_id, third_party.secret))
    assert seen["sub"] == sub

    # A refresh returns a new ID token: the same sub and auth_time, a new iat, no nonce.
    clock_now.advance(seconds=30)
    refreshed = await third_party.refresh(done["tokens"]["refresh_token"], sub)
    again = refreshed["claims"]
    assert "nonce" not in again
    assert (again["sub"], again["aud"], again["auth_time"], again["iat"]) == (
        sub, third_party.client_id, seconds(signed_in_at), seconds(clock_now.current))
    assert (again["email"], refreshed["header"]["kid"]) == (EMAIL, key.kid)


async def test_a_product_app_names_the_customer(issuer, browser, user, clock_now, http):
    product_id, client_id, secret = await product_client()
    app = RelyingParty(issuer, client_id, secret, browser)
    done = await app.sign_in_and_allow(
        "openid email", consent_texts=("Sign you in to Smart Kettle as a customer",
                                       f"See your email address ({EMAIL})"))
    [customer] = await Customer.filter(product_id=product_id)
    sub = f"customer:{customer.id}"
    assert (done["claims"]["sub"], done["claims"]["aud"]) == (sub, client_id)
    assert done["userinfo"] == {"sub": sub, "email": EMAIL, "email_verified": True}
    assert (await introspect(http, done["tokens"]["access_token"], (client_id, secret)))[
        "sub"] == sub
    family = await TokenFamily.get(customer_id=customer.id)
    assert (family.scope, family.auth_time) == ("openid email", clock_now.current)

    # Refreshed, the customer's token keeps its identity scopes: userinfo still answers.
    refreshed = await app.refresh(done["tokens"]["refresh_token"], sub)
    assert refreshed["claims"]["sub"] == sub
    response = await http.get(USERINFO, headers={"Authorization": "Bearer " + done["tokens"][
        "access_token"]})
    assert response.json() == {"sub": sub, "email": EMAIL, "email_verified": True}


async def test_a_public_client_gets_an_id_token_too(issuer, browser, user, clock_now, http):
    """A native app's public client (no secret, PKCE alone) is a relying party too."""
    owner = await make_user("maker@example.com")
    row, secret = await apps.create_app(
        await acting_as(owner), name="Desk Tool", redirect_uris=[REDIRECT], scopes=[],
        public=True,
    )
    assert secret is None
    app = RelyingParty(issuer, row.client_id, None, browser)
    done = await app.sign_in_and_allow("openid email")
    sub = f"user:{user.id}"
    assert (done["claims"]["sub"], done["claims"]["aud"]) == (sub, row.client_id)
    assert done["userinfo"] == {"sub": sub, "email": EMAIL, "email_verified": True}
    refreshed = await app.refresh(done["tokens"]["refresh_token"], sub)
    assert refreshed["claims"]["auth_time"] == done["claims"]["auth_time"]


async def test_without_openid_there_is_no_id_token(third_party, user, clock_now, http):
    verifier, challenge = pkce()
    page = await sign_in(third_party.browser, await third_party.browser.open(
        authorize_url(third_party.client_id, challenge, scope="devices:read")))
    location = (await third_party.browser.submit(page, "allow")).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = await http.post(TOKEN, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier}, auth=(third_party.client_id, third_party.secret))
    assert response.status_code == 200
    assert "id_token" not in response.json()


async def test_max_age_asks_for_a_fresh_sign_in(third_party, user, clock_now):
    first = await third_party.sign_in_and_allow("openid")
    assert first["claims"]["auth_time"] == seconds(clock_now.current)

    # Signed in 61 seconds ago, consent remembered: max_age=60 still shows the login page.
    clock_now.advance(seconds=61)
    started = await third_party.start("openid", max_age="60")
    login = await third_party.browser.open(started["url"])
    assert_page(login, 200, "Sign in with Device Cloud")
    posted = await third_party.browser.submit(login, "sign_in", email=EMAIL, password=PASSWORD)
    assert posted.status_code == 302  # consent remembered: straight back with a code
    done = await third_party.finish(started, posted.headers["location"], maxAge=60)
    assert done["claims"]["auth_time"] == seconds(clock_now.current)

    # Within max_age, no page: the code comes at once, with the same sign-in.
    clock_now.advance(seconds=30)
    started = await third_party.start("openid", max_age="60")
    direct = await third_party.browser.open(started["url"])
    assert direct.status_code == 302
    done = await third_party.finish(started, direct.headers["location"], maxAge=60)
    assert done["claims"]["auth_time"] == seconds(clock_now.current) - 30

    # prompt=none with a sign-in older than max_age: login_required, never a page.
    clock_now.advance(seconds=31)
    started = await third_party.start("openid", max_age="60", prompt="none")
    refused = await third_party.browser.open(started["url"])
    params = parse_qs(urlsplit(refused.headers["location"]).query)
    assert params["error"] == ["login_required"]


# --- Key rotation -------------------------------------------------------------------------------


async def test_rotation_keeps_old_id_tokens_verifiable_for_the_overlap(
        third_party, user, clock_now, http):
    settings = get_settings()
    before = await third_party.sign_in_and_allow("openid")
    old_kid = before["header"]["kid"]

    new, retired = await signing_keys.rotate(settings)
    assert retired is not None and retired.kid == old_kid
    # The old token still verifies: its key stays published.
    verified = await third_party.verify(before["tokens"]["id_token"])
    assert (verified["ok"], verified["header"]["kid"]) == (True, old_kid)
    # New ID tokens are signed with the new key.
    after = await third_party.signed_in_again("openid")
    assert after["header"]["kid"] == new.kid
    jwks = (await http.get("/oauth/jwks")).json()
    assert [key["kid"] for key in jwks["keys"]] == [new.kid, old_kid]

    # Once the overlap has passed, the old key is gone and its tokens no longer verify.
    clock_now.advance(seconds=settings.signing_key_overlap - 1)
    assert [k["kid"] for k in (await http.get("/oauth/jwks")).json()["keys"]] == [
        new.kid, old_kid]
    clock_now.advance(seconds=1)
    assert [k["kid"] for k in (await http.get("/oauth/jwks")).json()["keys"]] == [new.kid]
    gone = await third_party.verify(before["tokens"]["id_token"])
    assert (gone["ok"], gone["code"]) == (False, "ERR_JWKS_NO_MATCHING_KEY")
    assert (await third_party.verify(after["tokens"]["id_token"]))["ok"] is True


async def test_processes_started_together_create_one_signing_key(database_url):
    """Three app processes on one database, each asked for the keys at once before any key
    exists: one key is created, and every process publishes (and signs with) that one."""
    async with app_processes(database_url) as apps, httpx.AsyncClient(trust_env=False) as http:
        started = await apps.start(3)
        answers = await asyncio.gather(*(http.get(f"{app.url}/oauth/jwks")
                                         for app in started for _ in range(2)))
    [key] = await SigningKey.all()
    assert {tuple(k["kid"] for k in a.json()["keys"]) for a in answers} == {(key.kid,)}


async def test_the_jwks_publishes_public_keys_only(http, clock_now):
    response = await http.get("/oauth/jwks")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    [key] = response.json()["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")


UNSIGNABLE = ("ID tokens cannot be signed at the moment. Nothing was issued and the code or "
              "refresh token is still usable: try again later.")


async def code_for(rp: RelyingParty, scope: str) -> tuple[str, str]:
    """A code and its PKCE verifier, from the login and consent pages (no relying party
    library: its token request would not be repeatable)."""
    verifier, challenge = pkce()
    page = await sign_in(rp.browser, await rp.browser.open(
        authorize_url(rp.client_id, challenge, scope=scope)))
    allowed = await rp.browser.submit(page, "allow")
    assert allowed.status_code == 302, allowed.text
    return parse_qs(urlsplit(allowed.headers["location"]).query)["code"][0], verifier


async def test_an_unreadable_signing_key_issues_nothing(third_party, user, clock_now, http,
                                                        monkeypatch):
    """A signing key that does not decrypt (another process rotated under another
    SECRET_KEY): the token request fails before anything is stored, and the same code, then
    the same refresh token, work once the key is readable again; no replay is detected."""
    settings = get_settings()
    await signing_keys.current(settings)
    code, verifier = await code_for(third_party, "openid devices:read")
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier}
    client = (third_party.client_id, third_party.secret)
    real_secret = settings.secret_key

    monkeypatch.setattr(settings, "secret_key", "another-" + "s" * 40)
    refused = await http.post(TOKEN, data=exchange, auth=client)
    assert_oauth_error(refused, 500, "server_error", UNSIGNABLE)
    assert (await AuthorizationCode.get()).used_at is None
    assert await TokenFamily.all().count() == 0

    monkeypatch.setattr(settings, "secret_key", real_secret)
    issued = await http.post(TOKEN, data=exchange, auth=client)
    assert issued.status_code == 200, issued.text
    assert "id_token" in issued.json()
    refresh = {"grant_type": "refresh_token", "refresh_token": issued.json()["refresh_token"]}

    monkeypatch.setattr(settings, "secret_key", "another-" + "s" * 40)
    refused = await http.post(TOKEN, data=refresh, auth=client)
    assert_oauth_error(refused, 500, "server_error", UNSIGNABLE)
    [token] = await Token.all()
    assert token.refresh_used_at is None

    monkeypatch.setattr(settings, "secret_key", real_secret)
    refreshed = await http.post(TOKEN, data=refresh, auth=client)
    assert refreshed.status_code == 200, refreshed.text
    assert "id_token" in refreshed.json()
    [family] = await TokenFamily.all()
    assert family.revoked_at is None
    assert await Token.all().count() == 2


async def test_a_refresh_without_openid_does_not_lose_it(third_party, user, clock_now, http):
    """A refresh narrowed to devices:read gets no ID token and its access token no userinfo;
    the next refresh asks for openid again and gets both."""
    code, verifier = await code_for(third_party, "openid devices:read")
    client = (third_party.client_id, third_party.secret)
    issued = (await http.post(TOKEN, auth=client, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier})).json()
    narrowed = (await http.post(TOKEN, auth=client, data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"],
        "scope": "devices:read"})).json()
    assert (narrowed["scope"], "id_token" in narrowed) == ("devices:read", False)
    refused = await http.get(USERINFO,
                             headers={"Authorization": f"Bearer {narrowed['access_token']}"})
    assert refused.status_code == 403, refused.text

    again = await http.post(TOKEN, auth=client, data={
        "grant_type": "refresh_token", "refresh_token": narrowed["refresh_token"],
        "scope": "openid devices:read"})
    assert again.status_code == 200, again.text
    assert again.json()["scope"] == "openid devices:read"
    verified = await third_party.verify(again.json()["id_token"])
    assert (verified["ok"], verified["claims"]["sub"]) == (True, f"user:{user.id}")
    answered = await http.get(USERINFO,
                              headers={"Authorization": f"Bearer {again.json()['access_token']}"})
    assert answered.json() == {"sub": f"user:{user.id}"}


# --- Refusals -----------------------------------------------------------------------------------


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {k: v[0] for k, v in query.items() if k in ("error", "error_description")}


IDENTITY_OUTSIDE = ("openid, profile and email are for the authorization code flow, where a "
                    "user signs in.")


async def test_openid_with_a_client_that_may_not_use_the_code_flow(browser, http, user):
    _, server_id, server_secret = await product_client("TWO_LEGGED", "SERVER", "Thermostat")
    response = await http.post(TOKEN, data={"grant_type": "client_credentials",
                                            "scope": "openid"},
                               auth=(server_id, server_secret))
    assert_oauth_error(response, 400, "invalid_scope", IDENTITY_OUTSIDE)
    client, secret = await service_client()
    response = await http.post(TOKEN, data={"grant_type": "client_credentials",
                                            "scope": "openid email"},
                               auth=(client.client_id, secret))
    assert_oauth_error(response, 400, "invalid_scope", IDENTITY_OUTSIDE)
    response = await http.post(TOKEN, data={
        "grant_type": "password", "client_id": "devicecloud", "username": EMAIL,
        "password": PASSWORD, "scope": "openid"})
    assert_oauth_error(response, 400, "invalid_scope", IDENTITY_OUTSIDE)

    # A product whose customers do not log in with their platform account.
    _, simple_id, _ = await product_client("SIMPLE", "WEB", "Plug")
    refused = await browser.open(authorize_url(simple_id, pkce()[1], scope="openid"))
    assert error_of(refused)["error"] == "unauthorized_client"
    assert await AuthorizationCode.all().count() == 0


async def test_profile_and_email_need_openid(third_party, user):
    refused = await third_party.browser.open(
        authorize_url(third_party.client_id, pkce()[1], scope="email"))
    assert error_of(refused) == {
        "error": "invalid_scope",
        "error_description": "profile and email are OpenID Connect scopes: ask for openid too."}


@pytest.mark.parametrize("nonce", ["n" * 256, "two words", "caf\u00e9"])
async def test_a_bad_nonce_is_refused(third_party, user, nonce):
    refused = await third_party.browser.open(
        authorize_url(third_party.client_id, pkce()[1], scope="openid", nonce=nonce))
    assert error_of(refused) == {
        "error": "invalid_request",
        "error_description": "nonce must be 1 to 255 printable ASCII characters, without "
                             "spaces."}


async def test_a_nonce_without_openid_is_not_kept(third_party, user):
    page = await sign_in(third_party.browser, await third_party.browser.open(authorize_url(
        third_party.client_id, pkce()[1], scope="devices:read", nonce="n" * 5000)))
    assert (await third_party.browser.submit(page, "allow")).status_code == 302
    [code] = await AuthorizationCode.all()
    assert (code.scope, code.nonce) == ("devices:read", None)


async def test_a_nonce_is_good_for_one_code(third_party, user, clock_now):
    started = await third_party.start("openid")
    consent = await sign_in(third_party.browser, await third_party.browser.open(started["url"]))
    assert (await third_party.browser.submit(consent, "allow")).status_code == 302
    nonce = started["nonce"]
    again = await third_party.browser.open(
        authorize_url(third_party.client_id, pkce()[1], scope="openid", nonce=nonce))
    assert error_of(again) == {
        "error": "invalid_request",
        "error_description": "This nonce was already used with this client: send a new one "
                             "with every request."}
    assert await AuthorizationCode.filter(nonce=nonce).count() == 1


def assert_challenge(response: httpx.Response, status: int, error: str, challenge: str
                     ) -> None:
    assert response.status_code == status, response.text
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == error


def assert_bare_challenge(response: httpx.Response) -> None:
    """RFC 6750 §3.1: a request without a bearer token learns only that one is needed."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    assert (response.content, response.headers.get("content-type")) == (b"", None)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_refuses_what_is_not_a_good_openid_token(http, user, method):
    assert_bare_challenge(await http.request(method, USERINFO))
    assert_bare_challenge(
        await http.request(method, USERINFO, headers={"Authorization": "Basic eDp5"}))
    assert_bare_challenge(
        await http.request(method, USERINFO, headers={"Authorization": "Bearer"}))
    assert_challenge(
        await http.request(method, USERINFO, headers={"Authorization": "Bearer dc_at_nope"}),
        401, "invalid_token",
        'Bearer error="invalid_token", error_description="The access token is invalid, '
        'expired or revoked."')
    # A live token without the openid scope (the password grant's).
    token = await access_token(EMAIL)
    assert_challenge(
        await http.request(method, USERINFO, headers={"Authorization": f"Bearer {token}"}),
        403, "insufficient_scope",
        'Bearer error="insufficient_scope", error_description="The access token was not '
        'issued with the openid scope.", scope="openid"')


async def test_userinfo_refuses_a_revoked_or_expired_token(third_party, user, clock_now, http):
    done = await third_party.sign_in_and_allow("openid email")
    bearer = {"Authorization": "Bearer " + done["tokens"]["access_token"]}
    for method in ("GET", "POST"):
        answered = await http.request(method, USERINFO, headers=bearer)
        assert (answered.status_code, answered.json()["sub"]) == (200, f"user:{user.id}")
    clock_now.advance(seconds=get_settings().access_token_lifetime)
    expired = await http.get(USERINFO, headers=bearer)
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_token")
    clock_now.advance(seconds=-get_settings().access_token_lifetime)
    revoked = await http.post("/oauth/revoke", data={"token": done["tokens"]["access_token"]},
                              auth=(third_party.client_id, third_party.secret))
    assert revoked.status_code == 200
    answered = await http.get(USERINFO, headers=bearer)
    assert (answered.status_code, answered.json()["error"]) == (401, "invalid_token")


async def test_an_id_token_lives_its_configured_lifetime(third_party, user, clock_now,
                                                         monkeypatch):
    monkeypatch.setattr(get_settings(), "id_token_lifetime", 600)
    done = await third_party.sign_in_and_allow("openid")
    assert done["claims"]["exp"] - done["claims"]["iat"] == 600
