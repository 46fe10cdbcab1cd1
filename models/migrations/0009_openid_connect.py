from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_mobile_clients_code_flow')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SigningKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('generation', fields.IntField(unique=True)),
                ('kid', fields.CharField(unique=True, max_length=64)),
                ('algorithm', fields.CharField(max_length=10)),
                ('public_jwk', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('encrypted_private_key', fields.TextField(description='base64url of the AES-GCM nonce and ciphertext of the PEM private key', unique=False)),
                ('created_at', fields.DatetimeField(description='when it was published', auto_now=False, auto_now_add=False)),
                ('activated_at', fields.DatetimeField(description='when it starts signing', auto_now=False, auto_now_add=False)),
                ('retired_at', fields.DatetimeField(null=True, description='when it stops signing', auto_now=False, auto_now_add=False)),
                ('withdrawn_at', fields.DatetimeField(null=True, description='when it left the JWKS before its overlap ended (a leaked key)', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_signing_keys', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A key that signs ID tokens (auth/signing_keys.py). The private key is stored only'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AuthorizationCode',
            name='auth_time',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='AuthorizationCode',
            name='nonce',
            field=fields.CharField(null=True, max_length=255),
        ),
        # A plain CREATE INDEX on both databases: no table is rebuilt.
        ops.AddIndex(
            model_name='AuthorizationCode',
            index=Index(fields=['client_id', 'nonce']),
        ),
        ops.AddField(
            model_name='Token',
            name='scope',
            field=fields.CharField(null=True, max_length=500),
        ),
        ops.AddField(
            model_name='TokenFamily',
            name='auth_time',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
