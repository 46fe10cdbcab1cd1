"""Who may see, create and delete a product's customers: every field and mutation against every
kind of caller, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from core import clock
from fleet import organizations, products
from models.customers import Customer
from models.devices import Device
from models.oauth import OAuthClient
from models.products import Product
from tests.support.accounts import TEAM_ROLES, Team, acting_as, make_user, organization_with_team
from tests.support.graphql import gid
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if

CALLERS = ("anonymous", "client", "mobile", "web", "server", "other_server", "customer",
           "outsider", *TEAM_ROLES)
RQ = "REQUIRED"
_ = None

# The world: Acme (one member per role) has the product "thermostat" with a MOBILE, a WEB and a
# SERVER client, and three customers: ada@ (claimed the device aaaa…), bob@ and doomed@. Its
# other product "sprinkler" has a SERVER client too. Globex is another organization, owned by
# outsider@.
#
# Callers: anonymous; client (a client-credentials token of a platform service client); mobile,
# web and server (client-credentials tokens of thermostat's clients); other_server (of
# sprinkler's SERVER client); customer (a token of ada@, thermostat's customer); outsider; then
# the Acme member with each role.
#
# Query cells: None = null; OK = the expected value; a code = a GraphQL error. Mutation cells:
# OK (with exactly one audit entry when a team member acted, none when a client did), or the
# code of the userError (and no audit entry). Non-members never see FORBIDDEN.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                              anon clnt mob  web  srvr osrv cust out  OWN  ADM  DEV  SUP  VIEW
    "product.customers":           (_,  _,   _,   _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Customer)":              (_,  _,   _,   _,   _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "node(Customer).devices":      (_,  _,   _,   _,   _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "node(other Customer)":        (_,  _,   _,   _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "createCustomer":              (NF, NF,  OK,  OK,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createCustomer(no password)": (NF, NF,  RQ,  RQ,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "deleteCustomer":              (NF, NF,  NF,  NF,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
})
# fmt: on
DEVICE = "a" * 24


@dataclass
class World:
    acme: Team
    product: Product
    clients: dict[str, tuple[OAuthClient, str]]  # mobile, web, server, other_server
    ada: Customer
    bob: Customer
    doomed: Customer


@pytest.fixture
async def world() -> World:
    acme = await organization_with_team("Acme", "acme")
    owner = acme.principals["OWNER"]

    async def product(name: str) -> Product:
        return await products.create_product(
            owner, acme.organization.id, name=name, slug=name.lower(), description="",
            platform="Photon", customer_auth="SIMPLE")

    thermostat, sprinkler = await product("Thermostat"), await product("Sprinkler")
    clients = {}
    for name, kind, target in (("mobile", "MOBILE", thermostat), ("web", "WEB", thermostat),
                               ("server", "SERVER", thermostat),
                               ("other_server", "SERVER", sprinkler)):
        clients[name] = await products.create_oauth_client(
            owner, target.id, name=name, client_type=kind,
            redirect_uris=["https://app.example.com/cb"] if kind == "WEB" else [])
    ada, bob, doomed = [
        await Customer.create(product=thermostat, email=email, created_at=clock.now())
        for email in ("ada@example.com", "bob@example.com", "doomed@example.com")
    ]
    await Device.create(id=DEVICE, secret_hash="x" * 64, platform="Photon",
                        provisioned_at=clock.now(), product=thermostat, customer=ada,
                        claimed_at=clock.now())
    outsider = await make_user("outsider@example.com")
    await organizations.create_organization(await acting_as(outsider), "Globex", "globex")
    return World(acme, thermostat, clients, ada, bob, doomed)


async def _customer(p: Probe[World], customer: Customer, selection: str = "email") -> Any:
    return await p.read(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Customer {{ {selection} }} }} }}",
        {"id": gid("Customer", customer.id)}, "node")


async def _mutate(p: Probe[World], name: str, input_type: str, input: dict[str, Any]) -> str:
    """One audit entry for a team member's success, none for a client's."""
    return await p.audited(name, input_type, input, "customer { email }",
                           entries=1 if p.caller in TEAM_ROLES else 0)


@MATRIX.operation("product.customers")
async def _customers(p: Probe[World]) -> Any:
    found = await p.read('{ product(idOrSlug: "thermostat") { customers { edges { node { email '
                         "devices { deviceId } } } } } }", {}, "product", "customers")
    return ok_if(found, {"edges": [
        {"node": {"email": "doomed@example.com", "devices": []}},
        {"node": {"email": "bob@example.com", "devices": []}},
        {"node": {"email": "ada@example.com", "devices": [{"deviceId": DEVICE}]}},
    ]})


@MATRIX.operation("node(Customer)")
async def _node(p: Probe[World]) -> Any:
    return ok_if(await _customer(p, p.world.ada, "id email"),
                 {"id": gid("Customer", p.world.ada.id), "email": "ada@example.com"})


@MATRIX.operation("node(Customer).devices")
async def _node_devices(p: Probe[World]) -> Any:
    return ok_if(await _customer(p, p.world.ada, "devices { deviceId online }"),
                 {"devices": [{"deviceId": DEVICE, "online": False}]})


@MATRIX.operation("node(other Customer)")
async def _node_other(p: Probe[World]) -> Any:
    return ok_if(await _customer(p, p.world.bob), {"email": "bob@example.com"})


@MATRIX.operation("createCustomer")
async def _create(p: Probe[World]) -> str:
    return await _mutate(p, "createCustomer", "CreateCustomerInput", {
        "productId": gid("Product", p.world.product.id), "email": "new@example.com",
        "password": "a long password"})


@MATRIX.operation("createCustomer(no password)")
async def _create_without_password(p: Probe[World]) -> str:
    return await _mutate(p, "createCustomer", "CreateCustomerInput", {
        "productId": gid("Product", p.world.product.id), "email": "server-made@example.com"})


@MATRIX.operation("deleteCustomer")
async def _delete(p: Probe[World]) -> str:
    outcome = await _mutate(p, "deleteCustomer", "DeleteCustomerInput",
                            {"customerId": gid("Customer", p.world.doomed.id)})
    deleted = not await Customer.exists(id=p.world.doomed.id)
    return outcome if deleted == (outcome == OK) else f"{outcome}, yet deleted={deleted}"


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world: World, caller: str) -> None:
    token = await caller_token(http, caller, world.acme, clients=world.clients,
                               customers={"customer": world.ada})
    await MATRIX.check(caller, Probe(http, token, world, caller=caller))
