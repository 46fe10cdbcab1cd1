"""A throw-away database for one run (SQLite, or PostgreSQL with BENCH_DATABASE_URL) and
the accounts and clients the scenarios use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from auth import accounts
from auth.clients import create_service_client
from bench import BenchError
from models import db

BENCH_EMAIL = "bench@devicecloud.example"


@dataclass(frozen=True)
class Database:
    url: str
    description: str


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


@dataclass(frozen=True)
class Fixtures:
    email: str
    password: str
    service: Credentials
    first_party: Credentials


@contextlib.contextmanager
def temporary_database(workdir: Path) -> Iterator[Database]:
    """A fresh, empty database: a SQLite file in `workdir`, or, when BENCH_DATABASE_URL names
    a PostgreSQL server, a new database there that is dropped afterwards."""
    server_url = os.environ.get("BENCH_DATABASE_URL", "").strip()
    if not server_url:
        path = workdir / "bench.sqlite3"
        yield Database(f"sqlite://{path}", f"SQLite, temporary file {path}")
        return
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchError("BENCH_DATABASE_URL must be a postgres:// URL.")
    name = "devicecloud_bench_" + secrets.token_hex(6)
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield Database(
            urlunsplit(parts._replace(path="/" + name)),
            f"PostgreSQL, new database {name} on {parts.hostname}:{parts.port or 5432}"
            " (dropped afterwards)",
        )
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(server_url: str, statement: str) -> None:
    try:
        connection = await asyncpg.connect(server_url)
    except (OSError, asyncpg.PostgresError) as error:
        raise BenchError(f"cannot connect to BENCH_DATABASE_URL: {error}") from None
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_fixtures(database_url: str) -> Fixtures:
    """Migrate the database, then add a user, a service client and a first-party client."""
    await db.migrate(database_url)
    await db.disconnect()
    await db.connect(database_url)
    try:
        password = secrets.token_urlsafe(16)
        await accounts.sign_up(BENCH_EMAIL, password, email_verified=True)
        service, service_secret = await create_service_client("bench service", first_party=False)
        first_party, first_party_secret = await create_service_client(
            "bench introspector", first_party=True
        )
    finally:
        await db.disconnect()
    return Fixtures(
        email=BENCH_EMAIL,
        password=password,
        service=Credentials(service.client_id, service_secret),
        first_party=Credentials(first_party.client_id, first_party_secret),
    )
