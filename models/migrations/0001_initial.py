from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='OAuthClient',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client_id', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=100)),
                ('secret_hash', fields.CharField(null=True, max_length=64)),
                ('grant_types', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('redirect_uris', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('scope', fields.CharField(default='', max_length=500)),
                ('first_party', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_clients', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A registered OAuth client. Public clients have no secret, and secrets are stored hashed.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ThrottleCounter',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=300)),
                ('failures', fields.IntField(default=0)),
                ('window_started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'throttle_counters', 'app': 'models', 'pk_attr': 'key', 'table_description': 'Failed sign-in attempts for one key (`account:<email>` or `address:<ip>`).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id', 'table_description': "A person with a platform account (a product creator's team member, or a developer)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TokenFamily',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.OAuthClient', source_field='client_id', db_constraint=True, to_field='id', related_name='token_families', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='token_families', on_delete=OnDelete.CASCADE)),
                ('scope', fields.CharField(default='', max_length=500)),
                ('grant_type', fields.CharField(max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(description='when the newest token of the family expires', auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('user_agent', fields.CharField(default='', max_length=255)),
                ('ip_address', fields.CharField(default='', max_length=45)),
            ],
            options={'table': 'oauth_token_families', 'app': 'models', 'indexes': [Index(fields=['user_id', 'revoked_at'])], 'pk_attr': 'id', 'table_description': 'One sign-in: the chain of tokens issued from one grant, refreshed by rotation.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Token',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('family', fields.ForeignKeyField('models.TokenFamily', source_field='family_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('access_hash', fields.CharField(unique=True, max_length=64)),
                ('access_expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('refresh_hash', fields.CharField(null=True, unique=True, max_length=64)),
                ('refresh_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('refresh_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_tokens', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An access token and (optionally) its refresh token, stored only as SHA-256 hashes.'},
            bases=['Model'],
        ),
    ]
