"""Migration 0014 on a database that holds device publishes: they were counted in the
transaction that stored them, so counting from the table starts after the last of them (none
is counted twice), and a publish stored after the migration is counted once.

Each step runs in a child process with a database of its own, as in test_migration_0013."""

from __future__ import annotations

from tests.support.database import create_database, drop_database, migration_step

SCRIPT = """
import asyncio, json, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from billing import publishes
from core import clock
from core.broker import InProcessBroker
from fleet.events import EventLog, NewEvent
from models import db
from models.usage import UsageCounter
from tests.support.gateway import make_device
from tests.support.worlds import build_two_products

async def store(product_id, device_id, message_id):
    log = EventLog(InProcessBroker())
    await log.append([NewEvent(product_id, device_id, "temp", "x" * 2000, clock.now(),
                               message_id=message_id)])
    await log.close()

async def main(step, url, rows):
    config = db.tortoise_config(url)
    if step == "before":
        await migrate(config=config, target="models.0013_drop_event_data_operations")
        await Tortoise.close_connections()
        await db.connect(url)  # the models themselves; ledger_positions is not used yet
        products = await build_two_products()
        device, _ = await make_device(products.p)
        for n in range(3):
            await store(products.p.id, device, f"m{n}")
        found = {"device": device, "product": products.p.id}
    else:
        await migrate(config=config)
        await Tortoise.close_connections()
        await db.connect(url)
        connection = Tortoise.get_connection("default")
        device, product = json.loads(rows)
        found = {"positions": await connection.execute_query_dict(
                     "SELECT source, event_id FROM ledger_positions"),
                 "last": (await connection.execute_query_dict(
                     "SELECT MAX(id) AS last FROM events"))[0]["last"],
                 "counted_before": await publishes.count_stored()}
        await store(product, device, "after")
        found["counted_after"] = await publishes.count_stored()
        found["operations"] = await UsageCounter.filter(device_id=device).values_list(
            "operations", flat=True)
    print(json.dumps(found))
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_migration_0014_starts_counting_after_the_events_already_stored(tmp_path) -> None:
    name, url = await create_database(tmp_path)
    try:
        before = await migration_step(SCRIPT, "before", url, [])
        after = await migration_step(SCRIPT, "after", url, [before["device"], before["product"]])
    finally:
        if name:
            await drop_database(name)
    assert after["last"] == 3
    assert after["positions"] == [{"source": "events", "event_id": 3}]
    assert after["counted_before"] == 0
    assert after["counted_after"] == 1
    assert after["operations"] == [2]
