"""Migration 0013 on a database that holds events: dropping the unread `data_operations` column
keeps every event and drops the column in place, without rebuilding the table (the same
SQLite root page, the same PostgreSQL relation file), which on a large log would copy every
event.

Each step runs in a child process with a database of its own, as in test_migration_0007."""

from __future__ import annotations

from tests.support.database import create_database, drop_database, migration_step

ROWS = [
    "INSERT INTO events (id, name, data, published_at, private, data_operations) VALUES "
    "(1, 'spark/status', 'online', '2026-01-01 00:00:00+00:00', true, 3)",
]
SCRIPT = """
import asyncio, json, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from models import db

async def storage(connection, url):
    if url.startswith("sqlite"):
        rows = await connection.execute_query_dict(
            "SELECT rootpage AS at FROM sqlite_master WHERE name = 'events'")
        columns = [c["name"] for c in await connection.execute_query_dict(
            "PRAGMA table_info('events')")]
    else:
        rows = await connection.execute_query_dict(
            "SELECT relfilenode AS at FROM pg_class WHERE relname = 'events'")
        columns = [c["column_name"] for c in await connection.execute_query_dict(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' "
            "ORDER BY ordinal_position")]
    return {"at": rows[0]["at"], "columns": columns}

async def main(step, url, rows):
    config = db.tortoise_config(url)
    if step == "before":
        await migrate(config=config, target="models.0012_usage_counters_fillfactor")
        connection = Tortoise.get_connection("default")
        for sql in json.loads(rows):
            await connection.execute_script(sql)
    else:
        await migrate(config=config)
        connection = Tortoise.get_connection("default")
    found = await storage(connection, url)
    found["events"] = await connection.execute_query_dict(
        "SELECT id, name, data FROM events ORDER BY id")
    print(json.dumps(found))
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_migration_0013_drops_the_column_in_place_and_keeps_every_event(tmp_path) -> None:
    name, url = await create_database(tmp_path)
    try:
        before = await migration_step(SCRIPT, "before", url, ROWS)
        after = await migration_step(SCRIPT, "after", url, ROWS)
    finally:
        if name:
            await drop_database(name)
    assert "data_operations" in before["columns"]
    assert after["columns"] == [c for c in before["columns"] if c != "data_operations"]
    assert after["at"] == before["at"]
    assert after["events"] == before["events"] == [
        {"id": 1, "name": "spark/status", "data": "online"}]
