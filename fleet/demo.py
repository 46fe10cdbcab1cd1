"""The development demo: an organization, a product and a few devices ready for the simulator,
so that a newcomer running `make run` sees a live fleet."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from auth.principals import UserPrincipal
from core.errors import NotFound
from fleet.device_import import import_devices
from fleet.organizations import create_organization
from fleet.products import create_product
from fleet.provisioning import provision_devices
from models.accounts import User
from models.devices import Device
from models.oauth import OAuthClient
from models.organizations import Membership, Organization
from models.products import Product

DEMO_ORGANIZATION = "Demo Org"
DEMO_PRODUCT = "Demo Thermostat"
DEMO_PLATFORM = "Photon"
FIRST_PARTY_CLIENT_ID = "devicecloud"


@dataclass(frozen=True)
class DemoFleet:
    organization: Organization
    product: Product
    devices: list[tuple[str, str]]  # (device_id, secret), as written to csv_path
    csv_path: Path
    provisioned: bool  # False when an earlier run's devices were reused


async def principal_for(user: User) -> UserPrincipal:
    """The user acting through the first-party client, as the dashboard would."""
    client = await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID)
    return UserPrincipal(client=client, family_id=0, scope="", user=user)


def write_devices_csv(path: Path, devices: list[tuple[str, str]]) -> None:
    """`device_id,secret` rows after a header, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # the file may have existed with wider permissions
    with os.fdopen(descriptor, "w", newline="") as handle:
        handle.write("device_id,secret\n")
        handle.writelines(f"{device_id},{secret}\n" for device_id, secret in devices)


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text().splitlines()[1:]
    except (OSError, UnicodeDecodeError):
        return []
    pairs = [tuple(line.split(",", 1)) for line in lines if line.count(",") == 1]
    return [(device_id, secret) for device_id, secret in pairs]


async def seed_demo_fleet(
    owner_email: str,
    csv_path: Path,
    count: int = 5,
    *,
    organization_name: str = DEMO_ORGANIZATION,
    product_name: str = DEMO_PRODUCT,
) -> DemoFleet:
    """Give the user `owner_email` a demo fleet: the organization "Demo Org" (unless the user
    already belongs to one, which is used instead), the product "Demo Thermostat" in it (reused
    if it exists), and `count` newly provisioned devices imported into it, their
    `device_id,secret` rows written to `csv_path` (mode 0600).

    Running it again reuses the devices listed in `csv_path` if they are all in the product,
    so `make run` can call it every time."""
    user = await User.get_or_none(email=owner_email)
    if user is None:
        raise NotFound(f"No account {owner_email}; create it first.", field="email")
    principal = await principal_for(user)
    membership = await Membership.get_or_none(user_id=user.id).select_related("organization")
    if membership is None:
        organization = await create_organization(principal, organization_name)
    else:
        organization = membership.organization
    product = await Product.get_or_none(organization_id=organization.id, name=product_name)
    if product is None:
        product = await create_product(
            principal,
            organization.id,
            name=product_name,
            slug=None,
            description="Simulated thermostats for the development demo.",
            platform=DEMO_PLATFORM,
            customer_auth="SIMPLE",
        )
    earlier = _read_csv(csv_path)
    if earlier and len(earlier) >= count:
        in_product = await Device.filter(
            id__in=[device_id for device_id, _ in earlier], product_id=product.id
        ).count()
        if in_product == len(earlier):
            return DemoFleet(organization, product, earlier, csv_path, provisioned=False)
    devices = await provision_devices(count, DEMO_PLATFORM)
    await import_devices(
        principal,
        product.id,
        [device_id for device_id, _ in devices],
        None,
        force=False,
        development=False,
    )
    write_devices_csv(csv_path, devices)
    return DemoFleet(organization, product, devices, csv_path, provisioned=True)
