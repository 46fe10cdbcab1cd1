"""Database configuration and lifecycle shared by the app, the CLI and the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api.migrate import migrate as run_migrations
from tortoise.models import Model

from core.settings import get_settings

MODEL_MODULES = [
    "models.accounts",
    "models.oauth",
    "models.organizations",
    "models.products",
    "models.outbox",
    "models.devices",
    "models.customers",
    "models.usage",
]
APP_LABEL = "models"

# Several processes (app workers, the CLI, tests) may share one SQLite file: wait for a
# writer instead of failing with "database is locked".
_SQLITE_DEFAULTS = {"busy_timeout": "10000", "synchronous": "NORMAL"}


def _with_sqlite_defaults(url: str) -> str:
    if not url.startswith("sqlite://"):
        return url
    parts = urlsplit(url)
    params = dict(_SQLITE_DEFAULTS)
    params.update(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode(params)))


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _with_sqlite_defaults(database_url)},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "migrations": "models.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def connect(database_url: str) -> None:
    """Open the connection pool. The schema is the migrations' job, never `generate_schemas`."""
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate(database_url: str) -> None:
    """Apply every pending migration."""
    # Data migrations (RunPython) use historical models, and Tortoise caches INSERT statements
    # per table: drop them before (today's model's statement would insert columns a
    # historical model lacks) and after (the historical one's would leave out newer columns).
    EXECUTOR_CACHE.clear()
    await run_migrations(config=tortoise_config(database_url))
    EXECUTOR_CACHE.clear()


async def disconnect() -> None:
    await Tortoise.close_connections()


async def delete_before(model: type[Model], field: str, cutoff: datetime, batch: int) -> int:
    """Delete the rows of `model` whose `field` is before `cutoff`, oldest first, `batch` at a
    time (short transactions that never hold the table for long). Returns how many."""
    total = 0
    while True:
        ids = await (
            model.filter(**{f"{field}__lt": cutoff})
            .order_by(field)
            .limit(batch)
            .values_list("id", flat=True)
        )
        if not ids:
            return total
        total += await model.filter(id__in=ids).delete()
        if len(ids) < batch:
            return total


def _configured_tortoise_orm() -> dict[str, Any]:
    return tortoise_config(get_settings().database_url)


def __getattr__(name: str) -> Any:
    """`TORTOISE_ORM`, for Tortoise's own CLI and `devicecloud makemigrations`."""
    if name == "TORTOISE_ORM":
        return _configured_tortoise_orm()
    raise AttributeError(name)
