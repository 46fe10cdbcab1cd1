"""A database of the test process's own: a fresh PostgreSQL database or SQLite file, built by
running the migrations (never `generate_schemas`, so the migrations are tested too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tortoise import Tortoise, connections

from core.context import request_id
from models import db
from tests.support.constants import TEST_DATABASE, TEST_POSTGRES_URL, WORKER


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(directory: Path) -> tuple[str, str]:
    """A new, empty database: its PostgreSQL name ("" for SQLite, a file in `directory`) and
    URL. Each test process (each xdist worker) gets its own, so no two share rows."""
    if TEST_DATABASE == "sqlite":
        return "", f"sqlite://{directory / 'test.sqlite3'}"
    if TEST_DATABASE != "postgres":
        pytest.fail(f"TEST_DATABASE must be sqlite or postgres, not {TEST_DATABASE!r}")
    name = f"dc_test_{WORKER}_{secrets.token_hex(6)}"
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


ROOT = Path(__file__).resolve().parent.parent.parent


async def migration_step(script: str, step: str, url: str, rows: list[str]) -> Any:
    """Run a migration test's `script` in a process of its own (migrations run as the CLI
    runs them, on a connection of their own) with `step`, the database URL and `rows` (SQL
    to insert, as JSON); what the script printed last, as JSON."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, step, url, json.dumps(rows), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), timeout=120)
    assert child.returncode == 0, err.decode()
    return json.loads(out.decode().splitlines()[-1])


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def models_children_first() -> list[type]:
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


@contextlib.contextmanager
def recorded_queries(monkeypatch: pytest.MonkeyPatch, *, serving_requests: bool = False
                     ) -> Iterator[list[str]]:
    """The SQL of every statement the default connection runs while the block runs (in this
    process, the live server's included); with `serving_requests`, only those run while serving
    an HTTP request, not those of background work (a sweeper, an earlier test's connection)."""
    client_class = type(connections.get("default"))
    seen: list[str] = []
    for name in ("execute_query", "execute_query_dict", "execute_insert", "execute_many"):
        original = getattr(client_class, name)

        async def recording(self: Any, query: str, *args: Any, _original: Any = original,
                            **kwargs: Any) -> Any:
            if not serving_requests or request_id.get():
                seen.append(query)
            return await _original(self, query, *args, **kwargs)

        monkeypatch.setattr(client_class, name, recording)
    try:
        yield seen
    finally:
        monkeypatch.undo()
