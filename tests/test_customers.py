"""A product's customers: creating them (emails, passwords, uniqueness), the customers page
(filters, keyset pages, devices), deleting them, and SERVER clients' token lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from auth import tokens
from core import clock
from core.settings import get_settings
from fleet import products
from models.customers import ClaimCode, Customer
from models.devices import Device
from models.oauth import OAuthClient, TokenFamily
from models.products import Product
from tests.support.accounts import Team, access_token, client_token, organization_with_team
from tests.support.graphql import audit_trail, gid, graphql, run_mutation
from tests.support.servers import Clock

# Signing customers in hundreds of times: hash cheaply.
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")
PAYLOAD = "customer { id email createdAt lastActiveAt devices { deviceId } }"
PAGE = """query($first: Int!, $after: String, $filter: CustomerFilter) {
  product(idOrSlug: "thermostat") { customers(first: $first, after: $after, filter: $filter) {
    edges { node { email createdAt lastActiveAt devices { deviceId online } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""


@dataclass
class Acme:
    team: Team
    product: Product  # "thermostat", SIMPLE
    other: Product  # "sprinkler", of the same organization, TWO_LEGGED
    developer: str  # an access token


@pytest.fixture
async def acme(http) -> Acme:
    team = await organization_with_team(roles=("OWNER", "DEVELOPER"))
    owner = team.principals["OWNER"]

    async def product(name: str, customer_auth: str) -> Product:
        return await products.create_product(
            owner, team.organization.id, name=name, slug=name.lower(), description="",
            platform="Photon", customer_auth=customer_auth)

    return Acme(team, await product("Thermostat", "SIMPLE"),
                await product("Sprinkler", "TWO_LEGGED"),
                await access_token(team.email("DEVELOPER")))


def error(code: str, field: str | None, message: str) -> list[dict[str, Any]]:
    return [{"field": field, "message": message, "code": code}]


async def create(http, token: str, product: Product | str, email: str,
                 password: str | None = None) -> dict[str, Any]:
    product_id = product if isinstance(product, str) else gid("Product", product.id)
    input: dict[str, Any] = {"productId": product_id, "email": email}
    if password is not None:
        input["password"] = password
    return await run_mutation(http, "createCustomer", "CreateCustomerInput", input, PAYLOAD,
                              token=token)


async def delete(http, token: str, customer_id: str) -> dict[str, Any]:
    return await run_mutation(http, "deleteCustomer", "DeleteCustomerInput",
                              {"customerId": customer_id}, "customer { id email }", token=token)


# --- Creating ----------------------------------------------------------------------------------


async def test_a_developer_creates_customers_with_or_without_a_password(
    http, acme: Acme, frozen_clock: Clock
):
    with_password = await create(http, acme.developer, acme.product, " Ada@Example.COM ",
                                 "correct horse")
    without = await create(http, acme.developer, acme.product, "bob@example.com")

    ada = await Customer.get(email="ada@example.com")
    bob = await Customer.get(email="bob@example.com")
    assert with_password == {"customer": {
        "id": gid("Customer", ada.id), "email": "ada@example.com",
        "createdAt": frozen_clock.current.isoformat(), "lastActiveAt": None, "devices": []},
        "userErrors": []}
    assert without["customer"]["email"] == "bob@example.com"
    assert (ada.product_id, ada.user_id, ada.created_at) == (
        acme.product.id, None, frozen_clock.current)
    assert ada.password_hash.startswith("$argon2id$")
    assert "correct horse" not in ada.password_hash
    assert bob.password_hash is None

    owner = await access_token(acme.team.email("OWNER"))
    trail = await audit_trail(http, "acme", token=owner, first=2)
    assert [(e["action"], e["actorEmail"], e["targetType"], e["targetId"], e["targetLabel"],
             e["details"]) for e in trail] == [
        ("customer.create", "developer@example.com", "Customer", str(bob.id), "bob@example.com",
         {"productId": acme.product.id, "password": False}),
        ("customer.create", "developer@example.com", "Customer", str(ada.id), "ada@example.com",
         {"productId": acme.product.id, "password": True}),
    ]


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [
        ("", None, error("REQUIRED", "email", "Enter an email address.")),
        ("ada", None, error("INVALID_EMAIL", "email", "'ada' is not a valid email address: An "
                                                      "email address must have an @-sign.")),
        ("ada@example.com", "short", error("TOO_SHORT", "password",
                                           "Password must be at least 8 characters long.")),
        ("ada@example.com", "", error("TOO_SHORT", "password",
                                      "Password must be at least 8 characters long.")),
        ("ada@example.com", "x" * 257, error("TOO_LONG", "password",
                                             "Password must be at most 256 characters long.")),
    ],
)
async def test_bad_emails_and_passwords_are_refused(http, acme: Acme, email, password, expected):
    created = await create(http, acme.developer, acme.product, email, password)
    assert created == {"customer": None, "userErrors": expected}
    assert await Customer.all().count() == 0


async def test_only_simple_auth_customers_have_passwords(http, acme: Acme):
    refused = await create(http, acme.developer, acme.other, "ada@example.com", "a password")
    assert refused == {"customer": None, "userErrors": error(
        "NOT_ALLOWED", "password",
        "This product's customers sign in with TWO_LEGGED: they have no password.")}
    created = await create(http, acme.developer, acme.other, "ada@example.com")
    assert created["userErrors"] == []
    assert await Customer.all().values_list("product_id", "password_hash") == [
        (acme.other.id, None)]


async def test_an_email_is_one_customer_per_product(http, acme: Acme):
    assert (await create(http, acme.developer, acme.product, "ada@example.com"))[
        "userErrors"] == []
    again = await create(http, acme.developer, acme.product, "ADA@example.com", "a password")
    assert again == {"customer": None, "userErrors": error(
        "CUSTOMER_EXISTS", "email", "This product already has a customer with this email.")}
    elsewhere = await create(http, acme.developer, acme.other, "ada@example.com")
    assert elsewhere["userErrors"] == []
    assert sorted(await Customer.all().values_list("product_id", "email")) == sorted(
        [(acme.product.id, "ada@example.com"), (acme.other.id, "ada@example.com")])


async def test_unknown_products_and_foreign_ids_are_refused(http, acme: Acme):
    missing = await create(http, acme.developer, gid("Product", 999_999), "ada@example.com")
    assert missing == {"customer": None, "userErrors": error(
        "NOT_FOUND", "productId", "No such product.")}
    wrong_type = await create(http, acme.developer, gid("Organization", acme.product.id),
                              "ada@example.com")
    assert wrong_type == {"customer": None, "userErrors": error(
        "INVALID_ID", "productId", "This is not the ID of a Product.")}
    assert await delete(http, acme.developer, gid("Customer", 999_999)) == {
        "customer": None, "userErrors": error("NOT_FOUND", "customerId", "No such customer.")}
    assert await delete(http, acme.developer, gid("Product", acme.product.id)) == {
        "customer": None, "userErrors": error("INVALID_ID", "customerId",
                                              "This is not the ID of a Customer.")}


# --- The customers page ------------------------------------------------------------------------


@dataclass
class Page:
    emails: list[str]
    has_next: bool
    end: str | None
    nodes: list[dict[str, Any]]


async def page(http, token: str, first: int = 20, after: str | None = None,
               filter: dict[str, Any] | None = None) -> Page:
    body = await graphql(http, PAGE, {"first": first, "after": after, "filter": filter},
                         token=token)
    assert "errors" not in body, body
    found = body["data"]["product"]["customers"]
    nodes = [edge["node"] for edge in found["edges"]]
    info = found["pageInfo"]
    assert info["hasPreviousPage"] == (after is not None)
    return Page([n["email"] for n in nodes], info["hasNextPage"], info["endCursor"], nodes)


@pytest.fixture
async def customers_page(acme: Acme, frozen_clock: Clock) -> dict[str, Customer]:
    """Six customers of thermostat, one a minute (ada first), and one of sprinkler.

    ada: devices d1 (online) and d2 (offline), last active 10 minutes after the start.
    bob: device d3, never active. cy: no device, active at the start + 20 minutes.
    a_b and axb: nothing (for searching with LIKE's wildcards). dan: no device, active at the
    start. sprinkler's eve claimed d4, a sprinkler device.
    """
    start = frozen_clock.current
    made: dict[str, Customer] = {}
    for name, active in (("ada", 10), ("bob", None), ("cy", 20), ("a_b", None),
                         ("axb", None), ("dan", 0)):
        made[name] = await Customer.create(
            product=acme.product, email=f"{name}@example.com", created_at=frozen_clock.current,
            last_active_at=None if active is None else start + timedelta(minutes=active))
        frozen_clock.advance(minutes=1)
    made["eve"] = await Customer.create(product=acme.other, email="eve@example.com",
                                        created_at=frozen_clock.current)
    for device_id, product, owner, online in (("d1", acme.product, "ada", True),
                                              ("d2", acme.product, "ada", False),
                                              ("d3", acme.product, "bob", False),
                                              ("d4", acme.other, "eve", True),
                                              ("d5", acme.product, None, True)):
        await Device.create(id=device_id * 12, secret_hash="x" * 64, platform="Photon",
                            provisioned_at=start, product=product, online=online,
                            customer=made.get(owner or ""), claimed_at=start if owner else None)
    return made


async def test_the_customers_page_lists_newest_first_with_devices(http, acme: Acme,
                                                                  customers_page):
    listed = await page(http, acme.developer)
    assert listed.emails == [f"{name}@example.com" for name in
                             ("dan", "axb", "a_b", "cy", "bob", "ada")]
    assert listed.has_next is False
    ada, bob, dan = customers_page["ada"], customers_page["bob"], customers_page["dan"]
    assert listed.nodes[-1] == {
        "email": "ada@example.com", "createdAt": ada.created_at.isoformat(),
        "lastActiveAt": ada.last_active_at.isoformat(),
        "devices": [{"deviceId": "d1" * 12, "online": True},
                    {"deviceId": "d2" * 12, "online": False}]}
    assert listed.nodes[-2] == {"email": "bob@example.com", "createdAt":
                                bob.created_at.isoformat(), "lastActiveAt": None,
                                "devices": [{"deviceId": "d3" * 12, "online": False}]}
    assert listed.nodes[0]["lastActiveAt"] == dan.last_active_at.isoformat()
    assert [n["devices"] for n in listed.nodes[:4]] == [[], [], [], []]


async def test_the_customers_page_in_keyset_pages(http, acme: Acme, customers_page):
    first = await page(http, acme.developer, first=4)
    assert (first.emails, first.has_next) == (
        ["dan@example.com", "axb@example.com", "a_b@example.com", "cy@example.com"], True)
    # A customer created meanwhile is newer: it does not shift the next page.
    await Customer.create(product=acme.product, email="new@example.com",
                          created_at=clock.now() + timedelta(hours=1))
    second = await page(http, acme.developer, first=4, after=first.end)
    assert (second.emails, second.has_next) == (["bob@example.com", "ada@example.com"], False)
    empty = await page(http, acme.developer, first=0)
    assert (empty.emails, empty.has_next, empty.end) == ([], True, None)

    for cursor in ("not-a-cursor", "WzEsIDJd", first.end[:-4]):
        body = await graphql(http, PAGE, {"first": 2, "after": cursor}, token=acme.developer)
        assert body["errors"][0]["extensions"] == {"code": "INVALID_CURSOR"}, body
    body = await graphql(http, '{ product(idOrSlug: "thermostat") { customers(first: 101) { '
                         "edges { cursor } } } }", token=acme.developer)
    assert body["errors"][0]["extensions"] == {"code": "INVALID_ARGUMENT"}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"search": "D"}, ["dan", "ada"]),
        ({"search": " AD"}, ["ada"]),
        ({"search": "a_b"}, ["a_b"]),  # "_" is a letter here, not LIKE's wildcard
        ({"search": "%"}, []),
        ({"search": "@EXAMPLE.com"}, ["dan", "axb", "a_b", "cy", "bob", "ada"]),
        ({"search": "eve"}, []),  # another product's customer
        ({"hasDevices": True}, ["bob", "ada"]),
        ({"hasDevices": False}, ["dan", "axb", "a_b", "cy"]),
        ({"activeSince": "MINUTES+10"}, ["cy", "ada"]),
        ({"activeSince": "MINUTES+11"}, ["cy"]),
        ({"activeSince": "MINUTES+0"}, ["dan", "cy", "ada"]),
        ({"activeSince": "MINUTES+21"}, []),
        ({"activeSince": "MINUTES+0", "hasDevices": False}, ["dan", "cy"]),
        ({"activeSince": "MINUTES+0", "hasDevices": True, "search": "ad"}, ["ada"]),
        ({"search": None, "activeSince": None, "hasDevices": None},
         ["dan", "axb", "a_b", "cy", "bob", "ada"]),
    ],
)
async def test_the_customers_page_filters(http, acme: Acme, customers_page, filter, expected):
    start = customers_page["ada"].created_at
    if isinstance(filter.get("activeSince"), str):
        minutes = int(filter["activeSince"].removeprefix("MINUTES+"))
        filter = {**filter, "activeSince": (start + timedelta(minutes=minutes)).isoformat()}
    listed = await page(http, acme.developer, filter=filter)
    assert listed.emails == [f"{name}@example.com" for name in expected]


async def test_filters_and_pages_combine(http, acme: Acme, customers_page):
    criteria = {"hasDevices": False}
    first = await page(http, acme.developer, first=3, filter=criteria)
    second = await page(http, acme.developer, first=3, after=first.end, filter=criteria)
    assert (first.emails, first.has_next) == (
        ["dan@example.com", "axb@example.com", "a_b@example.com"], True)
    assert (second.emails, second.has_next) == (["cy@example.com"], False)


async def test_a_search_too_long_is_refused(http, acme: Acme, customers_page):
    body = await graphql(http, PAGE, {"first": 5, "filter": {"search": "a" * 101}},
                         token=acme.developer)
    assert body["errors"][0]["message"] == "Search for at most 100 characters."
    assert body["errors"][0]["extensions"] == {"code": "TOO_LONG"}


async def test_a_customers_devices_are_their_products_claimed_devices(
    http, acme: Acme, customers_page
):
    ada = customers_page["ada"]
    # A device of ada that went to another product is not listed with her.
    await Device.filter(id="d2" * 12).update(product_id=acme.other.id)
    body = await graphql(http, "query($id: ID!) { node(id: $id) { ... on Customer { devices "
                         "{ deviceId } } } }", {"id": gid("Customer", ada.id)},
                         token=acme.developer)
    assert body["data"]["node"] == {"devices": [{"deviceId": "d1" * 12}]}


# --- Deleting ----------------------------------------------------------------------------------


async def test_each_app_creates_at_most_the_cap_of_customers_an_hour(
    http, acme: Acme, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(get_settings(), "customers_per_app_per_hour", 2)
    owner = acme.team.principals["OWNER"]
    apps = [
        await products.create_oauth_client(owner, acme.product.id, name=kind, client_type=kind,
                                           redirect_uris=["https://app.example/cb"])
        for kind in ("MOBILE", "WEB")
    ]
    mobile, web = [await client_token(http, client, secret) for client, secret in apps]
    password = "correct horse battery"
    for n in (1, 2):
        assert (await create(http, mobile, acme.product, f"m{n}@example.com", password)
                )["userErrors"] == []
    refused = error("LIMIT_REACHED", "productId", "This app created 2 customers within the "
                                                  "hour, the most it may; try again later.")
    assert (await create(http, mobile, acme.product, "m3@example.com", password)
            )["userErrors"] == refused
    # A refused email (taken) spends nothing; the other app and the team have their own.
    assert (await create(http, web, acme.product, "m1@example.com", password)
            )["userErrors"][0]["code"] == "CUSTOMER_EXISTS"
    for n in (1, 2):
        assert (await create(http, web, acme.product, f"w{n}@example.com", password)
                )["userErrors"] == []
    assert (await create(http, acme.developer, acme.product, "t@example.com"))["userErrors"] == []
    frozen_clock.advance(minutes=59)
    assert (await create(http, mobile, acme.product, "m3@example.com", password)
            )["userErrors"] == refused
    frozen_clock.advance(minutes=1)  # the hour is over
    mobile = await client_token(http, *apps[0])
    assert (await create(http, mobile, acme.product, "m3@example.com", password)
            )["userErrors"] == []
    assert await Customer.filter(email="m3@example.com").count() == 1


async def test_a_developer_deletes_a_customer(http, acme: Acme, frozen_clock: Clock):
    ada = await Customer.create(product=acme.product, email="ada@example.com",
                                created_at=clock.now())
    bob = await Customer.create(product=acme.product, email="bob@example.com",
                                created_at=clock.now())
    mobile, _secret = await products.create_oauth_client(
        acme.team.principals["OWNER"], acme.product.id, name="App", client_type="MOBILE",
        redirect_uris=[])
    issued = {}
    for customer in (ada, bob):
        issued[customer.email] = await tokens.issue(
            client=mobile, user=None, customer=customer, scope="", grant_type="password",
            access_lifetime=get_settings().access_token_lifetime,
            refresh_lifetime=get_settings().refresh_token_lifetime)
    now = clock.now()
    await Device.create(id="d1" * 12, secret_hash="x" * 64, platform="Photon",
                        provisioned_at=now, product=acme.product, customer=ada, claimed_at=now)
    await ClaimCode.create(code_hash="c" * 64, customer=ada, created_at=now,
                           expires_at=now + timedelta(hours=24))

    deleted = await delete(http, acme.developer, gid("Customer", ada.id))

    assert deleted == {"customer": {"id": gid("Customer", ada.id), "email": "ada@example.com"},
                       "userErrors": []}
    assert await Customer.all().values_list("email", flat=True) == ["bob@example.com"]
    assert await Device.all().values_list("customer_id", "claimed_at") == [(None, None)]
    assert await ClaimCode.all().count() == 0
    assert await TokenFamily.filter(customer_id__not_isnull=True).values_list(
        "customer_id", flat=True) == [bob.id]
    for email, status in (("ada@example.com", 401), ("bob@example.com", 200)):
        response = await http.post("/graphql", json={"query": "{ me { email } }"}, headers={
            "Authorization": f"Bearer {issued[email].access_token}"})
        assert response.status_code == status
    owner = await access_token(acme.team.email("OWNER"))
    [entry] = await audit_trail(http, "acme", token=owner, first=1)
    assert (entry["action"], entry["actorEmail"], entry["targetType"], entry["targetId"],
            entry["targetLabel"], entry["details"]) == (
        "customer.delete", "developer@example.com", "Customer", str(ada.id), "ada@example.com",
        {"productId": acme.product.id})
    # Deleting again: there is no such customer any more.
    assert (await delete(http, acme.developer, gid("Customer", ada.id)))["userErrors"] == error(
        "NOT_FOUND", "customerId", "No such customer.")


# --- SERVER clients' token lifetime ------------------------------------------------------------


CLIENT = "oauthClient { clientId type maxTokenLifetime } clientSecret"


@pytest.mark.parametrize(
    ("kind", "lifetime", "expected"),
    [
        ("SERVER", 86400, None),
        ("SERVER", 60, None),
        ("SERVER", 7_776_000, None),
        ("SERVER", None, None),
        ("SERVER", 59, error("OUT_OF_RANGE", "maxTokenLifetime",
                             "The maximum token lifetime is 60 to 7776000 seconds (90 days).")),
        ("SERVER", 7_776_001, error("OUT_OF_RANGE", "maxTokenLifetime", "The maximum token "
                                    "lifetime is 60 to 7776000 seconds (90 days).")),
        ("MOBILE", 86400, error("NOT_ALLOWED", "maxTokenLifetime", "Only SERVER clients mint "
                                "customer tokens, so only they take a maximum token lifetime.")),
        ("WEB", 86400, error("NOT_ALLOWED", "maxTokenLifetime", "Only SERVER clients mint "
                             "customer tokens, so only they take a maximum token lifetime.")),
    ],
)
async def test_a_server_client_takes_a_maximum_token_lifetime(http, acme: Acme, kind, lifetime,
                                                              expected):
    input: dict[str, Any] = {"productId": gid("Product", acme.product.id), "name": "Backend",
                             "type": kind, "maxTokenLifetime": lifetime}
    if kind == "WEB":
        input["redirectUris"] = ["https://app.example.com/cb"]
    created = await run_mutation(http, "createOAuthClient", "CreateOAuthClientInput", input,
                                 CLIENT, token=acme.developer)
    if expected is not None:
        assert created == {"oauthClient": None, "clientSecret": None, "userErrors": expected}
        assert await OAuthClient.filter(product_id=acme.product.id).count() == 0
        return
    assert created["userErrors"] == []
    assert created["oauthClient"]["maxTokenLifetime"] == lifetime
    row = await OAuthClient.get(client_id=created["oauthClient"]["clientId"])
    assert (row.kind, row.max_token_lifetime) == ("SERVER", lifetime)
    listed = await graphql(http, '{ product(idOrSlug: "thermostat") { oauthClients { '
                           "maxTokenLifetime } } }", token=acme.developer)
    assert listed["data"]["product"]["oauthClients"] == [{"maxTokenLifetime": lifetime}]
