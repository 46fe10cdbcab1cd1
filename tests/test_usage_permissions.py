"""Who sees usage: `organization.usage`, `product.usage` and the CSV download against every kind
of caller, in one table. Only the owner and administrators see it; the rest of the team gets
NOT_FOUND (as if there were nothing to see, even for a bad period), and whoever cannot see the
organization or product at all gets null for it (GraphQL) or 404 (the download)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from billing.ledger import Ledger
from core import clock
from core.metering import Metered, OperationKind
from fleet import products
from models.customers import Customer
from models.devices import Device
from models.oauth import OAuthClient
from models.products import Product
from tests.support.accounts import TEAM_ROLES, Team
from tests.support.customers import app_token, make_customer
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if
from tests.support.worlds import device_id, two_organizations

CALLERS = ("anonymous", "client", "server", "customer", "app", "outsider", *TEAM_ROLES)
IV = "INVALID"
_ = None

# The world: Acme (one member per role) with its product "thermostat", its SERVER client, its
# customer ada@ who claimed DEVICE, and 3 data operations of DEVICE this period; Globex, owned
# by outsider@. Callers: anonymous; client (a platform service client's token); server
# (thermostat's SERVER client); customer (ada@'s token); app (a third-party app's token for
# Acme's owner, with every scope); outsider; the Acme member with each role.
#
# GraphQL cells: None = null (the organization or product itself is not theirs to see); OK =
# the usage; a code = the GraphQL error on `usage` (for the app, `product(idOrSlug:)` itself is
# FORBIDDEN: no third-party app reaches anything product-wide). Download cells: OK = the CSV,
# or the status.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                              anon clnt srvr cust app  out  OWN  ADM  DEV  SUP  VIEW
    "organization.usage":          (_,  _,   _,   _,   _,   _,   OK,  OK,  NF,  NF,  NF),
    "organization.usage(2099-01)": (_,  _,   _,   _,   _,   _,   IV,  IV,  NF,  NF,  NF),
    "product.usage":               (_,  _,   _,   _,   FB,  _,   OK,  OK,  NF,  NF,  NF),
    "product.usage(2099-01)":      (_,  _,   _,   _,   FB,  _,   IV,  IV,  NF,  NF,  NF),
    "GET usage.csv":               (401, 404, 404, 404, 404, 404, OK,  OK,  404, 404, 404),
    "GET usage.csv?period=2099-01": (401, 404, 404, 404, 404, 404, 400, 400, 404, 404, 404),
})
# fmt: on
DEVICE = device_id("aa")


@dataclass
class World:
    acme: Team
    product: Product
    server: tuple[OAuthClient, str]
    ada: Customer


@pytest.fixture
async def world() -> World:
    base = await two_organizations()
    owner = base.acme.principals["OWNER"]
    server = await products.create_oauth_client(owner, base.thermostat.id, name="Backend",
                                                client_type="SERVER", redirect_uris=[])
    ada = await make_customer(base.thermostat, "ada@example.com")
    await Device.create(id=DEVICE, secret_hash="0" * 64, platform="Photon",
                        provisioned_at=clock.now(), product=base.thermostat, customer=ada,
                        claimed_at=clock.now())
    await Ledger(lambda _product: None).record(
        [Metered(OperationKind.FUNCTION_CALL, base.thermostat.id, DEVICE, clock.now())] * 3)
    return World(base.acme, base.thermostat, server, ada)


async def _usage(p: Probe[World], root: str, argument: str, period: str | None) -> Any:
    selection = (f"{root}({argument}) {{ usage(period: $period) {{ dataOperations {{ used }} "
                 "topDevices { deviceId } } }")
    found = await p.read(f"query($period: String) {{ {selection} }}", {"period": period}, root,
                         "usage")
    return ok_if(found, {"dataOperations": {"used": 3}, "topDevices": [{"deviceId": DEVICE}]})


@MATRIX.operation("organization.usage", None)
@MATRIX.operation("organization.usage(2099-01)", "2099-01")
async def _organization_usage(p: Probe[World], period: str | None) -> Any:
    return await _usage(p, "organization", 'slug: "acme"', period)


@MATRIX.operation("product.usage", None)
@MATRIX.operation("product.usage(2099-01)", "2099-01")
async def _product_usage(p: Probe[World], period: str | None) -> Any:
    return await _usage(p, "product", 'idOrSlug: "thermostat"', period)


@MATRIX.operation("GET usage.csv", "")
@MATRIX.operation("GET usage.csv?period=2099-01", "?period=2099-01")
async def _download(p: Probe[World], query: str) -> Any:
    headers = {"Authorization": f"Bearer {p.token}"} if p.token else {}
    response = await p.http.get(f"/v1/orgs/acme/usage.csv{query}", headers=headers)
    if response.status_code != 200:
        expected = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 400: "INVALID"}
        assert response.json()["errors"][0]["extensions"] == {
            "code": expected[response.status_code]}, response.text
        return response.status_code
    day = clock.now().date().isoformat()
    return ok_if(response.text.splitlines()[1:],
                 [f"{day},{p.world.product.id},thermostat,{DEVICE},FUNCTION_CALL,3"])


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world: World, caller: str) -> None:
    if caller == "app":
        token = await app_token(world.acme.users["OWNER"], "devices:read events:read "
                                                           "devices:call")
    else:
        token = await caller_token(http, caller, world.acme, clients={"server": world.server},
                                   customers={"customer": world.ada})
    await MATRIX.check(caller, Probe(http, token, world, caller))
