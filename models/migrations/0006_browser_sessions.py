from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_customer_sign_in_grants')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='sessions_valid_after',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
