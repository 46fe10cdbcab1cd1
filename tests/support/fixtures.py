"""The suite's fixtures, registered once (the root `conftest.py` loads this plugin).

Every test process has its own state, so the suite runs in parallel (pytest-xdist) without
tests meeting: the session's database is its own (a fresh PostgreSQL database named after the
worker, or an SQLite file in a temporary directory), servers listen on free loopback ports,
Redis channels carry a random prefix per block of app processes, and files go under `tmp_path`.
Session-scoped fixtures are per process, hence per worker.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn
from aiosmtpd.smtp import SMTP
from argon2 import PasswordHasher
from oauthlib.oauth2 import Client
from requests_oauthlib import OAuth2Session

from api.app import create_app
from auth import passwords, signing_keys
from core import clock
from core.settings import get_settings
from fleet import subscriptions
from models import db
from tests.support.constants import FIRST_PARTY_CLIENT_ID, T
from tests.support.database import create_database, drop_database, models_children_first
from tests.support.servers import Clock, LiveServer, SmtpServer
from tests.support.timers import ManualTimer
from tests.support.worlds import (
    CallingTeam,
    EventWorld,
    Fleet,
    Products,
    build_calling_team,
    build_event_world,
    build_fleet,
    build_two_products,
)

Recorder = Callable[[Client], tuple[OAuth2Session, list[requests.PreparedRequest]]]


# --- The database, the clock, the live server ---------------------------------------------------


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """This process's database, migrated; the ORM is connected to it."""
    with tempfile.TemporaryDirectory() as tmp:
        name, url = await create_database(Path(tmp))
        os.environ.update(
            DATABASE_URL=url,
            ENVIRONMENT="development",
            SECRET_KEY="test-" + "k" * 40,
            BASE_URL="http://127.0.0.1",
            # The tests tick the usage scheduler themselves, when they mean to.
            USAGE_TICK_INTERVAL="0",
        )
        get_settings.cache_clear()
        await db.migrate(url)
        await db.disconnect()
        await db.connect(url)
        try:
            yield url
        finally:
            await db.disconnect()
            if name:
                await drop_database(name)


@pytest.fixture(autouse=True)
async def clean_database(database_url: str) -> AsyncIterator[None]:
    """Each test starts from the migrated state: only the built-in client exists, and no
    signing key chain is held in memory."""
    yield
    signing_keys.forget_chain()
    for model in models_children_first():
        query = model.all()
        if model.__name__ == "OAuthClient":
            query = query.exclude(client_id=FIRST_PARTY_CLIENT_ID)
        await query.delete()


@pytest.fixture
def frozen_clock() -> Iterator[Clock]:
    fake = Clock(datetime.now(UTC))
    clock.set_source(fake)
    yield fake
    clock.set_source(None)


@pytest.fixture(scope="session")
async def live_server(database_url: str) -> AsyncIterator[LiveServer]:
    """The real app under uvicorn on a free port, sharing this process's ORM and clock."""
    app = create_app(get_settings(), manage_database=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 20
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            pytest.fail("uvicorn did not start", pytrace=False)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield LiveServer(f"http://127.0.0.1:{port}")
    server.should_exit = True
    await task


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client() as client:
        yield client


@pytest.fixture
def url(live_server: LiveServer) -> str:
    """The device gateway's WebSocket URL."""
    return live_server.device_url


@pytest.fixture
async def smtp_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SmtpServer]:
    """An SMTP server that the app's sender uses for this test.

    The live server's app holds the object `get_settings()` caches, and its sender reads
    `smtp_url` from it at send time: setting the URL on that one object points the app,
    `get_settings()` and any sender started here at this server, and is undone afterwards.
    """
    recorder = SmtpServer()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(recorder, hostname="smtp.test"), host="127.0.0.1", port=0
    )
    recorder.url = f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    monkeypatch.setattr(get_settings(), "smtp_url", recorder.url)
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams opened from now on re-check their subscriber's access every 0.2 s."""
    monkeypatch.setattr(get_settings(), "stream_access_check_interval", 0.2)


# --- Signing in ---------------------------------------------------------------------------------


@pytest.fixture
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with its lowest cost instead of RFC 9106's (about 0.5 s a hash on a small CI
    machine), for tests that sign in hundreds of times. The code path is unchanged: unknown
    accounts are still verified against the dummy hash."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("not-a-real-password"))


@pytest.fixture
def oauth2_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """requests-oauthlib sessions that record every request they send.

    requests is blocking and the server runs on the test's event loop: call the session only
    through `asyncio.to_thread`.
    """
    # oauthlib refuses plain-HTTP token endpoints unless told this is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sessions: list[OAuth2Session] = []

    def make(client: Client) -> tuple[OAuth2Session, list[requests.PreparedRequest]]:
        session = OAuth2Session(client=client)
        session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
        sent: list[requests.PreparedRequest] = []

        def record(response: requests.Response, **_: object) -> None:
            sent.append(response.request)

        session.hooks["response"].append(record)
        sessions.append(session)
        return session, sent

    yield make
    for session in sessions:
        session.close()


# --- Worlds (tests.support.worlds) --------------------------------------------------------------


@pytest.fixture
async def fleet() -> Fleet:
    """Acme's thermostat with its ten devices and their errors, and Globex's kettle."""
    return await build_fleet()


@pytest.fixture
async def event_world(frozen_clock: Clock) -> EventWorld:
    """Thermostat's devices D1 and D2 and its SERVER client, with the clock stopped at T."""
    frozen_clock.current = T
    return await build_event_world()


@pytest.fixture
async def two_products() -> Products:
    return await build_two_products()


@pytest.fixture
async def calling_team() -> CallingTeam:
    """An owner, a support member and a viewer, and their product "Kettle"."""
    return await build_calling_team()


@pytest.fixture
def timer(monkeypatch: pytest.MonkeyPatch) -> ManualTimer:
    """Subscriptions made from now on send an unacknowledged delivery again, then drop it,
    only when the test moves this timer (after `device_delivery_ack_timeout` of it each)."""
    own = ManualTimer()
    monkeypatch.setattr(subscriptions, "timer", own)
    return own
