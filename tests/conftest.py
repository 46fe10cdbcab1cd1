"""Test harness: a migrated database per run (SQLite or PostgreSQL), a movable clock, and the
real app served by uvicorn on a free loopback port, on the test event loop.

`TEST_DATABASE=sqlite` (default) or `TEST_DATABASE=postgres` (server at `TEST_POSTGRES_URL`)
selects the database; `make test` runs the suite once with each.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from tortoise import Tortoise

from core import clock
from core.settings import get_settings
from models import db

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
FIRST_PARTY_CLIENT_ID = "devicecloud"
PASSWORD = "correct horse battery"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _create_postgres_database() -> tuple[str, str]:
    name = f"dc_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(TEST_POSTGRES_URL)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"TEST_DATABASE=postgres but PostgreSQL at {TEST_POSTGRES_URL} is unreachable: {error}",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, _with_database(TEST_POSTGRES_URL, name)


async def _drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh database, built by running the migrations (never `generate_schemas`)."""
    with tempfile.TemporaryDirectory() as tmp:
        if TEST_DATABASE == "postgres":
            name, url = await _create_postgres_database()
        elif TEST_DATABASE == "sqlite":
            name, url = "", f"sqlite://{Path(tmp) / 'test.sqlite3'}"
        else:
            pytest.fail(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")
        os.environ.update(
            DATABASE_URL=url,
            ENVIRONMENT="development",
            SECRET_KEY="test-" + "k" * 40,
            BASE_URL="http://127.0.0.1",
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
                await _drop_postgres_database(name)


def _models_children_first() -> list[type]:
    """Every model, each after the models that reference it, so deleting in order is legal."""
    models = list(Tortoise.apps[db.APP_LABEL].values())
    ordered: list[type] = []

    def visit(model: type) -> None:
        if model in ordered:
            return
        for other in models:
            if other is not model and any(
                other._meta.fields_map[f].related_model is model for f in other._meta.fk_fields
            ):
                visit(other)
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered


@pytest.fixture(autouse=True)
async def clean_database(database_url: str) -> AsyncIterator[None]:
    """Each test starts from the migrated state: only the built-in client exists."""
    yield
    for model in _models_children_first():
        query = model.all()
        if model.__name__ == "OAuthClient":
            query = query.exclude(client_id=FIRST_PARTY_CLIENT_ID)
        await query.delete()


@dataclass
class Clock:
    """A clock the test moves by hand."""

    current: datetime

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def frozen_clock() -> Iterator[Clock]:
    fake = Clock(datetime.now(UTC))
    clock.set_source(fake)
    yield fake
    clock.set_source(None)


@dataclass
class LiveServer:
    url: str

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture(scope="session")
async def live_server(database_url: str) -> AsyncIterator[LiveServer]:
    """The real app under uvicorn on a free port, sharing this process's ORM and clock."""
    from api.app import create_app

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


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port that records the emails it accepts.
    Set `refuse_with` to an SMTP reply (e.g. "451 4.3.0 Try again later") to refuse them."""

    url: str = ""
    received: list[ReceivedEmail] = field(default_factory=list)
    refuse_with: str = ""
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        # SMTP carries lines ending in CRLF; read the message back as it was composed.
        raw = envelope.original_content.replace(b"\r\n", b"\n")
        message = message_from_bytes(raw, policy=policy.default)
        async with self._arrived:
            self.received.append(
                ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message)
            )
            self._arrived.notify_all()
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10) -> list[ReceivedEmail]:
        """Every email received once there are at least `count`; fails after `within` seconds."""
        try:
            async with asyncio.timeout(within), self._arrived:
                await self._arrived.wait_for(lambda: len(self.received) >= count)
        except TimeoutError:
            pytest.fail(f"{len(self.received)} emails received within {within} s, not {count}")
        return list(self.received)


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
