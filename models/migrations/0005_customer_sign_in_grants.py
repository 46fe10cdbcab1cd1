"""Product apps created before customers existed could only act for themselves
(client_credentials): give WEB and MOBILE clients the grants that sign customers in."""

from tortoise import migrations
from tortoise.migrations import operations as ops

GRANTS = {
    "WEB": ["authorization_code", "password", "refresh_token", "client_credentials"],
    "MOBILE": ["password", "refresh_token", "client_credentials"],
}


async def grant_sign_in(apps, schema_editor):
    client = apps.get_model("models", "OAuthClient")
    for kind, grants in GRANTS.items():
        await client.filter(kind=kind, product_id__isnull=False).update(grant_types=grants)


async def act_for_themselves(apps, schema_editor):
    client = apps.get_model("models", "OAuthClient")
    await client.filter(kind__in=list(GRANTS), product_id__isnull=False).update(
        grant_types=["client_credentials"]
    )


class Migration(migrations.Migration):
    dependencies = [("models", "0004_customers")]

    operations = [ops.RunPython(grant_sign_in, act_for_themselves)]
