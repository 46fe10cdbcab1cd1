from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0010_location_points')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BillingAccount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.OneToOneField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='billing_account', on_delete=OnDelete.CASCADE)),
                ('plan', fields.CharField(default='FREE', max_length=16)),
                ('blocks', fields.IntField(default=1)),
                ('contract_devices', fields.IntField(null=True)),
                ('contract_data_operations', fields.BigIntField(null=True)),
                ('manufacturing_grace', fields.BooleanField(default=False)),
                ('paused_from', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paused_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_accounts', 'app': 'models', 'pk_attr': 'id', 'table_description': "An organization's plan (`billing.plans.PlanKind`), its blocks, an ENTERPRISE contract's"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeviceOnlineDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', db_constraint=True, to_field='id', related_name='online_days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
            ],
            options={'table': 'device_online_days', 'app': 'models', 'unique_together': [('device', 'day')], 'pk_attr': 'id', 'table_description': 'A UTC day on which the device was online (connected, or heard from while connected):'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=32)),
                ('key', fields.CharField(max_length=100)),
                ('title', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notifications', 'app': 'models', 'unique_together': [('organization', 'key')], 'indexes': [Index(fields=['organization_id', 'created_at', 'id'])], 'pk_attr': 'id', 'table_description': "Something the organization's owner and administrators are told in the app. `key` makes"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationRead',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('notification', fields.ForeignKeyField('models.Notification', source_field='notification_id', db_constraint=True, to_field='id', related_name='reads', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notification_reads', on_delete=OnDelete.CASCADE)),
                ('read_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification_reads', 'app': 'models', 'unique_together': [('notification', 'user')], 'pk_attr': 'id', 'table_description': 'A user marked a notification read.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PlanChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='plan_changes', on_delete=OnDelete.CASCADE)),
                ('plan', fields.CharField(max_length=16)),
                ('blocks', fields.IntField()),
                ('contract_devices', fields.IntField(null=True)),
                ('contract_data_operations', fields.BigIntField(null=True)),
                ('manufacturing_grace', fields.BooleanField(null=True)),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('billed_from', fields.CharField(max_length=7)),
                ('changed_by', fields.ForeignKeyField('models.User', source_field='changed_by_id', null=True, db_constraint=True, to_field='id', related_name='plan_changes', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'plan_changes', 'app': 'models', 'indexes': [Index(fields=['organization_id', 'changed_at'])], 'pk_attr': 'id', 'table_description': "A change of an organization's plan or blocks (an ENTERPRISE contract's limits and grace"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SimChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', db_constraint=True, to_field='id', related_name='sim_changes', on_delete=OnDelete.CASCADE)),
                ('active', fields.BooleanField()),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('changed_by', fields.ForeignKeyField('models.User', source_field='changed_by_id', null=True, db_constraint=True, to_field='id', related_name='sim_changes', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'sim_changes', 'app': 'models', 'indexes': [Index(fields=['device_id', 'changed_at'])], 'pk_attr': 'id', 'table_description': "A cellular device's SIM activated or deactivated (`setSimActive`), and when."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageCounter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization_id', fields.BigIntField()),
                ('period', fields.CharField(max_length=7)),
                ('day', fields.DateField()),
                ('product_id', fields.BigIntField()),
                ('device_id', fields.CharField(max_length=24)),
                ('kind', fields.CharField(max_length=32)),
                ('operations', fields.BigIntField(default=0)),
            ],
            options={'table': 'usage_counters', 'app': 'models', 'unique_together': [('organization_id', 'day', 'product_id', 'device_id', 'kind')], 'indexes': [Index(fields=['organization_id', 'period', 'product_id']), Index(fields=['period', 'organization_id'])], 'pk_attr': 'id', 'table_description': 'Data operations per organization, period, product, device, day, kind.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsagePause',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='usage_pauses', on_delete=OnDelete.CASCADE)),
                ('period', fields.CharField(max_length=7)),
                ('paused_from', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paused_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lifted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'usage_pauses', 'app': 'models', 'unique_together': [('organization', 'period', 'paused_from')], 'pk_attr': 'id', 'table_description': "A pause of a FREE organization's devices in a period (`YYYY-MM`), kept after it ends:"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageThreshold',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('models.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='usage_thresholds', on_delete=OnDelete.CASCADE)),
                ('period', fields.CharField(max_length=7)),
                ('metric', fields.CharField(max_length=20)),
                ('threshold', fields.SmallIntField()),
                ('used', fields.BigIntField()),
                ('limit', fields.BigIntField()),
                ('crossed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'usage_thresholds', 'app': 'models', 'unique_together': [('organization', 'period', 'metric', 'threshold')], 'pk_attr': 'id', 'table_description': "A warning threshold (70, 90, 100 percent) an organization's usage of a limit crossed in a"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Device',
            name='iccid',
            field=fields.CharField(null=True, description="a cellular device's SIM (its changes: sim_changes)", max_length=22),
        ),
    ]
