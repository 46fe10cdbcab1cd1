"""A real browser (Debian's Chromium, headless, driven by Playwright) runs a single-page app
served from another loopback origin than the API's (tests/clients/browser/app.html, with
graphql-ws's browser build): from an origin of a WEB client's redirect URI it queries GraphQL
with a bearer token, calls the token endpoint, reads the product's SSE stream through
`EventSource` and receives a subscription's event over `graphql-ws`; the same page on an origin
no client has is refused all four, by the browser, from the answers the API gives it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from api.cors import REASON
from fleet import products
from fleet.events import product_channel
from models.products import Product
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.constants import PASSWORD
from tests.support.graphql import gid
from tests.support.live import publish, until_subscribed
from tests.support.servers import LiveServer

CLIENTS = Path(__file__).parents[1] / "clients"
WAIT_MS = 10_000  # Playwright's deadline for anything the page waits for
STREAM = "/v1/products/thermostat/events"


def page_site() -> Starlette:
    """The app's own web server: the page and the graphql-ws browser build, nothing else."""
    return Starlette(routes=[
        Route("/", lambda request: FileResponse(CLIENTS / "browser" / "app.html")),
        Route("/graphql-ws.min.js", lambda request: FileResponse(
            CLIENTS / "node_modules" / "graphql-ws" / "umd" / "graphql-ws.min.js")),
    ])


@asynccontextmanager
async def served(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """`page_site` under uvicorn on a free loopback port: its origin."""
    server = uvicorn.Server(uvicorn.Config(page_site(), host=host, port=0, log_config=None,
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "the page server did not start"
                await asyncio.sleep(0.01)
        yield f"http://{host}:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                    headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def team() -> Team:
    return await organization_with_team("Acme", "acme", roles=("OWNER",))


@pytest.fixture
async def product(team: Team) -> Product:
    return await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE",
    )


async def open_page(browser: Browser, origin: str) -> Page:
    page = await browser.new_page()
    await page.goto(origin + "/")
    await page.wait_for_function("typeof graphqlWs !== 'undefined'", timeout=WAIT_MS)
    return page


async def test_a_browser_app_on_a_web_clients_origin_reaches_every_endpoint(
    browser: Browser, live_server: LiveServer, team: Team, product: Product
):
    api, email = live_server.url, team.email("OWNER")
    token = await access_token(email)
    async with served() as origin:
        await products.create_oauth_client(
            team.principals["OWNER"], product.id, name="Dashboard", client_type="WEB",
            redirect_uris=[f"{origin}/callback"])
        page = await open_page(browser, origin)

        answer = await page.evaluate("([api, token]) => query(api, token)", [api, token])
        assert answer["data"] == {"me": {"email": email}}

        signed_in = await page.evaluate("([api, u, p]) => signIn(api, u, p)",
                                        [api, email, PASSWORD])
        assert signed_in["token_type"] == "Bearer" and signed_in["access_token"]

        assert await page.evaluate("([api, t, path]) => openStream(api, t, path)",
                                   [api, token, STREAM]) == "open"
        await publish(product, None, "temperature", "21.5")
        await page.wait_for_function("window.stream.events.length === 1", timeout=WAIT_MS)
        assert await page.evaluate("window.stream.events") == ["21.5"]

        ws = api.replace("http://", "ws://") + "/graphql"
        assert await page.evaluate("([url, t, id]) => subscribe(url, t, id)",
                                   [ws, token, gid("Product", product.id)]) == "connected"
        await until_subscribed(product_channel(product.id), 2)  # the stream and the subscription
        await publish(product, None, "temperature", "22.5")
        await page.wait_for_function("window.subscription.events.length === 1", timeout=WAIT_MS)
        assert await page.evaluate("window.subscription.events") == ["22.5"]
        await page.wait_for_function("window.stream.events.length === 2", timeout=WAIT_MS)


async def test_the_same_app_on_an_origin_no_client_has_is_refused_every_endpoint(
    browser: Browser, live_server: LiveServer, team: Team, product: Product,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="devicecloud.cors")
    api, email = live_server.url, team.email("OWNER")
    token = await access_token(email)
    async with served() as allowed, served() as origin:
        # Another port of the same host is another origin.
        await products.create_oauth_client(
            team.principals["OWNER"], product.id, name="Dashboard", client_type="WEB",
            redirect_uris=[f"{allowed}/callback"])
        page = await open_page(browser, origin)
        failed = "refused: TypeError: Failed to fetch"
        assert await page.evaluate("([api, token]) => query(api, token)", [api, token]) == failed
        assert await page.evaluate("([api, u, p]) => signIn(api, u, p)",
                                   [api, email, PASSWORD]) == failed
        assert await page.evaluate("([api, t, path]) => openStream(api, t, path)",
                                   [api, token, STREAM]) == "refused: closed"
        ws = api.replace("http://", "ws://") + "/graphql"
        assert await page.evaluate("([url, t, id]) => subscribe(url, t, id)",
                                   [ws, token, gid("Product", product.id)]) \
            == "refused: closed 1006"
    assert [(r.origin, r.path) for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "devicecloud.cors" and REASON in r.getMessage()] \
        == [(origin, "/graphql")]
