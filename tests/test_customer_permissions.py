"""Who may see, create and delete a product's customers: every field and mutation against every
kind of caller, in one table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from auth import tokens
from core import clock
from core.settings import get_settings
from fleet import organizations, products
from models.customers import Customer
from models.devices import Device
from models.oauth import OAuthClient
from models.organizations import AuditEntry
from models.products import Product
from tests.helpers import (
    TEAM_ROLES,
    Team,
    access_token,
    acting_as,
    client_token,
    gid,
    graphql,
    make_user,
    organization_with_team,
    service_client,
)

CALLERS = ("anonymous", "client", "mobile", "web", "server", "other_server", "customer",
           "outsider", *TEAM_ROLES)
OK, NF, FB, RQ = "OK", "NOT_FOUND", "FORBIDDEN", "REQUIRED"
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
MATRIX_ROWS: dict[str, tuple[Any, ...]] = {
    #                              anon clnt mob  web  srvr osrv cust out  OWN  ADM  DEV  SUP  VIEW
    "product.customers":           (_,  _,   _,   _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Customer)":              (_,  _,   _,   _,   _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "node(Customer).devices":      (_,  _,   _,   _,   _,   _,   OK,  _,   OK,  OK,  OK,  OK,  OK),
    "node(other Customer)":        (_,  _,   _,   _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "createCustomer":              (NF, NF,  OK,  OK,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createCustomer(no password)": (NF, NF,  RQ,  RQ,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "deleteCustomer":              (NF, NF,  NF,  NF,  OK,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
}
# fmt: on
MATRIX = {
    operation: dict(zip(CALLERS, cells, strict=True)) for operation, cells in MATRIX_ROWS.items()
}
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


@dataclass
class Probe:
    http: httpx.AsyncClient
    token: str | None
    world: World
    member: bool  # a team member (their changes are audited), not a client

    async def read(self, query: str, variables: dict[str, Any], *path: str) -> Any:
        body = await graphql(self.http, query, variables, token=self.token)
        if body.get("errors"):
            return body["errors"][0].get("extensions", {}).get("code", body["errors"])
        value = body["data"]
        for key in path:
            if value is None:
                return None
            value = value[key]
        return value

    async def node(self, customer: Customer, selection: str = "email") -> Any:
        return await self.read(
            f"query($id: ID!) {{ node(id: $id) {{ ... on Customer {{ {selection} }} }} }}",
            {"id": gid("Customer", customer.id)}, "node")

    async def mutate(self, name: str, input_type: str, input: dict[str, Any]) -> str:
        """OK or the userError's code, checking the audit log: one entry for a team member's
        success, none otherwise."""
        before = await AuditEntry.all().count()
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       "{ customer { email } userErrors { code } } }",
            {"input": input}, token=self.token)
        if body.get("errors"):
            return f"GraphQL errors: {body['errors']}"
        payload = body["data"][name]
        written = await AuditEntry.all().count() - before
        if payload["userErrors"]:
            code = payload["userErrors"][0]["code"]
            return code if written == 0 and payload["customer"] is None else (
                f"{code}, yet {written} audit entries")
        expected = 1 if self.member else 0
        return OK if written == expected and payload["customer"] else (
            f"OK, yet {written} audit entries and customer={payload['customer']}")


def ok_if(value: Any, expected: Any) -> Any:
    return OK if value is not None and value == expected else value


Operation = Callable[[Probe], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    def register(function: Operation) -> Operation:
        OPERATIONS[name] = function
        return function

    return register


@operation("product.customers")
async def _customers(p: Probe) -> Any:
    found = await p.read('{ product(idOrSlug: "thermostat") { customers { edges { node { email '
                         "devices { deviceId } } } } } }", {}, "product", "customers")
    return ok_if(found, {"edges": [
        {"node": {"email": "doomed@example.com", "devices": []}},
        {"node": {"email": "bob@example.com", "devices": []}},
        {"node": {"email": "ada@example.com", "devices": [{"deviceId": DEVICE}]}},
    ]})


@operation("node(Customer)")
async def _node(p: Probe) -> Any:
    return ok_if(await p.node(p.world.ada, "id email"),
                 {"id": gid("Customer", p.world.ada.id), "email": "ada@example.com"})


@operation("node(Customer).devices")
async def _node_devices(p: Probe) -> Any:
    return ok_if(await p.node(p.world.ada, "devices { deviceId online }"),
                 {"devices": [{"deviceId": DEVICE, "online": False}]})


@operation("node(other Customer)")
async def _node_other(p: Probe) -> Any:
    return ok_if(await p.node(p.world.bob), {"email": "bob@example.com"})


@operation("createCustomer")
async def _create(p: Probe) -> str:
    return await p.mutate("createCustomer", "CreateCustomerInput", {
        "productId": gid("Product", p.world.product.id), "email": "new@example.com",
        "password": "a long password"})


@operation("createCustomer(no password)")
async def _create_without_password(p: Probe) -> str:
    return await p.mutate("createCustomer", "CreateCustomerInput", {
        "productId": gid("Product", p.world.product.id), "email": "server-made@example.com"})


@operation("deleteCustomer")
async def _delete(p: Probe) -> str:
    outcome = await p.mutate("deleteCustomer", "DeleteCustomerInput",
                             {"customerId": gid("Customer", p.world.doomed.id)})
    deleted = not await Customer.exists(id=p.world.doomed.id)
    return outcome if deleted == (outcome == OK) else f"{outcome}, yet deleted={deleted}"


def test_the_table_covers_every_operation_and_caller():
    assert list(OPERATIONS) == list(MATRIX)
    assert all(len(cells) == len(CALLERS) for cells in MATRIX.values())


async def _token(http: httpx.AsyncClient, caller: str, world: World) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "client":
        return await client_token(http, *await service_client())
    if caller in world.clients:
        return await client_token(http, *world.clients[caller])
    if caller == "customer":
        issued = await tokens.issue(
            client=world.clients["mobile"][0], user=None, customer=world.ada, scope="",
            grant_type="password", access_lifetime=get_settings().access_token_lifetime,
            refresh_lifetime=None)
        return issued.access_token
    if caller in TEAM_ROLES:
        return await access_token(world.acme.email(caller))
    return await access_token(f"{caller}@example.com")


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world, caller):
    probe = Probe(http, await _token(http, caller, world), world, caller in TEAM_ROLES)
    differences = {}
    for name, expected in MATRIX.items():
        got = await OPERATIONS[name](probe)
        if got != expected[caller]:
            differences[name] = f"expected {expected[caller]!r}, got {got!r}"
    if differences:
        pytest.fail("\n".join(f"{name}: {why}" for name, why in differences.items()),
                    pytrace=False)
