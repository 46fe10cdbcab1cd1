from tortoise import migrations
from tortoise.migrations import operations as ops


class DropColumn(ops.RemoveField):
    """RemoveField by `ALTER TABLE … DROP COLUMN` on both databases. Tortoise's SQLite editor
    would rebuild the table (copy every event); SQLite drops a plain column in place since
    3.35, and PostgreSQL only marks it dropped."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor:
            model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
            await state_editor.client.execute_script(
                f'ALTER TABLE "{model._meta.db_table}" DROP COLUMN "{self.name}"')


class Migration(migrations.Migration):
    dependencies = [('models', '0012_usage_counters_fillfactor')]

    initial = False

    operations = [
        DropColumn(model_name='Event', name='data_operations'),
    ]
