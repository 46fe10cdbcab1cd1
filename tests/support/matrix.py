"""Permission matrices: every restricted field and mutation against every kind of caller, in
one table per domain. A matrix file holds only its world, its callers and its table, with one
small function per row; this module runs it.

    CALLERS = ("anonymous", "client", "outsider", *TEAM_ROLES)
    MATRIX = Matrix(CALLERS, {
        #                  anon clnt out  OWN  ADM  DEV  SUP  VIEW
        "product(slug)":   (_,   _,   _,   OK,  OK,  OK,  OK,  OK),
        "updateProduct":   (NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    })


    @MATRIX.operation("product(slug)")
    async def _product(p: Probe[World]) -> Any:
        return ok_if(await p.product("slug"), {"slug": "thermostat"})


    @MATRIX.operation("updateProduct")
    async def _update_product(p: Probe[World]) -> Any:
        return await p.audited("updateProduct", "UpdateProductInput", {
            "productId": gid("Product", p.world.product.id), "description": "Warm."},
            "product { description }")


    def test_the_table_covers_every_operation_and_caller() -> None:
        MATRIX.assert_complete()


    @pytest.mark.parametrize("caller", CALLERS)
    async def test_permission_matrix(http, world: World, caller: str) -> None:
        token = await caller_token(http, caller, world.acme)
        await MATRIX.check(caller, Probe(http, token, world))

Cells: None (`_`) = null; OK = the expected value (`ok_if`); a code = a GraphQL error or the
userError's code; anything else = the value read. Rows run top to bottom in one world per
caller, and every cell that differs is reported at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from fleet import events
from models.customers import Customer
from models.oauth import OAuthClient
from models.organizations import AuditEntry
from models.products import Product
from tests.support.accounts import TEAM_ROLES, Team, access_token, client_token, service_client
from tests.support.customers import customer_token
from tests.support.graphql import graphql
from tests.support.live import Sse, graphql_ws, particle, publish, subscribe, until_subscribed
from tests.support.polling import receive
from tests.support.servers import LiveServer

OK, NF, FB = "OK", "NOT_FOUND", "FORBIDDEN"
W = TypeVar("W")
Operation = Callable[..., Awaitable[Any]]  # (probe, *arguments) -> the cell found


def ok_if(value: Any, expected: Any) -> Any:
    """OK when `value` is what was expected; otherwise the value itself, to be reported."""
    return OK if value is not None and value == expected else value


class Matrix:
    """The expected cell of each operation (a row) for each caller (a column)."""

    def __init__(self, callers: tuple[str, ...], rows: dict[str, tuple[Any, ...]]) -> None:
        self.callers = callers
        self.rows = rows
        self.operations: dict[str, Operation] = {}

    def operation(self, name: str, *arguments: Any) -> Callable[[Operation], Operation]:
        """Register the function that runs row `name` (given `arguments` after the probe) and
        returns the cell it found. Stack several on one function for rows that differ only in
        their arguments."""

        def register(function: Operation) -> Operation:
            assert name in self.rows, f"no row {name!r} in the table"
            assert name not in self.operations, f"row {name!r} registered twice"
            self.operations[name] = lambda probe: function(probe, *arguments)
            return function

        return register

    def assert_complete(self) -> None:
        """Every row has a function and one cell per caller."""
        assert set(self.operations) == set(self.rows)
        assert all(len(cells) == len(self.callers) for cells in self.rows.values())

    def expected(self, name: str, caller: str) -> Any:
        return dict(zip(self.callers, self.rows[name], strict=True))[caller]

    async def check(self, caller: str, probe: Any) -> None:
        """Run every row, in the table's order, as `probe`'s caller; fail listing each cell
        that differs."""
        differences = {}
        for name in self.rows:
            found = await self.operations[name](probe)
            expected = self.expected(name, caller)
            if found != expected:
                differences[name] = f"expected {expected!r}, found {found!r}"
        if differences:
            pytest.fail("\n".join(f"{name}: {why}" for name, why in differences.items()),
                        pytrace=False)


async def caller_token(
    http: httpx.AsyncClient,
    caller: str,
    team: Team,
    *,
    clients: Mapping[str, tuple[OAuthClient, str]] | None = None,
    customers: Mapping[str, Customer] | None = None,
) -> str | None:
    """The token of a kind of caller: "anonymous" has none; "client" is a platform service
    client's (client credentials); a name in `clients` is that product client's; a name in
    `customers`, that customer's; a role, the `team` member's; any other name, the account
    `<name>@example.com`'s."""
    if caller == "anonymous":
        return None
    if caller == "client":
        return await client_token(http, *await service_client())
    if clients and caller in clients:
        return await client_token(http, *clients[caller])
    if customers and caller in customers:
        return await customer_token(customers[caller])
    if caller in TEAM_ROLES:
        return await access_token(team.email(caller))
    return await access_token(f"{caller}@example.com")


@dataclass
class Probe(Generic[W]):
    """One caller, asking, in `world`."""

    http: httpx.AsyncClient
    token: str | None
    world: W
    caller: str = ""  # the column: which kind of caller this is
    live_server: LiveServer | None = None  # for subscriptions

    async def read(self, query: str, variables: dict[str, Any], *path: str) -> Any:
        """The value at `path` in the response's data (digits index lists), or the code of its
        first error."""
        body = await graphql(self.http, query, variables, token=self.token)
        if body.get("errors"):
            return body["errors"][0].get("extensions", {}).get("code", body["errors"])
        value = body["data"]
        for key in path:
            if value is None:
                return None
            value = value[int(key)] if isinstance(value, list) else value[key]
        return value

    async def node(self, node_id: str) -> Any:
        """OK if `node(id)` finds the node."""
        found = await self.read("query($id: ID!) { node(id: $id) { id } }", {"id": node_id},
                                "node")
        return ok_if(found, {"id": node_id})

    async def device(self, device_id: str, selection: str, *path: str) -> Any:
        return await self.read(
            f"query($id: String!) {{ device(deviceId: $id) {{ {selection} }} }}",
            {"id": device_id}, "device", *path)

    async def product(self, selection: str, *path: str) -> Any:
        return await self.read(f'{{ product(idOrSlug: "thermostat") {{ {selection} }} }}', {},
                               "product", *path)

    async def mutate(self, name: str, input_type: str, input: dict[str, Any], selection: str
                     ) -> tuple[dict[str, Any], str | None]:
        """The mutation's payload and the code of its first userError (None if none)."""
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       f"{{ {selection} userErrors {{ code }} }} }}",
            {"input": input}, token=self.token)
        assert "errors" not in body, body
        payload = body["data"][name]
        return payload, payload["userErrors"][0]["code"] if payload["userErrors"] else None

    async def audited(self, name: str, input_type: str, input: dict[str, Any], selection: str,
                      *, entries: int = 1,
                      effect: Callable[[], Awaitable[bool]] | None = None) -> str:
        """OK, or the userError's code. OK means the result (the first field of `selection`)
        came back, exactly `entries` audit entries were written and `effect` (if given) holds;
        a refusal means no result, no audit entry and no effect."""
        before = await AuditEntry.all().count()
        body = await graphql(
            self.http, f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                       f"{{ {selection} userErrors {{ code }} }} }}",
            {"input": input}, token=self.token)
        if body.get("errors"):
            return f"GraphQL errors: {body['errors']}"
        payload = body["data"][name]
        written = await AuditEntry.all().count() - before
        field = selection.split(" ")[0]
        changed = await effect() if effect else None
        if payload["userErrors"]:
            code = payload["userErrors"][0]["code"]
            if written == 0 and not payload[field] and not changed:
                return code
            return f"{code}, yet {written} audit entries, {field}={payload[field]}, {changed=}"
        if written == entries and payload[field] and changed is not False:
            return OK
        return f"OK, yet {written} audit entries, {field}={payload[field]}, {changed=}"

    async def sse(self, path: str, device_id: str, product: Product | None) -> Any:
        """OK if the stream opens and delivers an event `device_id` publishes now; else the
        HTTP status (whose body must name the error)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                body = json.loads(await response.aread())
                expected = "UNAUTHENTICATED" if response.status_code == 401 else "NOT_FOUND"
                assert body["errors"][0]["extensions"] == {"code": expected}, body
                return response.status_code
            stream = Sse(response)
            assert await stream.message() == b":ok\n\n"
            event = await publish(product, device_id, "live", "1")
            found = await stream.event()
            return OK if found == particle(event, device_id) else found

    async def subscription(self, query: str, channel: str, variables: dict[str, Any],
                           device_id: str, product: Product | None) -> Any:
        """OK if the subscription starts and delivers an event `device_id` publishes now; else
        the code the server refused it with."""
        assert self.live_server is not None, "a Probe for subscriptions needs the live server"
        async with graphql_ws(self.live_server, self.token) as ws:
            await subscribe(ws, query, **variables)
            outcome = await _started_or_refused(ws, channel)
            if outcome is None:
                await publish(product, device_id, "live", "1")
                message = await receive(ws)
                event = next(iter(message["payload"]["data"].values()))["event"]
                outcome = OK if event == {"name": "live", "deviceId": device_id} else message
        await until_subscribed(channel, 0)
        return outcome


async def _started_or_refused(ws: ClientConnection, channel: str) -> str | None:
    """None once the stream listens on `channel`; the error code if the server refused it.
    (Cancelling a websockets `recv` loses nothing.)"""
    broker = events.event_log().broker
    deadline = asyncio.get_running_loop().time() + 10
    while broker.local_subscribers(channel) == 0:
        assert asyncio.get_running_loop().time() < deadline, "neither started nor refused"
        try:
            async with asyncio.timeout(0.02):
                message = json.loads(await ws.recv())
        except TimeoutError:
            continue
        assert message["type"] == "error", message
        return message["payload"][0]["extensions"]["code"]
    return None


DEVICE_EVENTS = ("subscription($id: String!) { deviceEvents(deviceId: $id) { missed event { "
                 "name deviceId } } }")
PRODUCT_EVENTS = ("subscription($id: ID!) { productEvents(productId: $id) { missed event { "
                  "name deviceId } } }")

