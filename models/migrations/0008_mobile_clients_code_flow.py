"""MOBILE product clients sign customers in by the code flow too (Login with Device Cloud, with
their private-use scheme, RFC 8252): give the existing ones the `authorization_code` grant.
A data update only."""

from tortoise import migrations
from tortoise.migrations import operations as ops

GRANT = "authorization_code"


async def allow_code_flow(apps, schema_editor):
    client = apps.get_model("models", "OAuthClient")
    for row in await client.filter(kind="MOBILE", product_id__isnull=False):
        if GRANT not in row.grant_types:
            await client.filter(id=row.id).update(grant_types=[GRANT, *row.grant_types])


async def disallow_code_flow(apps, schema_editor):
    client = apps.get_model("models", "OAuthClient")
    for row in await client.filter(kind="MOBILE", product_id__isnull=False):
        if GRANT in row.grant_types:
            await client.filter(id=row.id).update(
                grant_types=[g for g in row.grant_types if g != GRANT]
            )


class Migration(migrations.Migration):
    dependencies = [("models", "0007_email_verification")]

    operations = [ops.RunPython(allow_code_flow, disallow_code_flow)]
