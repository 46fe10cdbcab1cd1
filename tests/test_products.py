"""Products and their OAuth clients: numeric IDs, slugs, customer auth, redirect URI rules,
secrets shown once and stored hashed, rotation, deletion, and what a SERVER client's token
reaches."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from core.text import clean_slug
from fleet import organizations
from models.oauth import OAuthClient, TokenFamily
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import (
    Team,
    access_token,
    acting_as,
    make_user,
    organization_with_team,
    service_client,
)
from tests.support.graphql import audit_trail, gid, graphql, run_mutation

PRODUCT_FIELDS = "id productId name slug description platform customerAuth organization { slug }"
PRODUCT = f"product {{ {PRODUCT_FIELDS} }}"
CLIENT = "oauthClient { clientId name type redirectUris } clientSecret"
TOKEN = "/oauth/token"


@pytest.fixture
async def acme() -> Team:
    return await organization_with_team(roles=("OWNER", "ADMINISTRATOR", "DEVELOPER"))


@pytest.fixture
async def developer(http, acme) -> str:
    return await access_token(acme.email("DEVELOPER"))


async def create_product(http, token, organization_id: int, **fields) -> dict[str, Any]:
    input = {"organizationId": gid("Organization", organization_id), "platform": "Photon",
             "customerAuth": "SIMPLE"} | fields
    return await run_mutation(http, "createProduct", "CreateProductInput", input, PRODUCT,
                              token=token)


async def create_client(http, token, product_id: int, **fields) -> dict[str, Any]:
    input = {"productId": gid("Product", product_id), "name": "Web app", "type": "WEB"} | fields
    return await run_mutation(http, "createOAuthClient", "CreateOAuthClientInput", input, CLIENT,
                              token=token)


async def client_secret_grant(http, client_id: str, secret: str):
    return await http.post(TOKEN, data={"grant_type": "client_credentials"},
                           auth=(client_id, secret))


def error(code: str, field: str | None, message: str) -> list[dict[str, Any]]:
    return [{"field": field, "message": message, "code": code}]


async def thermostat(http, token, acme: Team) -> int:
    created = await create_product(http, token, acme.organization.id, name="Thermostat",
                                   slug="thermostat")
    return created["product"]["productId"]


# --- Products ----------------------------------------------------------------------------------


async def test_products_get_increasing_numeric_ids_and_keep_their_customer_auth(
    http, acme, developer
):
    created = []
    for number, method in enumerate(("SIMPLE", "TWO_LEGGED", "LOGIN_WITH_PLATFORM"), start=1):
        payload = await create_product(
            http, developer, acme.organization.id, name=f"Thermostat Mk {number}",
            description=f"Generation {number}.", platform="Photon 2", customerAuth=method)
        assert payload["userErrors"] == []
        product = payload["product"]
        assert product == {
            "id": gid("Product", product["productId"]), "productId": product["productId"],
            "name": f"Thermostat Mk {number}", "slug": f"thermostat-mk-{number}",
            "description": f"Generation {number}.", "platform": "Photon 2",
            "customerAuth": method, "organization": {"slug": "acme"},
        }
        created.append(product)
    ids = [p["productId"] for p in created]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert ids == sorted(set(ids))  # unique and increasing
    stored = await Product.filter(organization_id=acme.organization.id).order_by("id")
    assert [(p.id, p.customer_auth) for p in stored] == [
        (p["productId"], p["customerAuth"]) for p in created]

    query = f"query($p: String!) {{ product(idOrSlug: $p) {{ {PRODUCT_FIELDS} }} }}"
    for product in created:
        for key in (str(product["productId"]), product["slug"]):
            body = await graphql(http, query, {"p": key}, token=developer)
            assert body["data"]["product"] == product, key
    for unknown in ("987654321", "no-such-product"):
        body = await graphql(http, query, {"p": unknown}, token=developer)
        assert body["data"]["product"] is None
    listed = await graphql(
        http, '{ organization(slug: "acme") { products { edges { node { productId } } } } }',
        token=developer)
    assert [e["node"]["productId"] for e in
            listed["data"]["organization"]["products"]["edges"]] == ids
    newest = (await audit_trail(http, "acme", token=await access_token("owner@example.com"),
                                first=1))[0]
    assert (newest["action"], newest["actorEmail"], newest["targetType"], newest["targetId"],
            newest["targetLabel"], newest["details"], newest["ipAddress"]) == (
        "product.create", "developer@example.com", "Product", str(ids[-1]), "Thermostat Mk 3",
        {"slug": "thermostat-mk-3", "productId": ids[-1]}, "127.0.0.1")


@pytest.mark.parametrize("customer_auth", [None, "PASSWORD"])
async def test_customer_auth_is_required_and_must_be_known(http, acme, developer,
                                                           customer_auth):
    input = {"organizationId": gid("Organization", acme.organization.id), "name": "Thermostat",
             "platform": "Photon"}
    if customer_auth is not None:
        input["customerAuth"] = customer_auth
    body = await graphql(
        http, "mutation($input: CreateProductInput!) { createProduct(input: $input) "
        "{ product { id } } }", {"input": input}, token=developer)
    assert body.get("data") is None
    [problem] = body["errors"]
    assert "customerAuth" in problem["message"]
    assert await Product.all().count() == 0


async def test_product_slugs_are_unique_across_the_platform(http, acme, developer):
    await thermostat(http, developer, acme)
    globex = await organization_with_team("Globex", "globex", domain="example.org",
                                          roles=("OWNER",))
    rival = await access_token(globex.email("OWNER"))
    taken = await create_product(http, rival, globex.organization.id, name="Thermostat",
                                 slug="thermostat")
    assert taken == {"product": None, "userErrors": error(
        "SLUG_TAKEN", "slug", "The slug 'thermostat' is taken; choose another.")}
    assert await Product.filter(organization_id=globex.organization.id).count() == 0
    derived = await create_product(http, rival, globex.organization.id, name="Thermostat")
    assert derived["product"]["slug"] == "thermostat-2"
    # Each organization reaches its own product by slug, and nobody else's.
    mine = await graphql(http, '{ product(idOrSlug: "thermostat") { organization { slug } } }',
                         token=rival)
    assert mine["data"]["product"] is None
    theirs = await graphql(http, '{ product(idOrSlug: "thermostat-2") { slug } }',
                           token=developer)
    assert theirs["data"]["product"] is None


SLUG_RULE = ("A slug is 3 to 63 lowercase letters, digits and single hyphens between them "
             "(like 'acme-sensors'); '{}' is not.")
PLATFORM_RULE = ("A platform is 1 to 40 letters, digits, spaces, dots, dashes or underscores "
                 "(like 'Photon' or 'esp32-s3').")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": ""}, ("REQUIRED", "name", "Enter a name.")),
        ({"name": "x" * 300},
         ("TOO_LONG", "name", "The name is 300 characters long; the limit is 100.")),
        ({"slug": "thermo stat"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("thermo stat"))),
        ({"slug": "Thermostat"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("Thermostat"))),
        ({"slug": "th"}, ("INVALID_SLUG", "slug", SLUG_RULE.format("th"))),
        ({"platform": ""}, ("INVALID_PLATFORM", "platform", PLATFORM_RULE)),
        ({"platform": "x" * 41}, ("INVALID_PLATFORM", "platform", PLATFORM_RULE)),
        ({"description": "d" * 2001},
         ("TOO_LONG", "description", "The description is limited to 2000 characters.")),
    ],
    ids=["empty-name", "300-char-name", "slug-with-space", "uppercase-slug", "short-slug",
         "empty-platform", "long-platform", "long-description"],
)
async def test_bad_product_input_is_a_user_error_and_creates_nothing(
    http, acme, developer, fields, expected
):
    before = await AuditEntry.all().count()
    refused = await create_product(http, developer, acme.organization.id,
                                   **({"name": "Thermostat"} | fields))
    assert refused == {"product": None, "userErrors": error(*expected)}
    assert await Product.all().count() == 0
    assert await AuditEntry.all().count() == before


async def test_update_product_changes_settings_but_not_id_slug_or_customer_auth(
    http, acme, developer
):
    administrator = await access_token(acme.email("ADMINISTRATOR"))
    created = await create_product(http, developer, acme.organization.id, name="Thermostat",
                                   slug="thermostat", customerAuth="TWO_LEGGED")
    product_id = created["product"]["productId"]

    async def update(**fields) -> dict[str, Any]:
        return await run_mutation(http, "updateProduct", "UpdateProductInput",
                                  {"productId": gid("Product", product_id)} | fields, PRODUCT,
                                  token=administrator)

    updated = await update(name="Thermostat Pro", description="Now with humidity.",
                           platform="Argon")
    assert updated == {"product": created["product"] | {
        "name": "Thermostat Pro", "description": "Now with humidity.", "platform": "Argon"},
        "userErrors": []}
    assert (await update(description="Quieter."))["product"]["name"] == "Thermostat Pro"
    before = await AuditEntry.all().count()
    assert await update(name="  ") == {"product": None,
                                       "userErrors": error("REQUIRED", "name", "Enter a name.")}
    assert await update(platform="bad/platform") == {
        "product": None, "userErrors": error("INVALID_PLATFORM", "platform", PLATFORM_RULE)}
    assert await AuditEntry.all().count() == before
    stored = await Product.get(id=product_id)
    assert (stored.name, stored.slug, stored.description, stored.platform,
            stored.customer_auth) == ("Thermostat Pro", "thermostat", "Quieter.", "Argon",
                                      "TWO_LEGGED")
    owner = await access_token(acme.email("OWNER"))
    [newest, previous] = await audit_trail(http, "acme", token=owner, first=2)
    assert (newest["action"], newest["actorEmail"], newest["targetLabel"],
            newest["details"], newest["ipAddress"]) == (
        "product.update", "administrator@example.com", "Thermostat Pro",
        {"description": ["Now with humidity.", "Quieter."]}, "127.0.0.1")
    assert previous["details"] == {"name": ["Thermostat", "Thermostat Pro"],
                                   "description": ["", "Now with humidity."],
                                   "platform": ["Photon", "Argon"]}


# --- OAuth clients -----------------------------------------------------------------------------


async def test_a_client_secret_is_shown_once_and_stored_only_as_a_hash(http, acme, developer):
    product_id = await thermostat(http, developer, acme)
    created = await create_client(http, developer, product_id,
                                  redirectUris=["https://app.example.com/callback"])
    assert created["userErrors"] == []
    client, secret = created["oauthClient"], created["clientSecret"]
    assert re.fullmatch(r"thermostat-[0-9a-f]{12}", client["clientId"])
    assert client == {"clientId": client["clientId"], "name": "Web app", "type": "WEB",
                      "redirectUris": ["https://app.example.com/callback"]}
    assert re.fullmatch(r"dc_cs_[A-Za-z0-9_-]{43}", secret)

    row = await OAuthClient.get(client_id=client["clientId"])
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert (row.product_id, row.kind, row.redirect_uris, row.first_party) == (
        product_id, "WEB", ["https://app.example.com/callback"], False)
    stored = await OAuthClient.filter(id=row.id).values()
    assert secret not in repr(stored)

    listed = await graphql(
        http, "query($p: String!) { product(idOrSlug: $p) { oauthClients { clientId name type "
        "redirectUris createdAt } } }", {"p": "thermostat"}, token=developer)
    [entry] = listed["data"]["product"]["oauthClients"]
    assert {k: v for k, v in entry.items() if k != "createdAt"} == client
    fields = await graphql(http, '{ __type(name: "OAuthClient") { fields { name } } }')
    names = [f["name"] for f in fields["data"]["__type"]["fields"]]
    assert names == ["clientId", "name", "type", "redirectUris", "maxTokenLifetime", "public",
                     "createdAt"]
    assert secret not in repr(listed)

    owner = await access_token(acme.email("OWNER"))
    newest = (await audit_trail(http, "acme", token=owner, first=1))[0]
    assert (newest["action"], newest["actorEmail"], newest["targetType"], newest["targetId"],
            newest["targetLabel"], newest["details"], newest["ipAddress"]) == (
        "oauth_client.create", "developer@example.com", "OAuthClient", str(row.id), "Web app",
        {"clientId": client["clientId"], "type": "WEB", "public": False,
         "productId": product_id}, "127.0.0.1")
    assert secret not in repr(newest)


PUBLIC_CLIENT = "oauthClient { clientId type public } clientSecret"


@pytest.mark.parametrize(("client_type", "uris", "grants"), [
    ("WEB", ["https://app.example.com/callback"],
     ["authorization_code", "password", "refresh_token"]),
    ("MOBILE", ["com.example.app:/callback"],
     ["authorization_code", "password", "refresh_token"]),
])
async def test_a_public_client_has_no_secret_and_never_acts_for_itself(
    http, acme, developer, client_type, uris, grants
):
    product_id = await thermostat(http, developer, acme)
    created = await run_mutation(
        http, "createOAuthClient", "CreateOAuthClientInput",
        {"productId": gid("Product", product_id), "name": "App", "type": client_type,
         "redirectUris": uris, "public": True}, PUBLIC_CLIENT, token=developer)
    client_id = created["oauthClient"]["clientId"]
    assert created == {"oauthClient": {"clientId": client_id, "type": client_type,
                                       "public": True},
                       "clientSecret": None, "userErrors": []}
    row = await OAuthClient.get(client_id=client_id)
    assert (row.secret_hash, row.grant_types, row.redirect_uris) == (None, grants, uris)
    listed = await graphql(http, '{ product(idOrSlug: "thermostat") { oauthClients { public '
                           '} } }', token=developer)
    assert listed["data"]["product"]["oauthClients"] == [{"public": True}]

    owner = await access_token(acme.email("OWNER"))
    newest = (await audit_trail(http, "acme", token=owner, first=1))[0]
    assert (newest["action"], newest["details"]) == ("oauth_client.create", {
        "clientId": client_id, "type": client_type, "public": True, "productId": product_id})

    # No secret to rotate: refused, nothing changes and nothing is recorded.
    before = await AuditEntry.all().count()
    rotated = await run_mutation(http, "rotateOAuthClientSecret", "OAuthClientInput",
                                 {"clientId": client_id}, PUBLIC_CLIENT, token=developer)
    assert rotated == {"oauthClient": None, "clientSecret": None, "userErrors": error(
        "PUBLIC_CLIENT_NO_SECRET", "clientId",
        "This client is public: it has no secret to rotate.")}
    assert (await OAuthClient.get(id=row.id)).secret_hash is None
    assert await AuditEntry.all().count() == before


async def test_a_server_client_cannot_be_public(http, acme, developer):
    product_id = await thermostat(http, developer, acme)
    before = await AuditEntry.all().count()
    created = await run_mutation(
        http, "createOAuthClient", "CreateOAuthClientInput",
        {"productId": gid("Product", product_id), "name": "Backend", "type": "SERVER",
         "public": True}, PUBLIC_CLIENT, token=developer)
    assert created == {"oauthClient": None, "clientSecret": None, "userErrors": error(
        "SERVER_CLIENT_CONFIDENTIAL", "public",
        "A SERVER client runs on your servers and authenticates with its secret; only WEB and "
        "MOBILE clients can be public.")}
    assert not await OAuthClient.exists(product_id=product_id)
    assert await AuditEntry.all().count() == before


PUBLIC_HTTP = ("uses plain http to a public host; use https (http is allowed only for "
               "127.0.0.1, [::1] or localhost)")


def _bad_uri(uri: str, problem: str) -> tuple[str, str, str]:
    return ("INVALID_REDIRECT_URI", "redirectUris", f"The redirect URI '{uri}' {problem}.")


@pytest.mark.parametrize(
    ("client_type", "uris", "expected"),
    [
        ("WEB", ["https://app.example.com/cb"], None),
        ("WEB", ["http://127.0.0.1:3000/cb"], None),
        ("WEB", ["http://localhost/cb"], None),
        ("WEB", ["http://[::1]:8080/cb", "https://app.example.com/cb?x=1"], None),
        ("MOBILE", [], None),
        ("MOBILE", ["com.example.app:/oauth2redirect"], None),
        ("SERVER", [], None),
        ("WEB", [], ("REQUIRED", "redirectUris", "A WEB client needs at least one redirect URI.")),
        ("WEB", ["http://example.com/cb"], _bad_uri("http://example.com/cb", PUBLIC_HTTP)),
        ("WEB", ["http://localhost.example.com/cb"],
         _bad_uri("http://localhost.example.com/cb", PUBLIC_HTTP)),
        ("WEB", ["https://app.example.com/cb#done"], _bad_uri(
            "https://app.example.com/cb#done",
            "has a fragment, which redirect URIs must not have")),
        ("WEB", ["https://app.example.com/cb#"], _bad_uri(
            "https://app.example.com/cb#", "has a fragment, which redirect URIs must not have")),
        ("WEB", ["https://*.example.com/cb"], _bad_uri(
            "https://*.example.com/cb", "contains a wildcard; redirect URIs are matched exactly")),
        ("WEB", ["https://app.example.com/cb", "https://app.example.com/*"], _bad_uri(
            "https://app.example.com/*", "contains a wildcard; redirect URIs are matched exactly")),
        ("WEB", ["http://localhost@example.com/cb"],
         _bad_uri("http://localhost@example.com/cb",
                  "has a user name or password (userinfo), which redirect URIs must not have")),
        ("WEB", ["https:///cb"], _bad_uri("https:///cb", "has no host")),
        ("WEB", ["/cb"], _bad_uri("/cb", "is not an absolute URI")),
        ("MOBILE", ["javascript:alert(1)"], _bad_uri("javascript:alert(1)",
                                                     "uses the scheme 'javascript'; use https")),
        ("WEB", ["ftp://example.com/cb"], _bad_uri("ftp://example.com/cb",
                                                   "uses the scheme 'ftp'; use https")),
        ("WEB", [f"https://app.example.com/{n}" for n in range(11)],
         ("TOO_MANY", "redirectUris", "At most 10 redirect URIs.")),
        ("SERVER", ["https://app.example.com/cb"], (
            "NOT_ALLOWED", "redirectUris",
            "SERVER clients authenticate with their secret and take no redirect URIs.")),
    ],
    ids=["https", "http-127.0.0.1", "http-localhost", "http-ipv6-loopback-and-query",
         "mobile-none", "mobile-private-scheme", "server-none", "web-none", "http-public",
         "http-localhost-lookalike", "fragment", "empty-fragment", "wildcard-host",
         "wildcard-path", "http-userinfo-trick", "no-host", "relative", "mobile-javascript",
         "ftp", "eleven", "server-with-uri"],
)
async def test_redirect_uri_rules(http, acme, developer, client_type, uris, expected):
    product_id = await thermostat(http, developer, acme)
    before = await AuditEntry.all().count()
    created = await create_client(http, developer, product_id, type=client_type,
                                  redirectUris=uris)
    stored = await OAuthClient.filter(product_id=product_id)
    if expected is None:
        assert created["userErrors"] == []
        assert created["oauthClient"]["redirectUris"] == uris
        assert [(c.kind, c.redirect_uris) for c in stored] == [(client_type, uris)]
        assert await AuditEntry.all().count() == before + 1
    else:
        assert created == {"oauthClient": None, "clientSecret": None,
                           "userErrors": error(*expected)}
        assert stored == []
        assert await AuditEntry.all().count() == before


async def test_a_server_clients_token_acts_for_its_product_not_the_organization(
    http, acme, developer
):
    product_id = await thermostat(http, developer, acme)
    created = await create_client(http, developer, product_id, name="Backend", type="SERVER")
    client_id, secret = created["oauthClient"]["clientId"], created["clientSecret"]
    response = await client_secret_grant(http, client_id, secret)
    assert response.status_code == 200, response.text
    issued = response.json()
    assert issued["token_type"] == "Bearer"
    assert "refresh_token" not in issued
    family = await TokenFamily.get(client__client_id=client_id)
    assert (family.user_id, family.grant_type) == (None, "client_credentials")

    body = await graphql(
        http, """query($id: ID!) { me { id } organization(slug: "acme") { id }
        node(id: $id) { id } }""", {"id": gid("Organization", acme.organization.id)},
        token=issued["access_token"])
    assert body["data"] == {"me": None, "organization": None, "node": None}
    refused = await create_product(http, issued["access_token"], acme.organization.id,
                                   name="Sneaky")
    assert refused == {"product": None, "userErrors": error(
        "NOT_FOUND", "organizationId", "No such organization.")}
    # A SERVER client has no other grant.
    await make_user("ada@example.com")
    password = await http.post(TOKEN, data={"grant_type": "password", "username":
                                            "ada@example.com", "password": "whatever1"},
                               auth=(client_id, secret))
    assert (password.status_code, password.json()["error"]) == (400, "unauthorized_client")


async def test_rotating_a_secret_stops_the_old_one_at_once(http, acme, developer):
    product_id = await thermostat(http, developer, acme)
    created = await create_client(http, developer, product_id, name="Backend", type="SERVER")
    client_id, old = created["oauthClient"]["clientId"], created["clientSecret"]
    before_rotation = (await client_secret_grant(http, client_id, old)).json()["access_token"]

    rotated = await run_mutation(http, "rotateOAuthClientSecret", "OAuthClientInput",
                                 {"clientId": client_id}, CLIENT, token=developer)
    new = rotated["clientSecret"]
    assert rotated == {"oauthClient": created["oauthClient"], "clientSecret": new,
                       "userErrors": []}
    assert new.startswith("dc_cs_") and new != old
    row = await OAuthClient.get(client_id=client_id)
    assert row.secret_hash == hashlib.sha256(new.encode()).hexdigest()

    stale = await client_secret_grant(http, client_id, old)
    assert (stale.status_code, stale.json()["error"]) == (401, "invalid_client")
    fresh = await client_secret_grant(http, client_id, new)
    assert fresh.status_code == 200, fresh.text
    # Tokens issued before the rotation live on; only the secret changed.
    assert (await graphql(http, "{ me { id } }", token=before_rotation))["data"] == {"me": None}

    owner = await access_token(acme.email("OWNER"))
    newest = (await audit_trail(http, "acme", token=owner, first=1))[0]
    assert (newest["action"], newest["actorEmail"], newest["targetLabel"], newest["details"],
            newest["ipAddress"]) == ("oauth_client.rotate_secret", "developer@example.com",
                                     "Backend", {"clientId": client_id}, "127.0.0.1")
    assert new not in repr(newest) and old not in repr(newest)


async def test_deleting_a_client_revokes_its_tokens(http, acme, developer):
    product_id = await thermostat(http, developer, acme)
    kept = await create_client(http, developer, product_id, name="Other", type="SERVER")
    created = await create_client(http, developer, product_id, name="Backend", type="SERVER")
    client_id, secret = created["oauthClient"]["clientId"], created["clientSecret"]
    token = (await client_secret_grant(http, client_id, secret)).json()["access_token"]
    kept_token = (await client_secret_grant(
        http, kept["oauthClient"]["clientId"], kept["clientSecret"])).json()["access_token"]
    await graphql(http, "{ me { id } }", token=token)

    deleted = await run_mutation(http, "deleteOAuthClient", "OAuthClientInput",
                                 {"clientId": client_id}, "oauthClient { clientId name }",
                                 token=developer)
    assert deleted == {"oauthClient": {"clientId": client_id, "name": "Backend"},
                       "userErrors": []}
    await graphql(http, "{ me { id } }", token=token, expect_status=401)
    await graphql(http, "{ me { id } }", token=kept_token)
    assert await TokenFamily.filter(client__client_id=client_id, revoked_at=None).count() == 0
    refused = await client_secret_grant(http, client_id, secret)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")

    listed = await graphql(http, '{ product(idOrSlug: "thermostat") { oauthClients { name } } }',
                           token=developer)
    assert listed["data"]["product"]["oauthClients"] == [{"name": "Other"}]
    before = await AuditEntry.all().count()
    gone = error("NOT_FOUND", "clientId", "No such OAuth client.")
    for verb, selection in (("rotateOAuthClientSecret", "clientSecret"),
                            ("deleteOAuthClient", "oauthClient { clientId }")):
        again = await run_mutation(http, verb, "OAuthClientInput", {"clientId": client_id},
                                   selection, token=developer)
        assert again["userErrors"] == gone, verb
    assert await AuditEntry.all().count() == before

    owner = await access_token(acme.email("OWNER"))
    newest = (await audit_trail(http, "acme", token=owner, first=1))[0]
    assert (newest["action"], newest["actorEmail"], newest["targetLabel"], newest["details"],
            newest["ipAddress"]) == ("oauth_client.delete", "developer@example.com", "Backend",
                                     {"clientId": client_id}, "127.0.0.1")


async def test_platform_clients_are_not_product_clients(http, acme, developer):
    """The first-party client and service clients have no product: the product mutations do not
    reach them."""
    service, _ = await service_client()
    for client_id in ("devicecloud", service.client_id):
        for verb, selection in (("rotateOAuthClientSecret", "clientSecret"),
                                ("deleteOAuthClient", "oauthClient { clientId }")):
            payload = await run_mutation(http, verb, "OAuthClientInput", {"clientId": client_id},
                                         selection, token=developer)
            assert payload["userErrors"] == error("NOT_FOUND", "clientId",
                                                  "No such OAuth client."), (verb, client_id)
    assert await OAuthClient.filter(deleted_at=None).count() == 2


async def test_organization_of_a_product_is_loaded_for_each_product(http, acme, developer):
    await thermostat(http, developer, acme)
    await create_product(http, developer, acme.organization.id, name="Doorbell")
    other = await make_user("someone@example.com")
    await organizations.create_organization(await acting_as(other), "Other", "other")
    body = await graphql(
        http, '{ organization(slug: "acme") { products { edges { node { slug organization '
        '{ slug } } } } } }', token=developer)
    assert [e["node"] for e in body["data"]["organization"]["products"]["edges"]] == [
        {"slug": "thermostat", "organization": {"slug": "acme"}},
        {"slug": "doorbell", "organization": {"slug": "acme"}},
    ]


async def test_product_lookups_that_cannot_be_keys_are_null(http, acme, developer):
    await thermostat(http, developer, acme)
    for key in ("9" * 25, str(2**63), "\u00b2", "-1", ""):
        body = await graphql(http, "query($p: String!) { product(idOrSlug: $p) { id } }",
                             {"p": key}, token=developer)
        assert ("errors" in body, body["data"]) == (False, {"product": None}), key


async def test_derived_product_slugs_stay_valid_when_made_unique(http, acme, developer):
    name = "a-" * 50
    slugs = [(await create_product(http, developer, acme.organization.id, name=name)
              )["product"]["slug"] for _ in range(3)]
    assert slugs == ["a-" * 31 + "a", "a-" * 28 + "a-2", "a-" * 28 + "a-3"]
    assert [clean_slug(s) for s in slugs] == slugs


async def test_product_slugs_are_never_all_digits(http, acme, developer):
    refused = await create_product(http, developer, acme.organization.id, name="Model 1001",
                                   slug="1001")
    assert refused == {"product": None, "userErrors": error(
        "INVALID_SLUG", "slug",
        "A product slug needs at least one letter; '1001' would read as a product ID.")}
    derived = await create_product(http, developer, acme.organization.id, name="1001")
    assert derived["product"]["slug"] == "product-1001"
    found = await graphql(http, '{ product(idOrSlug: "product-1001") { name } }', token=developer)
    assert found["data"]["product"] == {"name": "1001"}
