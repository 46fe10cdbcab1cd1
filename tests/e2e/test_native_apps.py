"""Native and CLI apps (RFC 8252) end to end: a public client (no secret) signs a user in by the
code flow with S256 PKCE, the hosted login redirecting to a real loopback listener on an
ephemeral port as a CLI runs one (the registered URI has no port), through requests-oauthlib;
a product's MOBILE app does it with its private-use scheme through httpx-oauth; refresh tokens
rotate with reuse detection; and what public and confidential clients may not do is refused
with its exact error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from httpx_oauth.oauth2 import BaseOAuth2
from requests_oauthlib import OAuth2Session

from auth import apps, tokens
from auth.principals import CustomerPrincipal, UserPrincipal
from fleet import customers, products
from models.accounts import User
from models.customers import Customer
from models.oauth import AuthorizationCode, OAuthClient, TokenFamily
from tests.support.accounts import acting_as, make_user, organization_with_team
from tests.support.hosted_login import (
    AUTHORIZE,
    EMAIL,
    ISSUER,
    Browser,
    assert_page,
    assert_secure,
    pkce,
    sign_in,
)
from tests.support.oauth import (
    INTROSPECT,
    TOKEN,
    assert_acts_as,
    assert_oauth_error,
    assert_rejected,
    assert_token_response,
)
from tests.support.servers import LiveServer

LOOPBACK = "http://127.0.0.1/callback"  # registered without a port: any port matches
IPV6_LOOPBACK = "http://[::1]/callback?app=cli"
LOCALHOST = "http://localhost:8080/callback"
HTTPS = "https://cli.example.com/callback"
PRIVATE_USE = "com.example.kettle:/callback"
NOT_REGISTERED = "is not registered for this client."
LOOPBACK_HINT = ("Loopback redirect URIs (127.0.0.1, [::1]) match on any port, with the same "
                 "path and query.")
PUBLIC_ONLY_FOR_SERVERS = ("This client is public, and this is for confidential clients only: "
                           "a server's client, which authenticates with its secret.")


class LoopbackListener:
    """What a CLI does while the user signs in: listen on 127.0.0.1, on whichever port the
    system gives, for the one request the browser is redirected with."""

    def __init__(self) -> None:
        self.received: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def __aenter__(self) -> LoopbackListener:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, _ = (await reader.readline()).decode("ascii").split(" ", 2)
        while (await reader.readline()).strip():
            continue  # the headers: a CLI needs only the request target
        if method == "GET" and not self.received.done():
            self.received.set_result(f"http://127.0.0.1:{self.port}{target}")
        body = b"Signed in. You can close this window and go back to the terminal."
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()


@dataclass
class CliApp:
    client_id: str
    row: OAuthClient


@pytest.fixture
async def browser(live_server: LiveServer) -> AsyncIterator[Browser]:
    b = Browser(live_server)
    async with b.http:
        yield b


@pytest.fixture
async def user() -> User:
    return await make_user(EMAIL)


@pytest.fixture
async def cli() -> CliApp:
    """A public third-party app (a CLI), registered by another user."""
    owner = await make_user("maker@example.com")
    row, secret = await apps.create_app(
        await acting_as(owner), name="Fleet CLI", public=True, scopes=["devices:read"],
        redirect_uris=[LOOPBACK, IPV6_LOOPBACK, LOCALHOST, HTTPS],
    )
    assert secret is None
    return CliApp(row.client_id, row)


def authorize_url(client_id: str, redirect_uri: str, challenge: str, **extra: str) -> str:
    """The CLI's request, with `extra` parameters (one given as "" is left out)."""
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "devices:read", "state": "st-1", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra,
    }
    return AUTHORIZE + "?" + urlencode({name: value for name, value in params.items() if value})


def assert_token(response: httpx.Response) -> dict[str, Any]:
    """A user token for the CLI: its scope, and a refresh token."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert (body["token_type"], body["scope"]) == ("Bearer", "devices:read")
    return body


def params_of(location: str) -> dict[str, str]:
    params = parse_qs(urlsplit(location).query, strict_parsing=True)
    assert all(len(v) == 1 for v in params.values()), params
    return {k: v[0] for k, v in params.items()}


async def approved(browser: Browser, url: str) -> httpx.Response:
    """Sign in and allow; the redirect to the client (not followed)."""
    consent = await sign_in(browser, await browser.open(url))
    allowed = await browser.submit(consent, "allow")
    assert allowed.status_code == 302, allowed.text
    assert_secure(allowed)
    return allowed


async def cli_code(browser: Browser, cli: CliApp, redirect_uri: str) -> tuple[str, str]:
    """A code issued for `redirect_uri` (not followed), and its verifier."""
    verifier, challenge = pkce()
    allowed = await approved(browser, authorize_url(cli.client_id, redirect_uri, challenge))
    location = allowed.headers["location"]
    assert location.startswith(redirect_uri + ("&" if "?" in redirect_uri else "?")), location
    return params_of(allowed.headers["location"])["code"], verifier


async def exchange(http: httpx.AsyncClient, client_id: str, code: str, verifier: str,
                   redirect_uri: str, **auth: Any) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier, "client_id": client_id}
    return await http.post(TOKEN, data=data | auth.pop("form", {}), **auth)


# --- The flow -----------------------------------------------------------------------------------


async def test_a_cli_signs_in_through_a_loopback_listener_on_an_ephemeral_port(
    live_server, browser, user, cli, http, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is plain http
    async with LoopbackListener() as listener:
        session = OAuth2Session(cli.client_id, redirect_uri=listener.redirect_uri,
                                scope=["devices:read"], pkce="S256")
        session.trust_env = False
        url, state = session.authorization_url(live_server.url + AUTHORIZE)

        allowed = await approved(browser, url)
        location = allowed.headers["location"]
        assert location.startswith(listener.redirect_uri + "?"), location
        # The browser follows the redirect to the CLI's listener, which reads the code.
        landed = await browser.http.get(urljoin(str(allowed.url), location))
        assert (landed.status_code, landed.text) == (
            200, "Signed in. You can close this window and go back to the terminal.")
        received = await asyncio.wait_for(listener.received, timeout=10)
    assert received == location
    returned = params_of(received)
    assert set(returned) == {"code", "state", "iss"}
    assert (returned["state"], returned["iss"]) == (state, ISSUER)

    # The code remembers the redirect URI requested, port included.
    code = await AuthorizationCode.get(client_id=cli.row.id)
    assert code.redirect_uri == listener.redirect_uri

    # Exchanged without a secret: the client ID in the body, and the PKCE verifier.
    token = await asyncio.to_thread(
        session.fetch_token, live_server.url + TOKEN, authorization_response=received,
        include_client_id=True,
    )
    assert set(token) == {"access_token", "token_type", "expires_in", "refresh_token", "scope",
                          "expires_at"}  # requests-oauthlib adds expires_at
    assert (token["token_type"], token["scope"]) == ("Bearer", ["devices:read"])
    principal = await tokens.authenticate(token["access_token"])
    assert isinstance(principal, UserPrincipal)
    assert (principal.user.id, principal.client.client_id, principal.scope) == (
        user.id, cli.client_id, "devices:read")
    await assert_acts_as(http, token["access_token"], EMAIL)

    # Refresh rotates, as for any client.
    refreshed = await asyncio.to_thread(
        session.refresh_token, live_server.url + TOKEN, client_id=cli.client_id,
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    again = await tokens.authenticate(refreshed["access_token"])
    assert (again.family_id, again.scope) == (principal.family_id, "devices:read")

    # Presenting the used refresh token again is a reuse: the whole family is revoked.
    reused = await http.post(TOKEN, data={"grant_type": "refresh_token",
                                          "client_id": cli.client_id,
                                          "refresh_token": token["refresh_token"]})
    assert assert_oauth_error(reused, 400, "invalid_grant") == {"error": "invalid_grant"}
    await assert_rejected(http, refreshed["access_token"])
    later = await http.post(TOKEN, data={"grant_type": "refresh_token",
                                         "client_id": cli.client_id,
                                         "refresh_token": refreshed["refresh_token"]})
    assert assert_oauth_error(later, 400, "invalid_grant") == {"error": "invalid_grant"}
    assert (await TokenFamily.get(id=principal.family_id)).revoked_at is not None


async def test_an_ipv6_loopback_uri_matches_on_any_port_with_its_query(browser, user, cli,
                                                                       http):
    requested = "http://[::1]:51234/callback?app=cli"
    code, verifier = await cli_code(browser, cli, requested)
    assert_token(await exchange(http, cli.client_id, code, verifier, requested))


async def test_the_token_request_repeats_the_redirect_uri_requested(browser, user, cli, http):
    code, verifier = await cli_code(browser, cli, "http://127.0.0.1:40123/callback")
    # Not the registered one, nor the same URI on another port: the very one requested.
    for other in (LOOPBACK, "http://127.0.0.1:40124/callback"):
        response = await exchange(http, cli.client_id, code, verifier, other)
        assert_oauth_error(response, 400, "invalid_grant", "Invalid 'redirect_uri' in request.")
    assert_token(await exchange(http, cli.client_id, code, verifier,
                                "http://127.0.0.1:40123/callback"))


@pytest.mark.parametrize("client_type", ["MOBILE", "WEB"])
@pytest.mark.parametrize("public", [True, False], ids=["public", "confidential"])
async def test_a_product_app_signs_in_with_its_private_use_scheme_or_loopback(
    live_server, browser, user, client_type, public
):
    """A MOBILE app redirects to its private-use scheme: the browser hands the URI to the
    app, so the test reads the Location header without fetching it. A WEB client (a desktop
    app of the product) takes a loopback one on any port."""
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Smart Kettle", slug=None, description="",
        platform="Photon", customer_auth="LOGIN_WITH_PLATFORM",
    )
    registered, requested = ((PRIVATE_USE, PRIVATE_USE) if client_type == "MOBILE"
                             else (LOOPBACK, "http://127.0.0.1:50999/callback"))
    client, secret = await products.create_oauth_client(
        owner, product.id, name="Kettle", client_type=client_type, redirect_uris=[registered],
        public=public,
    )
    assert (secret is None) == public
    # httpx-oauth sends the (empty, for a public app) secret in the body.
    app = BaseOAuth2[dict[str, Any]](
        client.client_id, secret or "", live_server.url + AUTHORIZE, live_server.url + TOKEN,
        refresh_token_endpoint=live_server.url + TOKEN,
        token_endpoint_auth_method="client_secret_post",
    )
    verifier, challenge = pkce()
    url = await app.get_authorization_url(requested, state="kettle", code_challenge=challenge,
                                          code_challenge_method="S256")
    allowed = await approved(browser, url)
    location = allowed.headers["location"]
    assert location.startswith(requested + "?"), location
    returned = params_of(location)
    assert (returned["state"], returned["iss"]) == ("kettle", ISSUER)

    token = await app.get_access_token(returned["code"], requested, code_verifier=verifier)
    principal = await tokens.authenticate(token["access_token"])
    assert isinstance(principal, CustomerPrincipal)
    [customer] = await Customer.filter(product_id=product.id)
    assert (principal.customer.id, principal.client.client_id, customer.user_id) == (
        customer.id, client.client_id, user.id)
    refreshed = await app.refresh_token(token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]


async def test_a_public_mobile_app_signs_customers_in_with_their_password(http):
    """Simple auth: the app cannot keep a secret, so it sends only its client ID."""
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Doorbell", slug=None, description="",
        platform="Photon", customer_auth="SIMPLE",
    )
    client, _ = await products.create_oauth_client(
        owner, product.id, name="Phone", client_type="MOBILE", redirect_uris=[], public=True,
    )
    customer = await customers.create_customer(owner, product.id, email="cu@example.com",
                                               password="a long password")
    response = await http.post(TOKEN, data={"grant_type": "password", "client_id":
                                            client.client_id, "username": "cu@example.com",
                                            "password": "a long password"})
    issued = assert_token_response(response)
    principal = await tokens.authenticate(issued["access_token"])
    assert isinstance(principal, CustomerPrincipal)
    assert principal.customer.id == customer.id


# --- Remembered consent --------------------------------------------------------------------------


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:40123/callback", "http://[::1]:40123/callback?app=cli", LOCALHOST,
])
async def test_a_public_client_on_loopback_is_never_approved_without_the_user(
    browser, user, cli, http, redirect_uri
):
    """Anyone can start a request with the CLI's ID, a loopback port of their own and their
    own PKCE pair (RFC 8252 §8.6): the remembered consent does not skip the page, and
    prompt=none cannot get a code silently."""
    await cli_code(browser, cli, redirect_uri)  # the user allowed the CLI once
    # Another process, another port (the same for localhost, which matches exactly).
    other = redirect_uri.replace(":40123", ":40999")
    verifier, challenge = pkce()
    page = await browser.open(authorize_url(cli.client_id, other, challenge))
    assert_page(page, 200, "<strong>Fleet CLI</strong> wants to use your Device Cloud account")
    silent = await browser.open(authorize_url(cli.client_id, other, pkce()[1], prompt="none"))
    assert silent.status_code == 302
    assert_secure(silent)
    assert params_of(silent.headers["location"]) == {
        **dict(parse_qsl(urlsplit(other).query)),  # the registered URI's own query
        "error": "consent_required",
        "error_description": "The user has not allowed this app these scopes.",
        "state": "st-1", "iss": ISSUER,
    }
    assert await AuthorizationCode.all().count() == 1
    # The user's own decision still gets the app its code.
    allowed = await browser.submit(page, "allow")
    code = params_of(allowed.headers["location"])["code"]
    assert_token(await exchange(http, cli.client_id, code, verifier, other))


async def test_a_public_client_on_https_keeps_its_remembered_consent(browser, user, cli, http):
    """Only the app's own server receives an https redirect: no consent page the second time,
    nor for prompt=none."""
    await cli_code(browser, cli, HTTPS)
    for extra in ({}, {"prompt": "none"}):
        verifier, challenge = pkce()
        direct = await browser.open(authorize_url(cli.client_id, HTTPS, challenge, **extra))
        assert direct.status_code == 302, direct.text
        returned = params_of(direct.headers["location"])
        assert set(returned) == {"code", "state", "iss"}
        assert_token(await exchange(http, cli.client_id, returned["code"], verifier, HTTPS))


@pytest.mark.parametrize("public", [True, False], ids=["public", "confidential"])
async def test_a_private_use_scheme_is_approved_again_only_for_a_confidential_client(
    browser, user, public
):
    """Another app on the phone may claim the same scheme: a public MOBILE client asks the
    user every time, a confidential one (whose code needs its secret) keeps its consent."""
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Smart Kettle", slug=None, description="",
        platform="Photon", customer_auth="LOGIN_WITH_PLATFORM",
    )
    client, _ = await products.create_oauth_client(
        owner, product.id, name="Kettle", client_type="MOBILE", redirect_uris=[PRIVATE_USE],
        public=public,
    )
    first = await approved(browser, authorize_url(client.client_id, PRIVATE_USE, pkce()[1],
                                                  scope=""))
    assert set(params_of(first.headers["location"])) == {"code", "state", "iss"}
    again = await browser.open(authorize_url(client.client_id, PRIVATE_USE, pkce()[1],
                                             scope="", prompt="none"))
    assert again.status_code == 302
    returned = params_of(again.headers["location"])
    if public:
        assert returned["error"] == "consent_required"
    else:
        assert set(returned) == {"code", "state", "iss"}


# --- Refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("redirect_uri", "hint"), [
    ("http://127.0.0.1:40123/other", True),  # a loopback URI on another path
    ("http://127.0.0.1:40123/callback?x=2", True),  # or with another query
    ("http://[::1]:40123/callback", True),  # the [::1] one is registered with its query
    ("http://localhost:9090/callback", False),  # localhost matches exactly (RFC 8252 §8.3)
    ("https://cli.example.com:8443/callback", False),  # https matches exactly
])
async def test_an_unregistered_redirect_uri_gets_the_error_page(browser, cli, redirect_uri,
                                                                hint):
    response = await browser.open(authorize_url(cli.client_id, redirect_uri, pkce()[1]))
    message = f"The redirect URI {redirect_uri} {NOT_REGISTERED}"
    assert_page(response, 400, "This sign-in link is not valid",
                f"{message} {LOOPBACK_HINT}" if hint else message)
    assert hint or LOOPBACK_HINT not in response.text
    assert await AuthorizationCode.all().count() == 0


async def test_localhost_matches_on_its_registered_port(browser, user, cli):
    response = await browser.open(authorize_url(cli.client_id, LOCALHOST, pkce()[1]))
    assert_page(response, 200, "Sign in with Device Cloud")


async def test_a_public_client_that_sends_a_secret_is_refused(browser, user, cli, http):
    code, verifier = await cli_code(browser, cli, LOOPBACK)
    for auth in ({"auth": (cli.client_id, "dc_cs_guess")},
                 {"form": {"client_secret": "dc_cs_guess"}}):
        response = await exchange(http, cli.client_id, code, verifier, LOOPBACK, **auth)
        assert_oauth_error(response, 401, "invalid_client",
                           "This client is public: send client_id and no secret.")
    # Refused before the code was looked at: it still works, without a secret.
    assert_token(await exchange(http, cli.client_id, code, verifier, LOOPBACK))


@pytest.mark.parametrize(("extra", "description"), [
    ({"code_challenge": "", "code_challenge_method": ""},
     "PKCE is required: send code_challenge with code_challenge_method=S256."),
    ({"code_challenge_method": "plain"}, "code_challenge_method must be S256; plain is refused."),
], ids=["no-pkce", "plain"])
async def test_a_public_client_is_refused_without_s256_pkce(browser, user, cli, extra,
                                                            description):
    response = await browser.open(authorize_url(cli.client_id, LOOPBACK, pkce()[1], **extra))
    assert response.status_code == 302, response.text
    assert params_of(response.headers["location"]) == {
        "error": "invalid_request", "error_description": description, "state": "st-1",
        "iss": ISSUER}
    assert await AuthorizationCode.all().count() == 0


async def test_a_public_clients_code_needs_its_verifier(browser, user, cli, http):
    code, _ = await cli_code(browser, cli, LOOPBACK)
    for wrong, error, description in (
        ("", "invalid_request", "Missing 'code_verifier'"),
        (pkce()[0], "invalid_grant", "Code challenge failed."),
    ):
        response = await exchange(http, cli.client_id, code, wrong, LOOPBACK)
        assert (response.status_code, response.json()) == (
            400, {"error": error, "error_description": description})
    assert await TokenFamily.all().count() == 0


async def test_a_confidential_client_that_sends_no_secret_is_refused(browser, user, http):
    owner = await make_user("maker@example.com")
    row, secret = await apps.create_app(await acting_as(owner), name="Dashboard",
                                        redirect_uris=[LOOPBACK], scopes=["devices:read"])
    assert secret is not None
    code, verifier = await cli_code(browser, CliApp(row.client_id, row),
                                    "http://127.0.0.1:40123/callback")
    response = await exchange(http, row.client_id, code, verifier,
                              "http://127.0.0.1:40123/callback")
    assert_oauth_error(response, 401, "invalid_client",
                       "This client is confidential: authenticate with its secret (HTTP Basic "
                       "or client_secret).")
    assert await TokenFamily.all().count() == 0


@pytest.mark.parametrize("client_type", ["WEB", "MOBILE"])
async def test_a_public_client_never_acts_for_itself_nor_introspects(http, client_type):
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Doorbell", slug=None, description="",
        platform="Photon", customer_auth="SIMPLE",
    )
    client, _ = await products.create_oauth_client(
        owner, product.id, name="App", client_type=client_type, redirect_uris=[LOOPBACK],
        public=True,
    )
    # client_credentials takes a secret (RFC 6749 §4.4): a public client cannot authenticate.
    response = await http.post(TOKEN, data={"grant_type": "client_credentials",
                                            "client_id": client.client_id})
    assert_oauth_error(response, 401, "invalid_client", PUBLIC_ONLY_FOR_SERVERS)
    assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')
    introspected = await http.post(INTROSPECT, data={"token": "dc_at_x",
                                                     "client_id": client.client_id})
    assert_oauth_error(introspected, 401, "invalid_client", PUBLIC_ONLY_FOR_SERVERS)
    assert await TokenFamily.all().count() == 0
