"""Migration 0008 on a database that holds clients: existing MOBILE product clients get the
code flow's grant, every other client keeps its grants, and going back removes it again.

Each step runs in a child process with a database of its own, as in the test of 0007."""

from __future__ import annotations

from tests.support.database import create_database, drop_database, migration_step

T = "'2026-01-01 00:00:00+00:00'"
ROWS = [sql.replace("@T", T) for sql in (
    "INSERT INTO organizations (id, name, slug, created_at) VALUES (1, 'Acme', 'acme', @T)",
    "INSERT INTO products (id, organization_id, name, slug, description, platform, "
    "customer_auth, created_at, event_data_limit) VALUES "
    "(1, 1, 'Kettle', 'kettle', '', 'Photon', 'LOGIN_WITH_PLATFORM', @T, 622)",
    "INSERT INTO oauth_clients (id, client_id, name, secret_hash, grant_types, redirect_uris, "
    "scope, first_party, product_id, kind, created_at) VALUES "
    "(10, 'kettle-mobile', 'Phone', 'h', '[\"password\", \"refresh_token\", "
    "\"client_credentials\"]', "
    "'[\"com.example.kettle:/cb\"]', '', false, 1, 'MOBILE', @T), "
    "(11, 'kettle-web', 'Web', 'h', "
    "'[\"authorization_code\", \"password\", \"refresh_token\", \"client_credentials\"]', "
    "'[\"https://kettle.example/cb\"]', '', false, 1, 'WEB', @T), "
    "(12, 'kettle-server', 'Server', 'h', '[\"client_credentials\"]', '[]', '', false, 1, "
    "'SERVER', @T)",
)]
SCRIPT = """
import asyncio, json, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from models import db

async def main(step, url, rows):
    config = db.tortoise_config(url)
    if step == "before":
        await migrate(config=config, target="models.0007_email_verification")
        for sql in json.loads(rows):
            await Tortoise.get_connection("default").execute_script(sql)
    elif step == "after":
        await migrate(config=config)
    else:
        await migrate(config=config, target="models.0007_email_verification")
    connection = Tortoise.get_connection("default")
    clients = await connection.execute_query_dict(
        "SELECT client_id, grant_types FROM oauth_clients ORDER BY id")
    print(json.dumps({c["client_id"]: c["grant_types"] if isinstance(c["grant_types"], list)
                      else json.loads(c["grant_types"]) for c in clients}))
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


async def _step(step: str, url: str) -> dict:
    return await migration_step(SCRIPT, step, url, ROWS)


async def test_migration_0008_gives_mobile_clients_the_code_flow_and_back(tmp_path) -> None:
    name, url = await create_database(tmp_path)
    try:
        before = await _step("before", url)
        after = await _step("after", url)
        back = await _step("back", url)
    finally:
        if name:
            await drop_database(name)
    web = ["authorization_code", "password", "refresh_token", "client_credentials"]
    assert before == {
        "devicecloud": ["password", "refresh_token"],
        "kettle-mobile": ["password", "refresh_token", "client_credentials"],
        "kettle-web": web,
        "kettle-server": ["client_credentials"],
    }
    assert after == before | {"kettle-mobile": web}
    assert back == before
