"""CORS and the WebSocket origin rule, as a browser's requests reach the live server: which
origins (the WEB clients' redirect-URI origins, kept current without a restart, and
`CORS_ALLOWED_ORIGINS`), the exact preflight and response headers of each CORS-enabled endpoint,
what a refused origin gets (nothing CORS, and one log line), and the endpoints that are never
CORS-enabled. The real browser's view is tests/e2e/test_browser_clients.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.routing import compile_path
from tortoise.exceptions import OperationalError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from api import oauth_routes
from api.cors import NOT_LOADED, REASON, REQUEST_HEADERS, RefusalLog
from auth import apps, web_origins
from core.broker import InProcessBroker
from core.origins import origin_of
from core.settings import Settings
from fleet import products
from models.oauth import OAuthClient
from models.products import Product
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.graphql import gid, graphql
from tests.support.polling import eventually
from tests.support.processes import AppProcesses, app_processes
from tests.support.servers import LiveServer

APP = "https://app.acme.example"
OTHER = "https://evil.example"
EXPOSE = "X-Request-ID, WWW-Authenticate, Retry-After"
BODY_HEADERS = "Authorization, Content-Type, X-Request-ID"
STREAM_HEADERS = "Authorization, Last-Event-ID, X-Request-ID"
GRAPHQL_VARY = "Authorization, Origin"  # a GraphQL answer also depends on who asks


@dataclass
class World:
    team: Team
    product: Product

    @property
    def owner(self):
        return self.team.principals["OWNER"]

    async def web_client(self, *uris: str) -> str:
        client, _ = await products.create_oauth_client(
            self.owner, self.product.id, name="Web app", client_type="WEB",
            redirect_uris=list(uris))
        return client.client_id


@pytest.fixture
async def world() -> World:
    team = await organization_with_team("Acme", "acme", roles=("OWNER",))
    product = await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    return World(team, product)


def preflight(http: httpx.AsyncClient, path: str, origin: str, method: str = "POST",
              headers: str = "authorization, content-type"):
    return http.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items()
            if name.startswith("access-control-")}


def allowed_preflight(origin: str, methods: str, headers: str) -> dict[str, str]:
    return {"access-control-allow-origin": origin, "access-control-allow-methods": methods,
            "access-control-allow-headers": headers, "access-control-max-age": "600"}


def refusals(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.origin, r.path) for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "devicecloud.cors" and REASON in r.getMessage()]


@pytest.fixture
def refusal_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The refusals logged (each test refuses origins no other test uses: the live server's
    log says an origin once a minute)."""
    caplog.set_level(logging.WARNING, logger="devicecloud.cors")
    return caplog


# --- which origins -----------------------------------------------------------------------------


def test_a_client_contributes_the_origins_of_its_http_redirect_uris_if_it_is_a_live_web_client():
    uris = ["https://App.Acme.example/callback", "https://app.acme.example:443/other",
            "http://127.0.0.1:8123/cb", "https://[::1]:8443/cb", "com.acme.app:/cb"]
    assert web_origins.client_origins("WEB", uris, deleted=False) == {
        "https://app.acme.example", "http://127.0.0.1:8123", "https://[::1]:8443"}
    assert web_origins.client_origins("WEB", uris, deleted=True) == set()
    assert web_origins.client_origins("MOBILE", uris, deleted=False) == set()
    assert web_origins.client_origins("SERVER", uris, deleted=False) == set()


def test_a_host_in_unicode_has_no_origin():
    """Python's IDNA 2003 codec would make `faß.de` `fass.de`, an origin no browser sends for
    it (a browser sends `xn--fa-hia.de`); such a URI is refused when registered, and one stored
    before contributes nothing."""
    assert origin_of("https://faß.de/cb") is None
    assert origin_of("https://xn--fa-hia.de/cb") == "https://xn--fa-hia.de"
    assert web_origins.client_origins("WEB", ["https://faß.de/cb"], deleted=False) == set()


@pytest.mark.parametrize(("entry", "message"), [
    ("https://app.example.com/", "'https://app.example.com/' is not an origin as browsers send "
     "it (no path, no trailing slash, lower case, no default port); write "
     "'https://app.example.com'"),
    ("https://app.example.com/spa", "write 'https://app.example.com'"),
    ("https://APP.example.com", "write 'https://app.example.com'"),
    ("https://app.example.com:443", "write 'https://app.example.com'"),
    ("https://*.example.com", "'https://*.example.com' contains a wildcard; list each origin"),
    ("*", "'*' contains a wildcard"),
    ("app.example.com", "'app.example.com' is not an origin like https://app.example.com"),
    ("null", "'null' is not an origin"),
    ("https://faß.de", "'https://faß.de' has a host that is not in ASCII; write it in its "
     "A-label (punycode) form, as browsers send it: xn--fa-hia.de, not faß.de"),
])
def test_cors_allowed_origins_is_checked_at_start_up(entry: str, message: str):
    with pytest.raises(ValueError, match="CORS_ALLOWED_ORIGINS: ") as refused:
        Settings(cors_allowed_origins=f"https://ok.example, {entry}")
    assert message in str(refused.value)
    assert Settings(cors_allowed_origins="https://a.example, http://127.0.0.1:3000").cors_origins \
        == {"https://a.example", "http://127.0.0.1:3000"}


async def test_a_web_client_is_allowed_once_created_and_refused_once_deleted(
    world: World, http: httpx.AsyncClient, refusal_log: pytest.LogCaptureFixture
):
    origin = "https://created.acme.example"
    assert (await preflight(http, "/graphql", origin)).status_code == 403
    client_id = await world.web_client(f"{origin}/callback", "http://localhost:9000/cb")
    allowed = await preflight(http, "/graphql", origin)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == origin
    await products.delete_oauth_client(world.owner, client_id)
    refused = await preflight(http, "/graphql", origin)
    assert (refused.status_code, cors_headers(refused)) == (403, {})


async def test_an_origin_stays_allowed_while_another_live_client_has_it(
    world: World, http: httpx.AsyncClient
):
    origin = "https://shared.acme.example"
    first = await world.web_client(f"{origin}/a")
    await world.web_client(f"{origin}/b")
    await products.delete_oauth_client(world.owner, first)
    assert (await preflight(http, "/graphql", origin)).status_code == 204


async def test_mobile_and_server_clients_contribute_no_origin(
    world: World, http: httpx.AsyncClient
):
    await products.create_oauth_client(world.owner, world.product.id, name="Phone",
                                       client_type="MOBILE", redirect_uris=[
                                           "https://mobile.acme.example/cb"])
    assert (await preflight(http, "/graphql", "https://mobile.acme.example")).status_code == 403


async def test_a_users_app_is_allowed_once_registered_and_refused_once_deleted(
    world: World, http: httpx.AsyncClient
):
    origin = "http://127.0.0.1:47001"
    client, _ = await apps.create_app(world.owner, name="Dashboard",
                                      redirect_uris=[f"{origin}/cb"], scopes=[])
    assert (await preflight(http, "/oauth/token", origin)).status_code == 204
    await apps.delete_app(world.owner, client.client_id)
    assert (await preflight(http, "/oauth/token", origin)).status_code == 403


async def test_a_process_loads_the_live_web_clients_origins_and_the_configured_ones_at_start_up(
    world: World
):
    await world.web_client("https://before.acme.example/cb")
    gone = await world.web_client("https://gone.acme.example/cb")
    await products.delete_oauth_client(world.owner, gone)
    await products.create_oauth_client(world.owner, world.product.id, name="Phone",
                                       client_type="MOBILE",
                                       redirect_uris=["https://phone.acme.example/cb"])
    async with web_origins.WebOrigins(InProcessBroker(), {APP}).running() as loaded:
        assert [origin for origin in (APP, "https://before.acme.example",
                                      "https://gone.acme.example", "https://phone.acme.example",
                                      OTHER) if loaded.allows(origin)] \
            == [APP, "https://before.acme.example"]


async def test_a_configured_origin_is_answered(processes: AppProcesses):
    (app,) = await processes.start(1, env={"CORS_ALLOWED_ORIGINS": "https://configured.example"})
    async with app.client() as http:
        response = await preflight(http, "/oauth/revoke", "https://configured.example")
        assert (response.status_code, response.headers["access-control-allow-origin"]) \
            == (204, "https://configured.example")
        refused = await preflight(http, "/oauth/revoke", "https://unconfigured.example")
        assert (refused.status_code, cors_headers(refused)) == (403, {})


class Gate:
    """The origin set's wait before it reads the clients again after a failure: it records
    how long the set asked to wait, and returns when the test opens it."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._open = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self._open.wait()
        self._open.clear()

    def open(self) -> None:
        self._open.set()


class Database:
    """Makes the origin set's reads of the clients fail while `down`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        for name in ("filter", "get_or_none"):
            monkeypatch.setattr(OAuthClient, name, self._failing(getattr(OAuthClient, name)))

    def _failing(self, read):
        def call(*args, **kwargs):
            if self.down:
                raise OperationalError("connection refused")
            return read(*args, **kwargs)
        return call


def holds(check):
    """`check` as the coroutine function `eventually` polls."""
    async def poll() -> bool:
        return check()
    return poll


async def test_a_failed_read_at_start_up_is_tried_again_and_refusals_meanwhile_say_so(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    await world.web_client(f"{APP}/callback")
    database, gate = Database(monkeypatch), Gate()
    database.down = True
    origins = web_origins.WebOrigins(InProcessBroker(), {"https://configured.example"},
                                     sleep=gate)
    log = RefusalLog(origins)
    caplog.set_level(logging.WARNING, logger="devicecloud.cors")
    async with origins.running():
        await eventually(holds(lambda: gate.waits == [web_origins.RETRY_INTERVAL]))
        assert (origins.loaded, origins.allows(APP), origins.allows("https://configured.example")) \
            == (False, False, True)
        log.refused(APP, "/graphql")
        database.down = False
        gate.open()
        await eventually(holds(lambda: origins.allows(APP)))
        assert origins.loaded
        log.refused(OTHER, "/graphql")
    assert [(r.getMessage(), r.origin) for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "devicecloud.cors"] == [
        (f"cross-origin request refused: {NOT_LOADED}", APP),
        (f"cross-origin request refused: {REASON}", OTHER)]


async def test_a_failed_read_of_a_changed_client_is_tried_again(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    database, gate, broker = Database(monkeypatch), Gate(), InProcessBroker()
    origins = web_origins.WebOrigins(broker, sleep=gate)
    async with origins.running():
        client_id = await world.web_client(f"{APP}/callback")  # told to the live server's set
        database.down = True
        await broker.publish(web_origins.CHANNEL, client_id.encode())
        await eventually(holds(lambda: gate.waits == [web_origins.RETRY_INTERVAL]))
        assert not origins.allows(APP)
        database.down = False
        gate.open()
        await eventually(holds(lambda: origins.allows(APP)))
        assert gate.waits == [web_origins.RETRY_INTERVAL]


async def test_every_client_is_read_again_when_the_broker_lost_messages(world: World):
    """Redis dropped: the changes published meanwhile never arrive, so the set reads every
    client again (here the changes are told only to the live server's set)."""
    broker = InProcessBroker()
    await world.web_client("https://kept.acme.example/cb")
    gone = await world.web_client("https://gone.acme.example/cb")
    async with web_origins.WebOrigins(broker).running() as origins:
        await world.web_client(f"{APP}/callback")
        await products.delete_oauth_client(world.owner, gone)
        assert [o for o in (APP, "https://kept.acme.example", "https://gone.acme.example")
                if origins.allows(o)] == ["https://kept.acme.example", "https://gone.acme.example"]
        broker._deliver(web_origins.CHANNEL, None)
        await eventually(holds(lambda: origins.allows(APP)))
        assert [o for o in (APP, "https://kept.acme.example", "https://gone.acme.example")
                if origins.allows(o)] == [APP, "https://kept.acme.example"]


# --- exact headers per endpoint --------------------------------------------------------------


# Every CORS-enabled route (a path of each), its methods and the request headers it allows.
ENDPOINTS = [
    ("/graphql", "GET, POST", BODY_HEADERS),
    ("/oauth/token", "POST", BODY_HEADERS),
    ("/oauth/revoke", "POST", BODY_HEADERS),
    ("/oauth/userinfo", "GET, POST", BODY_HEADERS),
    ("/oauth/jwks", "GET", "X-Request-ID"),
    ("/.well-known/openid-configuration", "GET", "X-Request-ID"),
    ("/.well-known/oauth-authorization-server", "GET", "X-Request-ID"),
    ("/v1/products/thermostat/events", "GET", STREAM_HEADERS),
    ("/v1/products/thermostat/events/temp", "GET", STREAM_HEADERS),
    ("/v1/devices/0123456789abcdef01234567/events", "GET", STREAM_HEADERS),
    ("/v1/devices/0123456789abcdef01234567/events/temp/inside", "GET", STREAM_HEADERS),
]


def test_the_endpoint_table_has_a_path_of_every_cors_enabled_route_and_no_other():
    matches = {route: [path for path, _, _ in ENDPOINTS if compile_path(route)[0].match(path)]
               for route in REQUEST_HEADERS}
    assert {route: len(paths) for route, paths in matches.items()} \
        == dict.fromkeys(REQUEST_HEADERS, 1)
    assert len(ENDPOINTS) == len(REQUEST_HEADERS)


@pytest.mark.parametrize(("path", "methods", "headers"), ENDPOINTS)
async def test_a_preflight_from_an_allowed_origin_gets_the_endpoints_methods_and_headers(
    world: World, http: httpx.AsyncClient, path: str, methods: str, headers: str
):
    await world.web_client(f"{APP}/callback")
    response = await preflight(http, path, APP, method=methods.split(", ")[-1])
    assert response.status_code == 204
    assert response.content == b""
    assert cors_headers(response) == allowed_preflight(APP, methods, headers)
    assert response.headers["vary"] == "Origin"


async def test_responses_to_an_allowed_origin_carry_the_origin_and_the_exposed_headers(
    world: World, http: httpx.AsyncClient
):
    await world.web_client(f"{APP}/callback")
    token = await access_token(world.team.email("OWNER"))
    auth = {"Authorization": f"Bearer {token}", "Origin": APP}
    expected = {"access-control-allow-origin": APP, "access-control-expose-headers": EXPOSE}
    query = await http.post("/graphql", json={"query": "{ me { email } }"}, headers=auth)
    assert query.status_code == 200
    assert (cors_headers(query), query.headers["vary"]) == (expected, GRAPHQL_VARY)
    by_get = await http.get("/graphql", params={"query": "{ me { email } }"}, headers=auth)
    assert by_get.json()["data"] == query.json()["data"] == {"me": {"email": "owner@example.com"}}
    assert (cors_headers(by_get), by_get.headers["vary"]) == (expected, GRAPHQL_VARY)
    bad_token = await http.post("/graphql", json={"query": "{ me { email } }"},
                                headers={**auth, "Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert cors_headers(bad_token) == expected
    token_error = await http.post("/oauth/token", data={"grant_type": "password"},
                                  headers={"Origin": APP})
    assert (token_error.status_code, token_error.json()) == (401, {
        "error": "invalid_client", "error_description": "The client cannot authenticate with "
        "methods: ['client_secret_basic', 'client_secret_post', 'none']"})
    assert cors_headers(token_error) == expected
    revoke = await http.post("/oauth/revoke", data={"token": "x", "client_id": "devicecloud"},
                             headers={"Origin": APP})
    assert (revoke.status_code, revoke.json(), cors_headers(revoke)) == (200, {}, expected)
    async with http.stream("GET", "/v1/products/thermostat/events", headers=auth) as stream:
        assert stream.status_code == 200
        assert (cors_headers(stream), stream.headers["vary"]) == (expected, "Origin")


async def test_a_browser_relying_party_reads_discovery_keys_and_userinfo(
    world: World, http: httpx.AsyncClient
):
    """What an OpenID Connect library in a page fetches besides the token endpoint."""
    await world.web_client(f"{APP}/callback")
    expected = {"access-control-allow-origin": APP, "access-control-expose-headers": EXPOSE}
    for path in ("/.well-known/openid-configuration",
                 "/.well-known/oauth-authorization-server", "/oauth/jwks"):
        document = await http.get(path, headers={"Origin": APP})
        assert (document.status_code, cors_headers(document)) == (200, expected)
    userinfo = await http.get("/oauth/userinfo", headers={"Origin": APP,
                                                          "Authorization": "Bearer nope"})
    assert (userinfo.status_code, cors_headers(userinfo)) == (401, expected)
    refused = await http.get("/oauth/jwks", headers={"Origin": OTHER})
    assert (refused.status_code, cors_headers(refused)) == (200, {})


@pytest.mark.parametrize(("path", "methods", "_headers"), ENDPOINTS)
async def test_every_response_of_a_cors_endpoint_varies_on_origin(
    http: httpx.AsyncClient, path: str, methods: str, _headers: str
):
    """Without an `Origin` too: a cache must not hand this answer to a page on an origin."""
    query = {"json": {"query": "{ __typename }"}} if path == "/graphql" else {}
    response = await http.request(methods.split(", ")[-1], path, **query)
    vary = GRAPHQL_VARY if path == "/graphql" else "Origin"
    assert (cors_headers(response), response.headers["vary"]) == ({}, vary)


async def test_a_page_of_the_api_itself_is_not_cross_origin(
    http: httpx.AsyncClient, live_server: LiveServer, refusal_log: pytest.LogCaptureFixture
):
    """GraphiQL, served at /graphql, posts to /graphql from the API's own origin: nothing to
    allow or refuse, whether `Host` names it or the browser says so behind a proxy."""
    for headers in ({"Origin": live_server.url},
                    {"Origin": "https://api.behind-a-proxy.example",
                     "Sec-Fetch-Site": "same-origin"}):
        response = await http.post("/graphql", json={"query": "{ __typename }"},
                                   headers=headers)
        assert (response.status_code, cors_headers(response)) == (200, {})
        assert response.headers["vary"] == GRAPHQL_VARY
    assert refusals(refusal_log) == []


# --- a refused origin --------------------------------------------------------------------------


async def test_a_refused_origin_gets_no_cors_headers_and_one_log_line(
    world: World, http: httpx.AsyncClient, refusal_log: pytest.LogCaptureFixture
):
    await world.web_client(f"{APP}/callback")
    origin = "https://refused-once.example"
    refused = await preflight(http, "/graphql", origin)
    assert refused.status_code == 403
    assert refused.json() == {"errors": [{
        "message": "This origin may not call the API from a browser.",
        "extensions": {"code": "ORIGIN_NOT_ALLOWED"}}]}
    assert cors_headers(refused) == {}
    served = await http.post("/graphql", json={"query": "{ __typename }"},
                             headers={"Origin": origin})
    assert served.status_code == 200
    assert (cors_headers(served), served.headers["vary"]) == ({}, GRAPHQL_VARY)
    sse = await http.get("/v1/products/thermostat/events", headers={"Origin": origin})
    assert (sse.status_code, cors_headers(sse)) == (401, {})
    # Logged once per origin a minute, whatever it tries next.
    assert refusals(refusal_log) == [(origin, "/graphql")]


def loaded_origins() -> web_origins.WebOrigins:
    """An origin set that has read the clients (none)."""
    origins = web_origins.WebOrigins(InProcessBroker())
    origins.loaded = True
    return origins


def test_the_refusal_log_says_each_origin_once_an_interval_and_caps_the_origins(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    now = [1000.0]
    monkeypatch.setattr("api.cors.time.monotonic", lambda: now[0])
    caplog.set_level(logging.WARNING, logger="devicecloud.cors")
    log = RefusalLog(loaded_origins(), interval=60, most=2)
    for origin in ("https://a.example", "https://a.example", "https://b.example",
                   "https://c.example", "https://d.example"):
        log.refused(origin, "/graphql")
    messages = [r.getMessage() for r in caplog.records]
    assert refusals(caplog) == [("https://a.example", "/graphql"),
                                ("https://b.example", "/graphql")]
    assert messages[2] == ("more cross-origin refusals than are logged; the rest of this "
                           "minute's go unlogged")
    assert len(messages) == 3
    now[0] += 60
    log.refused("https://a.example", "/oauth/token")
    assert refusals(caplog)[-1] == ("https://a.example", "/oauth/token")


# --- never CORS-enabled ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/oauth/authorize", "/account", "/account/verify",
                                  "/account/reset", "/oauth/introspect", "/healthz"])
async def test_the_hosted_pages_and_the_server_endpoints_are_never_cors_enabled(
    world: World, http: httpx.AsyncClient, path: str
):
    await world.web_client(f"{APP}/callback")
    options = await preflight(http, path, APP, method="GET")
    assert cors_headers(options) == {}
    assert "vary" not in options.headers
    page = await http.get(path, headers={"Origin": APP})
    assert cors_headers(page) == {}


async def test_the_hosted_pages_keep_their_anti_framing_headers_for_an_allowed_origin(
    world: World, http: httpx.AsyncClient
):
    await world.web_client(f"{APP}/callback")
    page = await http.get("/oauth/authorize", headers={"Origin": APP})
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


# --- the GraphQL WebSocket ---------------------------------------------------------------------


async def handshake(live_server: LiveServer, origin: str | None, path: str = "/graphql",
                    **extra: str) -> str:
    url = live_server.url.replace("http://", "ws://") + path
    headers = {"Origin": origin, **extra} if origin else {}
    try:
        async with connect(url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                           additional_headers=headers, origin=None):
            return "accepted"
    except InvalidStatus as refused:
        return f"refused {refused.response.status_code}"


async def test_the_graphql_websocket_accepts_the_same_origins(
    world: World, live_server: LiveServer, refusal_log: pytest.LogCaptureFixture
):
    await world.web_client(f"{APP}/callback")
    assert await handshake(live_server, APP) == "accepted"
    assert await handshake(live_server, None) == "accepted"
    assert await handshake(live_server, live_server.url) == "accepted"
    assert await handshake(live_server, "https://api.behind-a-proxy.example",
                           **{"Sec-Fetch-Site": "same-origin"}) == "accepted"
    assert await handshake(live_server, "https://socket-refused.example") == "refused 403"
    assert refusals(refusal_log) == [("https://socket-refused.example", "/graphql")]
    # one line, ours: Strawberry's own (not rate-limited) is left out
    assert [r.name for r in refusal_log.records if r.name.startswith("strawberry")] == []


# --- across processes --------------------------------------------------------------------------


@pytest.fixture
async def processes(database_url: str) -> AsyncIterator[AppProcesses]:
    async with app_processes(database_url) as started:
        yield started


@asynccontextmanager
async def clients(processes: AppProcesses):
    first, second = await processes.start(2)
    async with first.client() as a, second.client() as b:
        yield a, b


async def test_a_client_change_in_one_process_reaches_another_through_redis(
    world: World, processes: AppProcesses
):
    origin = "https://across.acme.example"
    token = await access_token(world.team.email("OWNER"))
    create = """mutation($input: CreateOAuthClientInput!) { createOAuthClient(input: $input) {
        oauthClient { clientId } userErrors { code } } }"""
    delete = """mutation($input: OAuthClientInput!) { deleteOAuthClient(input: $input) {
        userErrors { code } } }"""

    async def second_allows(http: httpx.AsyncClient, status: int) -> bool:
        return (await preflight(http, "/graphql", origin)).status_code == status

    async with clients(processes) as (a, b):
        assert await second_allows(b, 403)
        body = await graphql(a, create, {"input": {
            "productId": gid("Product", world.product.id), "name": "Web", "type": "WEB",
            "redirectUris": [f"{origin}/callback"]}}, token=token)
        client_id = body["data"]["createOAuthClient"]["oauthClient"]["clientId"]
        assert await second_allows(a, 204)  # the process that made it: at once
        await eventually(lambda: second_allows(b, 204))
        body = await graphql(a, delete, {"input": {"clientId": client_id}}, token=token)
        assert body["data"]["deleteOAuthClient"]["userErrors"] == []
        assert await second_allows(a, 403)
        await eventually(lambda: second_allows(b, 403))



async def test_a_server_error_is_json_with_the_cors_headers_an_allowed_origin_gets(
    world: World, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    await world.web_client(f"{APP}/callback")

    async def broken(_settings: object) -> list[object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(oauth_routes.signing_keys, "published", broken)
    response = await http.get("/oauth/jwks", headers={"Origin": APP})
    assert response.status_code == 500
    assert (response.headers["content-type"], response.headers["cache-control"]) == (
        "application/json", "no-store")
    assert response.json() == {"errors": [{"message": "Something went wrong on our side; quote "
        "the X-Request-ID header of this answer if you report it.",
        "extensions": {"code": "SERVER_ERROR"}}]}
    assert len(response.headers["x-request-id"]) >= 16
    assert cors_headers(response) == {"access-control-allow-origin": APP,
                                      "access-control-expose-headers": EXPOSE}
