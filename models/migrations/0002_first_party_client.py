"""The built-in public client `devicecloud` used by first-party tools (password grant)."""

from datetime import UTC, datetime

from tortoise import migrations
from tortoise.migrations import operations as ops

FIRST_PARTY_CLIENT_ID = "devicecloud"


async def create_client(apps, schema_editor):
    client = apps.get_model("models", "OAuthClient")
    await client.create(
        client_id=FIRST_PARTY_CLIENT_ID,
        name="Device Cloud",
        secret_hash=None,
        grant_types=["password", "refresh_token"],
        redirect_uris=[],
        scope="",
        first_party=True,
        created_at=datetime.now(UTC),
    )


async def delete_client(apps, schema_editor):
    await apps.get_model("models", "OAuthClient").filter(client_id=FIRST_PARTY_CLIENT_ID).delete()


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(create_client, delete_client)]
