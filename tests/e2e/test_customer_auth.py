"""Customers signing in end to end, through an OAuth client library we did not write
(requests-oauthlib): simple auth (a product's app creates the customer with a password, who
signs in with the password grant and refreshes) and two-legged auth (the product's server
creates the customer without a password and mints customer tokens with client_credentials and
`scope=customer=EMAIL`)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient

from auth import accounts
from auth.principals import ClientPrincipal, UserPrincipal
from core import clock
from fleet import customers, products
from models.customers import ClaimCode, Customer
from models.devices import Device
from models.oauth import OAuthClient, ThrottleCounter, Token, TokenFamily
from models.products import Product
from tests.support.accounts import client_token, organization_with_team, service_client
from tests.support.constants import FIRST_PARTY_CLIENT_ID, PASSWORD
from tests.support.graphql import gid, graphql
from tests.support.oauth import (
    BAD_CREDENTIALS,
    TOKEN,
    WRONG_PASSWORD,
    assert_oauth_error,
    assert_token_response,
    introspect,
    sha256,
    storage_snapshot,
)
from tests.support.servers import Clock

ONLY_SERVER = ("Only a product's SERVER client may ask for a customer's token "
               "(scope=customer=EMAIL).")
EMAIL = "ada@example.com"
CUSTOMER_PASSWORD = "thermostat-owner"
LOCKED_OUT = "Too many failed sign-in attempts. Try again in 30 minutes."
CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id email } userErrors { field message code } } }"""
DELETE = """mutation($input: DeleteCustomerInput!) { deleteCustomer(input: $input) {
  customer { id email } userErrors { field message code } } }"""
WHO = "query($id: ID!) { node(id: $id) { ... on Customer { email } } }"


@dataclass
class App:
    client: OAuthClient
    secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return self.client.client_id, self.secret


@dataclass
class World:
    """One organization's four products: two whose customers use simple auth, two whose
    customers use two-legged auth, each with its clients."""

    product: Product  # SIMPLE: customers sign in through `mobile` and `web`
    other: Product  # SIMPLE too
    backend: Product  # TWO_LEGGED: `server` creates customers and mints their tokens
    other_backend: Product  # TWO_LEGGED too
    mobile: App
    web: App
    simple_server: App  # `product`'s SERVER client
    other_mobile: App  # `other`'s
    server: App  # `backend`'s SERVER client
    backend_mobile: App  # `backend`'s MOBILE client
    other_server: App  # `other_backend`'s
    owner: UserPrincipal  # of the organization


@pytest.fixture
async def world() -> World:
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]

    async def product(name: str, customer_auth: str) -> Product:
        return await products.create_product(
            owner, team.organization.id, name=name, slug=None, description="",
            platform="Photon", customer_auth=customer_auth,
        )

    async def app(product: Product, kind: str) -> App:
        uris = ["https://app.example.com/callback"] if kind == "WEB" else []
        return App(*await products.create_oauth_client(
            owner, product.id, name=f"{kind} app", client_type=kind, redirect_uris=uris))

    thermostat = await product("Thermostat", "SIMPLE")
    sprinkler = await product("Sprinkler", "SIMPLE")
    doorbell = await product("Doorbell", "TWO_LEGGED")
    kettle = await product("Kettle", "TWO_LEGGED")
    return World(
        thermostat, sprinkler, doorbell, kettle, await app(thermostat, "MOBILE"),
        await app(thermostat, "WEB"), await app(thermostat, "SERVER"),
        await app(sprinkler, "MOBILE"), await app(doorbell, "SERVER"),
        await app(doorbell, "MOBILE"), await app(kettle, "SERVER"), owner,
    )


def form(body: str | bytes | None) -> dict[str, list[str]]:
    assert isinstance(body, str), body
    return parse_qs(body, keep_blank_values=True, strict_parsing=True)


def basic(app: App) -> str:
    return "Basic " + base64.b64encode(f"{app.client.client_id}:{app.secret}".encode()).decode()


async def create_customer(http: httpx.AsyncClient, app: App, product: Product, email: str,
                          password: str | None = None) -> dict[str, Any]:
    """createCustomer with the app's client-credentials token; returns the payload."""
    token = await client_token(http, app.client, app.secret)
    input = {"productId": gid("Product", product.id), "email": email}
    if password is not None:
        input["password"] = password
    body = await graphql(http, CREATE, {"input": input}, token=token)
    return body["data"]["createCustomer"]


async def sign_in(http: httpx.AsyncClient, app: App, email: str = EMAIL,
                  password: str = CUSTOMER_PASSWORD) -> httpx.Response:
    return await http.post(TOKEN, data={"grant_type": "password", "username": email,
                                        "password": password}, auth=app.auth)


async def mint(http: httpx.AsyncClient, app: App, scope: str, **extra: str) -> httpx.Response:
    return await http.post(TOKEN, data={"grant_type": "client_credentials", "scope": scope,
                                        **extra}, auth=app.auth)


async def who(http: httpx.AsyncClient, token: str, customer_id: int) -> Any:
    """The customer's own view of themself, with a token."""
    body = await graphql(http, WHO, {"id": gid("Customer", customer_id)}, token=token)
    assert "errors" not in body, body
    return body["data"]["node"]


async def passwordless_customer(world: World, email: str = EMAIL, *, simple: bool = False
                                ) -> Customer:
    """A customer as a product's server creates them, without a password: of the two-legged
    product (`backend`), or, `simple`, of the simple-auth product."""
    app, product = (world.simple_server, world.product) if simple else (world.server,
                                                                        world.backend)
    server = ClientPrincipal(client=app.client, family_id=0, scope="")
    return await customers.create_customer(server, product.id, email=email, password=None)


# --- Simple auth -------------------------------------------------------------------------------


async def test_simple_auth_through_requests_oauthlib(live_server, http, world, oauth2_session,
                                                     frozen_clock: Clock):
    token_url = live_server.url + TOKEN
    mobile = world.mobile

    # The app acts for itself (client_credentials, HTTP Basic) to sign the customer up.
    app_session, app_sent = oauth2_session(
        BackendApplicationClient(client_id=mobile.client.client_id))
    app_token = await asyncio.to_thread(app_session.fetch_token, token_url,
                                        client_secret=mobile.secret)
    assert app_sent[-1].headers["Authorization"] == basic(mobile)
    assert "refresh_token" not in app_token
    created = await asyncio.to_thread(
        app_session.post, live_server.url + "/graphql",
        json={"query": CREATE, "variables": {"input": {
            "productId": gid("Product", world.product.id), "email": "  Ada@Example.COM ",
            "password": CUSTOMER_PASSWORD}}})
    assert created.status_code == 200, created.text
    customer = await Customer.get(product_id=world.product.id)
    assert created.json()["data"]["createCustomer"] == {
        "customer": {"id": gid("Customer", customer.id), "email": EMAIL}, "userErrors": []}
    assert (customer.email, customer.user_id, customer.last_active_at) == (EMAIL, None, None)
    assert customer.password_hash.startswith("$argon2id$")

    # The customer signs in through the app: the password grant, the app's credentials in
    # HTTP Basic.
    session, sent = oauth2_session(LegacyApplicationClient(client_id=mobile.client.client_id))
    frozen_clock.advance(minutes=5)
    token = await asyncio.to_thread(session.fetch_token, token_url, username=EMAIL,
                                    password=CUSTOMER_PASSWORD, client_secret=mobile.secret)
    assert sent[-1].headers["Authorization"] == basic(mobile)
    assert form(sent[-1].body) == {"grant_type": ["password"], "username": [EMAIL],
                                   "password": [CUSTOMER_PASSWORD]}
    assert (token["token_type"], token["expires_in"]) == ("Bearer", 3600)
    assert token["access_token"].startswith("dc_at_")
    assert token["refresh_token"].startswith("dc_rt_")
    assert "scope" not in token
    family = await TokenFamily.get(tokens__access_hash=sha256(token["access_token"]))
    assert (family.client_id, family.customer_id, family.user_id, family.grant_type,
            family.scope) == (mobile.client.id, customer.id, None, "password", "")
    assert (await Customer.get(id=customer.id)).last_active_at == frozen_clock.current

    # The session's bearer token acts for the customer.
    response = await asyncio.to_thread(
        session.post, live_server.url + "/graphql",
        json={"query": WHO, "variables": {"id": gid("Customer", customer.id)}})
    assert sent[-1].headers["Authorization"] == f"Bearer {token['access_token']}"
    assert response.json()["data"] == {"node": {"email": EMAIL}}
    assert (await graphql(http, "{ me { email } }", token=token["access_token"]))["data"] == {
        "me": None}

    # Refreshing through the library rotates the pair, within the same family.
    frozen_clock.advance(minutes=5)
    refreshed = await asyncio.to_thread(session.refresh_token, token_url, auth=mobile.auth)
    assert sent[-1].headers["Authorization"] == basic(mobile)
    assert form(sent[-1].body) == {"grant_type": ["refresh_token"],
                                   "refresh_token": [token["refresh_token"]]}
    assert refreshed["refresh_token"] not in (None, token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["expires_in"] == 3600
    assert await Token.filter(family_id=family.id).count() == 2
    assert await who(http, refreshed["access_token"], customer.id) == {"email": EMAIL}
    assert (await Customer.get(id=customer.id)).last_active_at == frozen_clock.current

    # Introspection names the customer.
    answer = await introspect(http, refreshed["access_token"], mobile.auth)
    assert (answer["active"], answer["sub"], answer["username"], answer["client_id"]) == (
        True, f"customer:{customer.id}", EMAIL, mobile.client.client_id)


async def test_the_web_app_signs_customers_in_too(http, world):
    created = await create_customer(http, world.web, world.product, EMAIL, CUSTOMER_PASSWORD)
    assert created["userErrors"] == []
    tokens = assert_token_response(await sign_in(http, world.web))
    customer = await Customer.get(email=EMAIL)
    assert await who(http, tokens["access_token"], customer.id) == {"email": EMAIL}


async def test_an_app_must_give_its_customers_a_password(http, world):
    for password, code, message in (
        (None, "REQUIRED", "Customers created by an app sign in with a password: set one."),
        ("short", "TOO_SHORT", "Password must be at least 8 characters long."),
    ):
        created = await create_customer(http, world.mobile, world.product, EMAIL, password)
        assert created == {"customer": None, "userErrors": [
            {"field": "password", "message": message, "code": code}]}
    assert await Customer.all().count() == 0


async def test_only_a_simple_auth_products_apps_create_and_sign_in_customers(http, world):
    """A two-legged product's customers have no password: its apps neither create them nor
    sign them in; its server does both."""
    for password in (CUSTOMER_PASSWORD, None):
        created = await create_customer(http, world.backend_mobile, world.backend, EMAIL,
                                        password)
        assert created == {"customer": None, "userErrors": [{
            "field": "productId", "code": "CUSTOMER_AUTH_MISMATCH",
            "message": "This product's customers sign in with TWO_LEGGED, not with a "
                       "password: its apps do not create them."}]}
    with_password = await create_customer(http, world.server, world.backend, EMAIL,
                                          CUSTOMER_PASSWORD)
    assert with_password == {"customer": None, "userErrors": [{
        "field": "password", "code": "NOT_ALLOWED",
        "message": "This product's customers sign in with TWO_LEGGED: they have no password."}]}
    assert await Customer.all().count() == 0

    await passwordless_customer(world)
    await ThrottleCounter.all().delete()
    before = await storage_snapshot()
    assert_oauth_error(await sign_in(http, world.backend_mobile), 400, "unauthorized_client",
                       "The customers of this product sign in with TWO_LEGGED, not with a "
                       "password.")
    assert await storage_snapshot() == before  # not even a throttling count


async def test_the_same_email_is_one_customer_per_product(http, world):
    first = await create_customer(http, world.mobile, world.product, EMAIL, CUSTOMER_PASSWORD)
    again = await create_customer(http, world.web, world.product, "ADA@example.com",
                                  "another-password")
    elsewhere = await create_customer(http, world.other_mobile, world.other, EMAIL,
                                      "sprinkler-owner")
    assert first["userErrors"] == [] and elsewhere["userErrors"] == []
    assert again == {"customer": None, "userErrors": [{
        "field": "email", "message": "This product already has a customer with this email.",
        "code": "CUSTOMER_EXISTS"}]}
    # Two customers with one email, each signing in through their own product's app only.
    here = assert_token_response(await sign_in(http, world.mobile))
    there = assert_token_response(
        await sign_in(http, world.other_mobile, password="sprinkler-owner"))
    ours = await Customer.get(product_id=world.product.id)
    theirs = await Customer.get(product_id=world.other.id)
    assert await who(http, here["access_token"], ours.id) == {"email": EMAIL}
    assert await who(http, there["access_token"], theirs.id) == {"email": EMAIL}
    assert await who(http, here["access_token"], theirs.id) is None


async def test_the_eleventh_attempt_is_locked_out(http, world, frozen_clock: Clock):
    await create_customer(http, world.mobile, world.product, EMAIL, CUSTOMER_PASSWORD)
    await create_customer(http, world.other_mobile, world.other, EMAIL, CUSTOMER_PASSWORD)
    await accounts.sign_up(EMAIL, PASSWORD)  # a platform account with the same email
    key = f"customer:{world.product.id}:{EMAIL}"  # per product and email

    for attempt in range(10):
        wrong = await sign_in(http, world.mobile, EMAIL if attempt % 2 else " ADA@example.com",
                              WRONG_PASSWORD)
        assert_oauth_error(wrong, 400, "invalid_grant", BAD_CREDENTIALS)
    counter = await ThrottleCounter.get(key=key)
    assert (counter.failures, counter.locked_until) == (
        10, frozen_clock.current + timedelta(seconds=1800))
    assert (await ThrottleCounter.get(key="address:127.0.0.1")).failures == 10

    # The 11th attempt is refused even with the right password, and issues nothing.
    locked = await sign_in(http, world.mobile)
    assert_oauth_error(locked, 429, "too_many_attempts", LOCKED_OUT)
    assert locked.headers["retry-after"] == "1800"
    assert await TokenFamily.filter(customer_id__not_isnull=True).count() == 0
    # The platform account with the same email, and the other product's customer, are not
    # locked.
    signed_in = await http.post(TOKEN, data={"grant_type": "password", "client_id":
                                             FIRST_PARTY_CLIENT_ID, "username": EMAIL,
                                             "password": PASSWORD})
    assert_token_response(signed_in)
    assert_token_response(await sign_in(http, world.other_mobile))

    frozen_clock.advance(seconds=1799)
    assert_oauth_error(await sign_in(http, world.mobile), 429, "too_many_attempts")
    frozen_clock.advance(seconds=1)
    assert_token_response(await sign_in(http, world.mobile))
    assert not await ThrottleCounter.exists(key=key)


async def test_customers_sign_in_only_through_their_products_apps(http, world):
    await create_customer(http, world.mobile, world.product, EMAIL, CUSTOMER_PASSWORD)
    await accounts.sign_up("grace@example.com", PASSWORD)
    tokens = assert_token_response(await sign_in(http, world.mobile))
    await ThrottleCounter.all().delete()
    before = await storage_snapshot()

    # Another product's app: no such customer there (RFC 6749 §5.2 invalid_grant).
    assert_oauth_error(await sign_in(http, world.other_mobile), 400, "invalid_grant",
                       BAD_CREDENTIALS)
    # The product's SERVER client has no password grant; the first-party client signs in
    # platform accounts, not customers.
    assert_oauth_error(await sign_in(http, world.simple_server), 400, "unauthorized_client",
                       "The client is not authorized to use 'grant_type=password'")
    first_party = await http.post(TOKEN, data={"grant_type": "password", "client_id":
                                               FIRST_PARTY_CLIENT_ID, "username": EMAIL,
                                               "password": CUSTOMER_PASSWORD})
    assert_oauth_error(first_party, 400, "invalid_grant", BAD_CREDENTIALS)
    # A product's app never signs in a platform account.
    assert_oauth_error(await sign_in(http, world.mobile, "grace@example.com", PASSWORD), 400,
                       "invalid_grant", BAD_CREDENTIALS)
    # The app must authenticate as it is registered: with its secret.
    no_secret = await http.post(TOKEN, data={"grant_type": "password", "username": EMAIL,
                                             "password": CUSTOMER_PASSWORD,
                                             "client_id": world.mobile.client.client_id})
    assert_oauth_error(no_secret, 401, "invalid_client", "This client is confidential: "
                       "authenticate with its secret (HTTP Basic or client_secret).")
    wrong_secret = await http.post(TOKEN, data={"grant_type": "password", "username": EMAIL,
                                                "password": CUSTOMER_PASSWORD},
                                   auth=(world.mobile.client.client_id, world.web.secret))
    assert_oauth_error(wrong_secret, 401, "invalid_client")
    # The refresh token was issued to the MOBILE client: no other client may use it.
    for app in (world.web, world.other_mobile):
        stolen = await http.post(TOKEN, data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"]},
                                 auth=app.auth)
        assert_oauth_error(stolen, 400, "invalid_grant")

    after = await storage_snapshot()
    assert {k: v for k, v in after.items() if k != "throttle"} == {
        k: v for k, v in before.items() if k != "throttle"}
    # Only the passwords checked were counted, each against its own account.
    assert sorted(await ThrottleCounter.all().values_list("key", "failures")) == sorted([
        ("address:127.0.0.1", 3), (f"customer:{world.other.id}:{EMAIL}", 1),
        (f"account:{EMAIL}", 1), (f"customer:{world.product.id}:grace@example.com", 1)])
    assert_token_response(await http.post(TOKEN, data={"grant_type": "refresh_token",
                                                       "refresh_token": tokens["refresh_token"]},
                                          auth=world.mobile.auth))


async def test_a_customer_without_a_password_cannot_sign_in_with_one(http, world):
    await passwordless_customer(world, simple=True)  # the team or the server made them
    for password in (CUSTOMER_PASSWORD, ""):
        assert_oauth_error(await sign_in(http, world.mobile, password=password), 400,
                           "invalid_grant", BAD_CREDENTIALS)
    assert await TokenFamily.all().count() == 0


# --- Two-legged auth ---------------------------------------------------------------------------


async def test_two_legged_auth_through_requests_oauthlib(live_server, http, world, oauth2_session,
                                                         frozen_clock: Clock):
    token_url = live_server.url + TOKEN
    server = world.server

    # The server, acting for itself, creates the customer without a password.
    created = await create_customer(http, server, world.backend, "Ada+Home@Example.com")
    customer = await Customer.get(product_id=world.backend.id)
    assert created == {"customer": {"id": gid("Customer", customer.id),
                                    "email": "ada+home@example.com"}, "userErrors": []}
    assert customer.password_hash is None

    # Then mints a token for them: client_credentials with scope=customer=EMAIL.
    session, sent = oauth2_session(BackendApplicationClient(client_id=server.client.client_id))
    frozen_clock.advance(minutes=1)
    token = await asyncio.to_thread(session.fetch_token, token_url, client_secret=server.secret,
                                    scope="customer=ada+home@example.com")
    assert sent[-1].headers["Authorization"] == basic(server)
    assert form(sent[-1].body) == {"grant_type": ["client_credentials"],
                                   "scope": ["customer=ada+home@example.com"]}
    # No refresh token for client_credentials (RFC 6749 §4.4.3).
    assert set(token) == {"access_token", "token_type", "expires_in", "expires_at"}
    assert (token["token_type"], token["expires_in"]) == ("Bearer", 3600)
    family = await TokenFamily.get(tokens__access_hash=sha256(token["access_token"]))
    assert (family.client_id, family.customer_id, family.user_id, family.grant_type,
            family.scope) == (server.client.id, customer.id, None, "client_credentials", "")
    row = await Token.get(family_id=family.id)
    assert (row.refresh_hash, row.access_expires_at) == (
        None, frozen_clock.current + timedelta(seconds=3600))
    assert (await Customer.get(id=customer.id)).last_active_at == frozen_clock.current

    response = await asyncio.to_thread(
        session.post, live_server.url + "/graphql",
        json={"query": WHO, "variables": {"id": gid("Customer", customer.id)}})
    assert response.json()["data"] == {"node": {"email": "ada+home@example.com"}}
    answer = await introspect(http, token["access_token"], server.auth)
    assert (answer["sub"], answer["username"], answer["scope"]) == (
        f"customer:{customer.id}", "ada+home@example.com", "")

    # The email is normalised like the customer's.
    again = assert_token_response(await mint(http, server, "customer=ADA+home@example.COM"),
                                  with_refresh=False)
    assert await who(http, again["access_token"], customer.id) == {
        "email": "ada+home@example.com"}
    # Without the scope, the server still acts for itself.
    own = assert_token_response(await http.post(TOKEN, data={"grant_type": "client_credentials"},
                                                auth=server.auth), with_refresh=False)
    assert await who(http, own["access_token"], customer.id) is None
    assert (await TokenFamily.get(tokens__access_hash=sha256(own["access_token"]))
            ).customer_id is None

    # Once the server deletes the customer, the tokens it minted for them stop working.
    deleted = await graphql(http, DELETE, {"input": {"customerId": gid("Customer", customer.id)}},
                            token=own["access_token"])
    assert deleted["data"]["deleteCustomer"]["userErrors"] == []
    for minted in (token["access_token"], again["access_token"]):
        response = await http.post("/graphql", json={"query": WHO, "variables": {"id": "x"}},
                                   headers={"Authorization": f"Bearer {minted}"})
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("max_lifetime", "expires_in", "granted"),
    [
        (None, None, 3600),
        (None, "600", 600),
        (None, "86400", 3600),  # capped by the default maximum: the access token lifetime
        (86400, None, 3600),
        (86400, "86400", 86400),
        (86400, "1", 1),
        (86400, "999999999999", 86400),
        (60, None, 60),
    ],
)
async def test_expires_in_is_capped_by_the_clients_maximum(http, world, frozen_clock: Clock,
                                                           max_lifetime, expires_in, granted):
    await OAuthClient.filter(id=world.server.client.id).update(max_token_lifetime=max_lifetime)
    customer = await passwordless_customer(world)
    extra = {"expires_in": expires_in} if expires_in is not None else {}

    response = await mint(http, world.server, f"customer={EMAIL}", **extra)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["expires_in"] == granted
    row = await Token.get(access_hash=sha256(body["access_token"]))
    assert row.access_expires_at == frozen_clock.current + timedelta(seconds=granted)
    frozen_clock.advance(seconds=granted - 1)
    assert await who(http, body["access_token"], customer.id) == {"email": EMAIL}
    frozen_clock.advance(seconds=1)
    expired = await http.post("/graphql", json={"query": "{ me { email } }"},
                              headers={"Authorization": f"Bearer {body['access_token']}"})
    assert expired.status_code == 401


async def test_a_server_client_may_be_created_with_a_longer_maximum(http, world):
    client, secret = await products.create_oauth_client(
        world.owner, world.backend.id, name="Long-lived", client_type="SERVER",
        redirect_uris=[], max_token_lifetime=7 * 24 * 3600)
    assert client.max_token_lifetime == 604800
    await passwordless_customer(world)
    response = await mint(http, App(client, secret), f"customer={EMAIL}",
                          expires_in=str(30 * 24 * 3600))
    assert response.json()["expires_in"] == 604800


@pytest.mark.parametrize(
    ("app", "scope", "extra", "status", "error", "description"),
    [
        ("server", "customer=nobody@example.com", {}, 400, "invalid_grant",
         "This product has no customer with this email."),
        ("other_server", f"customer={EMAIL}", {}, 400, "invalid_grant",
         "This product has no customer with this email."),
        ("server", "customer=", {}, 400, "invalid_scope",
         "scope=customer= names no customer: send scope=customer=EMAIL."),
        ("server", "customer=not-an-email", {}, 400, "invalid_scope",
         "'not-an-email' is not a valid email address: An email address must have an @-sign."),
        ("server", f"customer={EMAIL} customer=grace@example.com", {}, 400, "invalid_scope",
         "Ask for one customer's token at a time: scope=customer=EMAIL, alone."),
        ("mobile", f"customer={EMAIL}", {}, 400, "invalid_scope",
         ONLY_SERVER),
        ("web", f"customer={EMAIL}", {}, 400, "invalid_scope",
         ONLY_SERVER),
        ("backend_mobile", f"customer={EMAIL}", {}, 400, "invalid_scope",
         ONLY_SERVER),
        ("simple_server", f"customer={EMAIL}", {}, 400, "unauthorized_client",
         "The customers of this product sign in with SIMPLE, not with tokens its server "
         "mints."),
        ("service", f"customer={EMAIL}", {}, 400, "invalid_scope",
         ONLY_SERVER),
        ("server", f"customer={EMAIL}", {"expires_in": "0"}, 400, "invalid_request",
         "expires_in must be a whole number of seconds, at least 1."),
        ("server", f"customer={EMAIL}", {"expires_in": "-5"}, 400, "invalid_request",
         "expires_in must be a whole number of seconds, at least 1."),
        ("server", f"customer={EMAIL}", {"expires_in": "1h"}, 400, "invalid_request",
         "expires_in must be a whole number of seconds, at least 1."),
    ],
)
async def test_bad_customer_token_requests_are_refused(http, world, app, scope, extra, status,
                                                       error, description):
    await passwordless_customer(world)
    await passwordless_customer(world, "grace@example.com")
    await passwordless_customer(world, simple=True)
    if app == "service":
        client, secret = await service_client()
        credentials = App(client, secret)
    else:
        credentials = getattr(world, app)
    before = await storage_snapshot()

    response = await mint(http, credentials, scope, **extra)

    assert_oauth_error(response, status, error, description)
    assert await storage_snapshot() == before


# --- Deleting a customer -----------------------------------------------------------------------


async def test_deleting_a_customer_ends_their_tokens_codes_and_devices(http, world):
    await create_customer(http, world.mobile, world.product, EMAIL, CUSTOMER_PASSWORD)
    await create_customer(http, world.mobile, world.product, "grace@example.com", PASSWORD)
    customer = await Customer.get(email=EMAIL)
    other = await Customer.get(email="grace@example.com")
    signed_in = assert_token_response(await sign_in(http, world.mobile))
    again = assert_token_response(await sign_in(http, world.web))
    theirs = assert_token_response(await sign_in(http, world.mobile, other.email, PASSWORD))
    now = clock.now()
    for device_id, owner in (("a" * 24, customer), ("b" * 24, customer), ("c" * 24, other)):
        await Device.create(id=device_id, secret_hash="x" * 64, platform="Photon",
                            provisioned_at=now, product=world.product, customer=owner,
                            claimed_at=now)
    for n, (owner, used) in enumerate(((customer, None), (customer, now), (other, None))):
        await ClaimCode.create(code_hash=f"{n}" * 64, customer=owner, created_at=now,
                               expires_at=now + timedelta(hours=24), used_at=used)

    server_token = await client_token(http, world.simple_server.client,
                                      world.simple_server.secret)
    body = await graphql(http, DELETE, {"input": {"customerId": gid("Customer", customer.id)}},
                         token=server_token)

    assert body["data"]["deleteCustomer"] == {
        "customer": {"id": gid("Customer", customer.id), "email": EMAIL}, "userErrors": []}
    # Their tokens stop working at once: a bearer call gets 401, a refresh invalid_grant.
    for token in (signed_in["access_token"], again["access_token"]):
        response = await http.post("/graphql", json={"query": "{ me { email } }"},
                                   headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_TOKEN"}
    refresh = await http.post(TOKEN, data={"grant_type": "refresh_token",
                                           "refresh_token": signed_in["refresh_token"]},
                              auth=world.mobile.auth)
    assert_oauth_error(refresh, 400, "invalid_grant")
    assert_oauth_error(await sign_in(http, world.mobile), 400, "invalid_grant", BAD_CREDENTIALS)
    # Their devices are unclaimed, their codes gone; the other customer keeps everything.
    assert await Device.all().order_by("id").values_list("id", "customer_id", "claimed_at") == [
        ("a" * 24, None, None), ("b" * 24, None, None), ("c" * 24, other.id, now)]
    assert await ClaimCode.all().values_list("customer_id", flat=True) == [other.id]
    assert await TokenFamily.filter(customer_id=customer.id).count() == 0
    assert await Customer.all().values_list("email", flat=True) == ["grace@example.com"]
    assert await who(http, theirs["access_token"], other.id) == {"email": "grace@example.com"}
    # The email is free again.
    created = await create_customer(http, world.mobile, world.product, EMAIL, CUSTOMER_PASSWORD)
    assert created["userErrors"] == []


async def test_only_the_products_server_deletes_customers(http, world):
    customer = await passwordless_customer(world, simple=True)
    for app in (world.mobile, world.web, world.server, world.other_server):
        token = await client_token(http, app.client, app.secret)
        body = await graphql(http, DELETE, {"input": {"customerId": gid("Customer", customer.id)}},
                             token=token)
        assert body["data"]["deleteCustomer"] == {"customer": None, "userErrors": [
            {"field": "customerId", "message": "No such customer.", "code": "NOT_FOUND"}]}
    assert await Customer.exists(id=customer.id)
