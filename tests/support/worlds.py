"""The worlds tests start from, built through the fleet services as the API would build them.

Most begin with `two_organizations()`: Acme (one member per role) with its product
"thermostat", and Globex, owned by outsider@example.com, with its product "kettle". The
fixtures of `tests.support.fixtures` hand these worlds to tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from auth.principals import UserPrincipal
from fleet import organizations, products
from models.devices import Device, DeviceError
from models.oauth import OAuthClient
from models.organizations import Organization
from models.products import Product
from tests.support.accounts import Team, access_token, acting_as, make_user, organization_with_team
from tests.support.constants import T
from tests.support.graphql import gid

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@dataclass
class TwoOrganizations:
    acme: Team
    thermostat: Product  # Acme's
    outsider: UserPrincipal  # Globex's owner
    globex: Organization
    kettle: Product  # Globex's


async def two_organizations(*, kettle_auth: str = "SIMPLE") -> TwoOrganizations:
    """Acme and its "thermostat"; Globex and its "kettle" (customers sign in by `kettle_auth`)."""
    acme = await organization_with_team("Acme", "acme")
    thermostat = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    outsider = await acting_as(await make_user("outsider@example.com"))
    globex = await organizations.create_organization(outsider, "Globex", "globex")
    kettle = await products.create_product(
        outsider, globex.id, name="Kettle", slug="kettle", description="", platform="Photon",
        customer_auth=kettle_auth,
    )
    return TwoOrganizations(acme, thermostat, outsider, globex, kettle)


# --- The fleet: thermostat's devices, their errors ---------------------------------------------


def device_id(prefix: str) -> str:
    return prefix.ljust(24, "0")


# The product's devices (quarantine NONE), by index: (id prefix, name, firmware, system
# firmware, online, last heard, first online, development).
OWN: list[tuple[str, str, str | None, str | None, bool, datetime | None, datetime | None,
                bool]] = [
    ("a0", "Kitchen sensor", "1.0.0", "5.0", True, T - MINUTE, T - 10 * DAY, False),  # 0
    ("a1", "Kitchen light", "1.0.0", "5.0", True, T - 2 * MINUTE, T - 9 * DAY, True),  # 1
    ("a2", "Garage", "1.0.0", "5.1", False, T - 3 * DAY, T - 20 * DAY, False),  # 2
    ("b0", "Attic", "1.1.0", "5.1", True, T - MINUTE, T - 5 * DAY, False),  # 3
    ("b1", "Porch", "1.1.0", "5.1", False, T - HOUR, T - 6 * DAY, True),  # 4
    ("b2", "", "2.0.0", "5.1", False, T - 2 * HOUR, T - DAY, False),  # 5
    ("c0", "Spare 1", None, None, False, None, None, False),  # 6
    ("c1", "Spare 2", None, None, False, None, None, True),  # 7
    ("c2", "kitchen spare", None, None, False, None, None, False),  # 8
    ("d0", "Lab", "1.0.0", "5.0", False, T - 5 * DAY, T - 30 * DAY, False),  # 9
]
Q0, Q1, DENIED = device_id("e0"), device_id("e1"), device_id("e2")  # quarantine of the product
ELSEWHERE, CLAIMED, LOOSE = device_id("f0"), device_id("f1"), device_id("f2")


def own(*indexes: int) -> list[str]:
    return [device_id(OWN[i][0]) for i in indexes]


@dataclass
class Fleet:
    acme: Team
    product: Product
    other: Product
    errors: list[DeviceError]  # oldest first

    def token(self, role: str = "VIEWER") -> Any:
        return access_token(self.acme.email(role))


def device_row(prefix_or_id: str, product: Product | None, **fields: Any) -> Device:
    return Device(
        id=prefix_or_id if len(prefix_or_id) == 24 else device_id(prefix_or_id),
        secret_hash="0" * 64, platform="Photon", provisioned_at=T - 60 * DAY,
        product_id=product.id if product else None, **fields,
    )


async def build_fleet() -> Fleet:
    """Thermostat's ten devices (OWN), two quarantined and one denied, with seven error reports;
    ELSEWHERE in kettle; CLAIMED, in no product, claimed by Acme's DEVELOPER; LOOSE, in none."""
    world = await two_organizations()
    acme, product, other = world.acme, world.thermostat, world.kettle
    rows = [
        device_row(prefix, product, name=name, firmware_version=fw, system_firmware_version=sfw,
                online=online, last_heard_at=heard, first_online_at=first, development=dev)
        for prefix, name, fw, sfw, online, heard, first, dev in OWN
    ]
    rows += [
        device_row(Q0, product, quarantine="QUARANTINED", firmware_version="1.0.0",
                system_firmware_version="5.0", online=True, last_heard_at=T - MINUTE / 2,
                first_online_at=T - HOUR),
        device_row(Q1, product, quarantine="QUARANTINED", firmware_version="3.0.0",
                online=False, last_heard_at=T - DAY, first_online_at=T - 2 * DAY),
        device_row(DENIED, product, quarantine="DENIED", firmware_version="1.0.0"),
        device_row(ELSEWHERE, other, firmware_version="1.0.0", online=True,
                last_heard_at=T, first_online_at=T - DAY),
        device_row(CLAIMED, None, claimed_by_id=acme.users["DEVELOPER"].id, name="Bench unit"),
        device_row(LOOSE, None),
    ]
    await Device.bulk_create(rows)
    reports = [
        (own(0)[0], product, "E_CRASH", T - 3 * DAY),
        (own(0)[0], product, "E_CRASH", T - 2 * DAY),
        (own(1)[0], product, "E_CRASH", T - DAY),
        (own(1)[0], product, "E_WIFI", T - HOUR),
        (own(2)[0], product, "E_WIFI", T - 30 * MINUTE),
        (Q0, product, "E_BOOT", T - 10 * MINUTE),
        (ELSEWHERE, other, "E_CRASH", T - 5 * MINUTE),
    ]
    errors = [
        await DeviceError.create(device_id=device, product=owner, code=code,
                                 message=f"{code} happened", reset_reason="panic",
                                 occurred_at=at)
        for device, owner, code, at in reports
    ]
    return Fleet(acme, product, other, errors)


# --- The event world: thermostat's devices D1 and D2 and its SERVER client -------------------

# D1 and D2 are thermostat's devices, IN_KETTLE is kettle's.
D1, D2, IN_KETTLE = device_id("d1"), device_id("d2"), device_id("e1")


@dataclass
class EventWorld:
    acme: Team
    product: Product
    other: Product  # Globex's
    outsider: UserPrincipal  # Globex's owner
    server: tuple[OAuthClient, str]  # the product's SERVER client and its secret

    @property
    def product_id(self) -> str:
        return gid("Product", self.product.id)

    async def token(self, role: str = "DEVELOPER") -> str:
        return await access_token(self.acme.email(role))


async def build_event_world() -> EventWorld:
    """Thermostat with devices D1 and D2 and a SERVER client; kettle with IN_KETTLE."""
    world = await two_organizations()
    product, other = world.thermostat, world.kettle
    for device, owned_by in ((D1, product), (D2, product), (IN_KETTLE, other)):
        await Device.create(id=device, secret_hash="0" * 64, platform="Photon",
                            provisioned_at=T, product=owned_by, name=f"Unit {device[:2]}")
    server = await products.create_oauth_client(
        world.acme.principals["OWNER"], product.id, name="Backend", client_type="SERVER",
        redirect_uris=[])
    return EventWorld(world.acme, product, other, world.outsider, server)


# --- Two products of one owner (the gateway's tests) -------------------------------------------


@dataclass
class Products:
    p: Product
    q: Product


async def build_two_products() -> Products:
    """An organization with only its owner, and two products: "Thermostat" and "Sprinkler"."""
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]

    async def make(name: str) -> Product:
        return await products.create_product(
            owner, team.organization.id, name=name, slug=None, description="",
            platform="Photon", customer_auth="SIMPLE",
        )

    return Products(await make("Thermostat"), await make("Sprinkler"))


# The principals of a small team, by role, and their product.
CallingTeam = tuple[dict[str, UserPrincipal], Product]


async def build_calling_team() -> CallingTeam:
    """A team with an owner, a support member and a viewer (as principals), and their product."""
    team = await organization_with_team("Callers", "callers", domain="callers.example",
                                        roles=("OWNER", "SUPPORT", "VIEWER"))
    product = await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Kettle", slug=None,
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    return team.principals, product
