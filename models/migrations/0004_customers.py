from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuthorizationCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_hash', fields.CharField(unique=True, max_length=64)),
                ('client', fields.ForeignKeyField('models.OAuthClient', source_field='client_id', db_constraint=True, to_field='id', related_name='authorization_codes', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='authorization_codes', on_delete=OnDelete.CASCADE)),
                ('redirect_uri', fields.TextField(unique=False)),
                ('scope', fields.CharField(default='', max_length=500)),
                ('code_challenge', fields.CharField(max_length=128)),
                ('code_challenge_method', fields.CharField(max_length=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('family', fields.ForeignKeyField('models.TokenFamily', source_field='family_id', null=True, db_constraint=True, to_field='id', related_name='authorization_codes', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'oauth_authorization_codes', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An authorization code (RFC 6749 §4.1) with its PKCE challenge, stored hashed. Single'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Consent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='consents', on_delete=OnDelete.CASCADE)),
                ('client', fields.ForeignKeyField('models.OAuthClient', source_field='client_id', db_constraint=True, to_field='id', related_name='consents', on_delete=OnDelete.CASCADE)),
                ('scope', fields.CharField(default='', max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_consents', 'app': 'models', 'unique_together': [('user', 'client')], 'pk_attr': 'id', 'table_description': "A user's consent to a client acting for them with these scopes: remembered, so the"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Customer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product', fields.ForeignKeyField('models.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='customers', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(max_length=254)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='customer_links', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_active_at', fields.DatetimeField(null=True, description='last token use or device activity', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'customers', 'app': 'models', 'unique_together': [('product', 'email'), ('product', 'user')], 'indexes': [Index(fields=['product_id', 'created_at']), Index(fields=['product_id', 'last_active_at'])], 'pk_attr': 'id', 'table_description': "Someone who uses a product's devices, signed in through the product creator's app."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ClaimCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_hash', fields.CharField(unique=True, max_length=64)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='claim_codes', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('device', fields.ForeignKeyField('models.Device', source_field='device_id', null=True, db_constraint=True, to_field='id', related_name='claim_codes', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'claim_codes', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'used_at'])], 'pk_attr': 'id', 'table_description': 'A single-use code a customer gives a device, which presents it in its hello to become'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Device',
            name='claimed_at',
            field=fields.DatetimeField(null=True, description='when its customer claimed it', auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Device',
            name='customer',
            field=fields.ForeignKeyField('models.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='devices', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddIndex(
            model_name='Device',
            index=Index(fields=['customer_id']),
        ),
        ops.AddField(
            model_name='OAuthClient',
            name='max_token_lifetime',
            field=fields.IntField(null=True, description='longest customer token it may mint, seconds (two-legged)'),
        ),
        ops.AddField(
            model_name='OAuthClient',
            name='owner',
            field=fields.ForeignKeyField('models.User', source_field='owner_id', null=True, description='the user who registered this third-party app', db_constraint=True, to_field='id', related_name='apps', on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='TokenFamily',
            name='customer',
            field=fields.ForeignKeyField('models.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='token_families', on_delete=OnDelete.CASCADE),
        ),
    ]
