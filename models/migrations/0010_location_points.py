from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_openid_connect')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LocationPoint',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', db_constraint=True, to_field='id', related_name='location_points', on_delete=OnDelete.CASCADE)),
                ('product', fields.ForeignKeyField('models.Product', source_field='product_id', null=True, db_constraint=True, to_field='id', related_name='location_points', on_delete=OnDelete.CASCADE)),
                ('lat', fields.FloatField()),
                ('lon', fields.FloatField()),
                ('alt', fields.FloatField(null=True, description='metres')),
                ('accuracy', fields.FloatField(null=True, description='metres')),
                ('heading', fields.FloatField(null=True, description='degrees from north')),
                ('speed', fields.FloatField(null=True, description='metres a second')),
                ('device_time', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('message_id', fields.CharField(max_length=64)),
                ('position', fields.SmallIntField()),
            ],
            options={'table': 'location_points', 'app': 'models', 'unique_together': [('device', 'message_id', 'position')], 'indexes': [Index(fields=['device_id', 'received_at', 'id']), Index(fields=['received_at'])], 'pk_attr': 'id', 'table_description': 'A position a device reported in a `location` frame.'},
            bases=['Model'],
        ),
    ]
