"""Migration 0007 on a database that holds data: every account keeps its membership, gets its
confusable skeleton (an account that already looked like an older one is told apart by its
ID) and starts unverified; duplicate pending invitations collapse to the newest.

Each step runs in a child process with a database of its own, so this process's ORM stays on
the suite's database and each migration run starts from a fresh ORM, as `devicecloud migrate`
does."""

from __future__ import annotations

from core.confusables import skeleton
from tests.support.database import create_database, drop_database, migration_step

# The second account's first letter is FULLWIDTH LATIN SMALL LETTER D: a look-alike.
T = "'2026-01-01 00:00:00+00:00'"  # every timestamp (@T) of the rows below
ROWS = [sql.replace("@T", T) for sql in (
    "INSERT INTO users (id, email, password_hash, created_at) VALUES "
    "(1, 'demo@example.com', 'x', @T), (2, '\uff44emo@example.com', 'x', @T), "
    "(3, 'newhire@example.com', 'x', @T)",
    "INSERT INTO organizations (id, name, slug, created_at) VALUES (1, 'Acme', 'acme', @T)",
    "INSERT INTO memberships (id, organization_id, user_id, role, joined_at) VALUES "
    "(1, 1, 1, 'OWNER', @T), (2, 1, 2, 'VIEWER', @T)",
    "INSERT INTO invitations (id, organization_id, email, role, invited_by_id, status, "
    "created_at, last_sent_at, expires_at) VALUES "
    "(1, 1, 'newhire@example.com', 'VIEWER', 1, 'PENDING', @T, @T, @T), "
    "(2, 1, 'newhire@example.com', 'SUPPORT', 1, 'PENDING', @T, @T, @T), "
    "(3, 1, 'gone@example.com', 'VIEWER', 1, 'DECLINED', @T, @T, @T)",
)]
SCRIPT = """
import asyncio, json, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from models import db

async def main(step, url, rows):
    config = db.tortoise_config(url)
    if step == "before":
        await migrate(config=config, target="models.0006_browser_sessions")
        for sql in json.loads(rows):
            await Tortoise.get_connection("default").execute_script(sql)
        print("{}")
    else:
        await migrate(config=config)
        connection = Tortoise.get_connection("default")
        users = await connection.execute_query_dict(
            "SELECT id, email_skeleton, email_verified_at FROM users ORDER BY id")
        members = await connection.execute_query_dict(
            "SELECT user_id FROM memberships ORDER BY user_id")
        invitations = await connection.execute_query_dict(
            "SELECT id, status FROM invitations ORDER BY id")
        print(json.dumps({"users": users, "members": members, "invitations": invitations}))
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


async def _step(step: str, url: str) -> dict:
    return await migration_step(SCRIPT, step, url, ROWS)


async def test_migration_0007_keeps_accounts_and_teams_and_backfills_them(tmp_path) -> None:
    name, url = await create_database(tmp_path)
    try:
        await _step("before", url)
        after = await _step("after", url)
    finally:
        if name:
            await drop_database(name)
    demo = skeleton("demo@example.com")
    assert after == {
        "users": [
            {"id": 1, "email_skeleton": demo, "email_verified_at": None},
            {"id": 2, "email_skeleton": f"{demo}#2", "email_verified_at": None},
            {"id": 3, "email_skeleton": skeleton("newhire@example.com"),
             "email_verified_at": None},
        ],
        "members": [{"user_id": 1}, {"user_id": 2}],
        "invitations": [
            {"id": 1, "status": "REVOKED"},
            {"id": 2, "status": "PENDING"},
            {"id": 3, "status": "DECLINED"},
        ],
    }
