"""Migration 0009 on a database that holds data: adding the OpenID Connect columns (a code's
`nonce` and `auth_time`, a family's `auth_time`, a token's own `scope`, null for the rows
before) keeps every code, family and token and the links between them (on SQLite an added
nullable column does not rebuild the table, which would cascade to the rows that reference
it), the nonce replay check gets its `(client_id, nonce)` index, and the signing keys' table
starts empty.

Each step runs in a child process with a database of its own, as in test_migration_0007."""

from __future__ import annotations

from tests.support.database import create_database, drop_database, migration_step

T = "'2026-01-01 00:00:00+00:00'"
ROWS = [sql.replace("@T", T) for sql in (
    "INSERT INTO users (id, email, email_skeleton, password_hash, created_at) VALUES "
    "(1, 'ada@example.com', 'ada@example.com', 'x', @T)",
    "INSERT INTO oauth_clients (id, client_id, name, grant_types, redirect_uris, scope, "
    "first_party, kind, created_at) VALUES (100, 'dc_app_x', 'App', '[]', '[]', '', false, "
    "'WEB', @T)",
    "INSERT INTO oauth_token_families (id, client_id, user_id, scope, grant_type, created_at, "
    "last_used_at, expires_at, user_agent, ip_address) VALUES "
    "(1, 100, 1, 'devices:read', 'authorization_code', @T, @T, @T, '', '')",
    "INSERT INTO oauth_tokens (id, family_id, access_hash, access_expires_at, issued_at) "
    "VALUES (1, 1, 'a', @T, @T)",
    "INSERT INTO oauth_authorization_codes (id, code_hash, client_id, user_id, redirect_uri, "
    "scope, code_challenge, code_challenge_method, created_at, expires_at, used_at, "
    "family_id) VALUES (1, 'c', 100, 1, 'https://app.example/cb', 'devices:read', 'x', "
    "'S256', @T, @T, @T, 1)",
)]
SCRIPT = """
import asyncio, json, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from models import db

async def main(step, url, rows):
    config = db.tortoise_config(url)
    if step == "before":
        await migrate(config=config, target="models.0008_mobile_clients_code_flow")
        for sql in json.loads(rows):
            await Tortoise.get_connection("default").execute_script(sql)
        print("{}")
    else:
        await migrate(config=config)
        connection = Tortoise.get_connection("default")
        codes = await connection.execute_query_dict(
            "SELECT id, family_id, nonce, auth_time FROM oauth_authorization_codes")
        families = await connection.execute_query_dict(
            "SELECT id, auth_time FROM oauth_token_families")
        tokens = await connection.execute_query_dict(
            "SELECT id, family_id, scope FROM oauth_tokens")
        keys = await connection.execute_query_dict("SELECT COUNT(*) AS n FROM oauth_signing_keys")
        if url.startswith("sqlite"):
            indexes = [[column["name"] for column in await connection.execute_query_dict(
                            f"PRAGMA index_info('{index['name']}')")]
                       for index in await connection.execute_query_dict(
                            "PRAGMA index_list('oauth_authorization_codes')")]
        else:
            indexes = [[column["attname"] for column in await connection.execute_query_dict(
                            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                            "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                            "WHERE i.indexrelid = $1::regclass "
                            "ORDER BY array_position(i.indkey, a.attnum)", [index["indexname"]])]
                       for index in await connection.execute_query_dict(
                            "SELECT indexname FROM pg_indexes "
                            "WHERE tablename = 'oauth_authorization_codes'")]
        print(json.dumps({"codes": codes, "families": families, "tokens": tokens,
                          "keys": keys[0]["n"],
                          "nonce_index": ["client_id", "nonce"] in indexes}))
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


async def _step(step: str, url: str) -> dict:
    return await migration_step(SCRIPT, step, url, ROWS)


async def test_migration_0009_adds_the_openid_columns_and_keeps_every_row(tmp_path) -> None:
    name, url = await create_database(tmp_path)
    try:
        await _step("before", url)
        after = await _step("after", url)
    finally:
        if name:
            await drop_database(name)
    assert after == {
        "codes": [{"id": 1, "family_id": 1, "nonce": None, "auth_time": None}],
        "families": [{"id": 1, "auth_time": None}],
        "tokens": [{"id": 1, "family_id": 1, "scope": None}],
        "keys": 0,
        "nonce_index": True,
    }
