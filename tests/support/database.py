"""A database of the test process's own: a fresh PostgreSQL database or SQLite file, built by
running the migrations (never `generate_schemas`, so the migrations are tested too)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tortoise import Tortoise

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
