from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


async def start_after_the_stored_events(apps, schema_editor):
    """The events stored until now were counted in the transaction that stored them: counting
    from the table starts after the last of them, so none is counted twice."""
    await schema_editor.client.execute_script(
        "INSERT INTO ledger_positions (source, event_id)"
        " SELECT 'events', COALESCE(MAX(id), 0) FROM events")


class Migration(migrations.Migration):
    dependencies = [('models', '0013_drop_event_data_operations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LedgerPosition',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(unique=True, max_length=32)),
                ('event_id', fields.BigIntField()),
            ],
            options={'table': 'ledger_positions', 'app': 'models', 'pk_attr': 'id', 'table_description': "How far a record the ledger counts from has been counted: for `source='events'`, every"},
            bases=['Model'],
        ),
        ops.RunPython(start_after_the_stored_events, ops.RunPython.noop),
    ]
