"""Time to import a file of 100,000 device IDs into a product over HTTP (a GraphQL multipart
upload), on the bench's database: the devices are provisioned directly in it first.

`python -m bench.device_import` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from strawberry import relay

from auth import accounts, tokens
from auth.principals import UserPrincipal
from bench import BenchError
from bench.database import create_fixtures, temporary_database
from bench.server import running_server
from core.settings import get_settings
from fleet import organizations, products
from fleet.provisioning import provision_devices
from models import db
from models.oauth import OAuthClient

DEVICE_COUNT = 100_000
IMPORT_EMAIL = "bench-import@devicecloud.example"
FIRST_PARTY_CLIENT_ID = "devicecloud"
IMPORT = (
    "mutation($input: ImportDevicesInput!) { importDevices(input: $input) {"
    " importedDeviceIds userErrors { field message code } } }"
)
TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class ImportSetup:
    """A product of the bench user's organization, devices to import, and a token."""

    token: str
    product_global_id: str
    device_ids: list[str]
    provision_seconds: float


@dataclass(frozen=True)
class ImportFigure:
    count: int
    file_bytes: int
    seconds: float
    provision_seconds: float

    @property
    def ids_per_second(self) -> float:
        return self.count / self.seconds


async def seed(database_url: str, count: int = DEVICE_COUNT) -> ImportSetup:
    """An account of its own with an organization and a product, `count` devices provisioned
    in the registry, and an access token for the account."""
    await db.connect(database_url)
    try:
        user = await accounts.sign_up(IMPORT_EMAIL, secrets.token_urlsafe(16), email_verified=True)
        client = await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID)
        principal = UserPrincipal(client=client, family_id=0, scope="", user=user)
        organization = await organizations.create_organization(principal, "Bench import",
                                                               "bench-import")
        product = await products.create_product(
            principal, organization.id, name="Bench import", slug="bench-import",
            description="", platform="Photon", customer_auth="SIMPLE",
        )
        started = time.perf_counter()
        devices = await provision_devices(count, "Photon")
        provision_seconds = time.perf_counter() - started
        issued = await tokens.issue(
            client=client, user=user, scope="", grant_type="password",
            access_lifetime=get_settings().access_token_lifetime, refresh_lifetime=None,
        )
    finally:
        await db.disconnect()
    return ImportSetup(
        token=issued.access_token,
        product_global_id=str(relay.GlobalID("Product", str(product.id))),
        device_ids=[device_id for device_id, _ in devices],
        provision_seconds=provision_seconds,
    )


async def run(base_url: str, token: str, product_global_id: str, device_ids: list[str],
              provision_seconds: float = 0.0) -> ImportFigure:
    """Upload `device_ids` as a CRLF text file to `importDevices` and time the request, from
    sending it to the whole answer; every device must be imported."""
    content = ("\r\n".join(device_ids) + "\r\n").encode()
    operations = {"query": IMPORT,
                  "variables": {"input": {"productId": product_global_id, "file": None}}}
    files = {
        "operations": (None, json.dumps(operations)),
        "map": (None, json.dumps({"0": ["variables.input.file"]})),
        "0": ("devices.txt", content, "text/plain"),
    }
    async with httpx.AsyncClient(base_url=base_url, trust_env=False,
                                 timeout=TIMEOUT_SECONDS) as client:
        started = time.perf_counter()
        response = await client.post("/graphql", files=files,
                                     headers={"Authorization": f"Bearer {token}"})
        body = response.json() if response.status_code == 200 else None
        seconds = time.perf_counter() - started
    if body is None or "errors" in body:
        raise BenchError(f"the import failed: {response.status_code} {response.text[:500]}")
    payload = body["data"]["importDevices"]
    if payload["userErrors"] or len(payload["importedDeviceIds"]) != len(device_ids):
        raise BenchError(f"the import did not import every device: {payload['userErrors']}")
    return ImportFigure(len(device_ids), len(content), seconds, provision_seconds)


def section(figure: ImportFigure) -> str:
    return (
        f"Device import: {figure.count:,} IDs in a {figure.file_bytes / 1e6:.1f} MB file,"
        f" one multipart GraphQL request: {figure.seconds:.2f} s"
        f" ({figure.ids_per_second:,.0f} IDs/s).\n"
        f"  (Provisioning them directly in the database beforehand took"
        f" {figure.provision_seconds:.1f} s; not part of the figure.)"
    )


def main() -> None:
    try:
        with (
            tempfile.TemporaryDirectory(prefix="devicecloud-bench-") as workdir,
            temporary_database(Path(workdir)) as database,
        ):
            print(f"Database: {database.description}", flush=True)
            asyncio.run(create_fixtures(database.url))
            setup = asyncio.run(seed(database.url))
            with running_server(database.url, Path(workdir) / "server.log") as base_url:
                figure = asyncio.run(run(base_url, setup.token, setup.product_global_id,
                                         setup.device_ids, setup.provision_seconds))
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(section(figure))


if __name__ == "__main__":
    main()
