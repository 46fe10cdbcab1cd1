from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0002_first_party_client')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Device',
            name='rate_limited_events',
            field=fields.IntField(default=0, description='publishes refused for going over the rate limit', db_default=0),
        ),
        ops.AlterModelOptions(
            name='Event',
            options={'table': 'events', 'app': 'models', 'unique_together': [('device', 'message_id')], 'indexes': [Index(fields=['product_id', 'id']), Index(fields=['device_id', 'id']), Index(fields=['published_at'])], 'pk_attr': 'id', 'table_description': "An event published by a device, by a product's server or by the cloud (`spark/status`)."},
        ),
        ops.AddField(
            model_name='Event',
            name='message_id',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Event',
            name='private',
            field=fields.BooleanField(default=True, db_default=True),
        ),
        ops.AddConstraint(
            model_name='Event',
            constraint=UniqueConstraint(fields=('device', 'message_id'), name=None),
        ),
        ops.AddField(
            model_name='Product',
            name='event_data_limit',
            field=fields.IntField(default=1024, description='bytes of data an event may carry', db_default=1024),
        ),
    ]
