"""Email verification and password reset links, confusable skeletons of account emails
(backfilled; accounts that already share a skeleton keep their account, told apart by their
ID), and at most one pending invitation per address and team."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

from core.confusables import skeleton




async def backfill_skeletons(apps, schema_editor):
    user = apps.get_model("models", "User")
    taken = set()
    for row in await user.all().order_by("id"):
        value = skeleton(row.email)
        if value in taken:
            value = f"{value}#{row.id}"
        taken.add(value)
        await user.filter(id=row.id).update(email_skeleton=value)


async def close_duplicate_invitations(apps, schema_editor):
    """Keep the newest pending invitation per address and team; revoke the others."""
    invitation = apps.get_model("models", "Invitation")
    newest = {}
    for row in await invitation.filter(status="PENDING").order_by("-id"):
        key = (row.organization_id, row.email)
        if key in newest:
            await invitation.filter(id=row.id).update(status="REVOKED")
        else:
            newest[key] = row.id


async def nothing(apps, schema_editor):
    return None

class Migration(migrations.Migration):
    dependencies = [('models', '0006_browser_sessions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountToken',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='account_tokens', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=20)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('email', fields.CharField(max_length=254)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'account_tokens', 'app': 'models', 'indexes': [Index(fields=['user_id', 'purpose'])], 'pk_attr': 'id', 'table_description': "A single-use, expiring link emailed to an account. Only the token's SHA-256 is stored."},
            bases=['Model'],
        ),
        ops.RunPython(close_duplicate_invitations, nothing),
        # PostgreSQL and SQLite both have partial indexes; Tortoise's SQLite editor does not.
        ops.RunSQL(
            "CREATE UNIQUE INDEX invitations_one_pending ON invitations (organization_id, email) "
            "WHERE status = 'PENDING'",
            "DROP INDEX invitations_one_pending",
        ),
        ops.AddField(
            model_name='User',
            name='email_skeleton',
            field=fields.CharField(null=True, max_length=1024),
        ),
        ops.RunPython(backfill_skeletons, nothing),
        # A unique index, not a unique NOT NULL column: on SQLite, altering the column would
        # rebuild the users table, and the rebuild would cascade-delete every row that
        # references a user (memberships, invitations, tokens).
        ops.RunSQL(
            "CREATE UNIQUE INDEX users_email_skeleton ON users (email_skeleton)",
            "DROP INDEX users_email_skeleton",
        ),
        ops.AddField(
            model_name='User',
            name='email_verified_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
