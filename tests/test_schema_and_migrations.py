"""The committed artefacts match the code: schema.graphql and the migrations."""

from __future__ import annotations

from api.graphql.schema import SCHEMA_FILE, export_sdl
from core.settings import get_settings
from models import db


def test_schema_graphql_is_current():
    assert SCHEMA_FILE.read_text() == export_sdl(get_settings()), (
        "schema.graphql is stale: run `make schema` and commit it."
    )


async def test_models_and_migrations_agree(database_url):
    from tortoise import Tortoise
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = db.tortoise_config(database_url)
    autodetector = MigrationAutodetector(Tortoise.apps, config["apps"])
    changes = await autodetector.changes()
    assert [w.name for w in changes] == [], (
        "The models changed without a migration: run `devicecloud makemigrations --name …`."
    )
