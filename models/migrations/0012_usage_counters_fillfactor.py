from tortoise import migrations
from tortoise.migrations import operations as ops


async def leave_room_for_updates(apps, schema_editor):
    """PostgreSQL: every batch of events adds to the same counter rows; with room left on each
    page, an update stays on its row's page (a heap-only tuple) and writes no index entry."""
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(
            "ALTER TABLE usage_counters SET (fillfactor = 50)")


class Migration(migrations.Migration):
    dependencies = [('models', '0011_usage_ledger')]

    initial = False

    operations = [
        ops.RunPython(leave_room_for_updates, ops.RunPython.noop),
    ]
