"""Several app processes sharing one database and one Redis, as behind a load balancer (see
tests/support/processes.py): an event published through one process reaches live streams on
another; a function call or variable read made through one process reaches the device on
whichever process holds it; a device connecting again through another process replaces its
older connection; and a process killed with SIGKILL during a publishing burst loses no
acknowledged event.

The processes share this test process's database, so the test creates users, tokens, products
and devices straight in it and reads what the processes stored from it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from fleet import products, rpc
from fleet.events import device_channel, product_channel
from models.devices import Device, Event
from models.products import Product
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.gateway import FIRMWARE, answer_next, close_code, exchange, make_device, statuses
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.polling import eventually, receive
from tests.support.processes import AppProcess, AppProcesses, app_processes

# Devices of the burst publish as fast as their acks come: no rate limit in the way.
FAST_PUBLISHING = {"DEVICE_EVENT_RATE": "1000000", "DEVICE_EVENT_BURST": "1000000"}
OFFLINE = [{"field": "deviceId", "message": "The device is offline.", "code": "DEVICE_OFFLINE"}]
REPLACED = {"type": "error", "code": "replaced",
            "message": "The device connected again; this connection is replaced."}


@pytest.fixture
async def apps(database_url: str) -> AsyncIterator[AppProcesses]:
    async with app_processes(database_url) as processes:
        yield processes


@dataclass
class World:
    team: Team
    product: Product

    async def token(self, role: str) -> str:
        return await access_token(self.team.email(role))


@pytest.fixture
async def world() -> World:
    team = await organization_with_team("Acme", "acme", roles=("OWNER", "DEVELOPER", "SUPPORT"))
    product = await products.create_product(
        team.principals["OWNER"], team.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    return World(team, product)


# --- clients ----------------------------------------------------------------------------------


@asynccontextmanager
async def connected(
    app: AppProcess, device_id: str, secret: str, product_id: int
) -> AsyncIterator[ClientConnection]:
    """A device connected to `app` and welcomed. Unlike `test_gateway.session`, leaving waits
    for nothing: the process may be dead by then."""
    async with connect(app.device_url, max_size=None) as ws:
        auth = {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret}
        assert await exchange(ws, auth) == {"type": "ok", "replyTo": 1}
        hello = {"type": "hello", "id": 2, "productId": product_id, **FIRMWARE}
        assert await exchange(ws, hello) == {
            "type": "welcome", "replyTo": 2, "productId": product_id, "quarantined": False,
            "keepAlive": 30}
        yield ws


def publish(frame_id: int, message_id: str, name: str, data: str) -> dict[str, Any]:
    return {"type": "publish", "id": frame_id, "messageId": message_id, "name": name,
            "data": data}


class EventSource:
    """A reader of a `text/event-stream` response: each message as its fields (a comment line
    as `comment`)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def message(self, within: float = 10) -> dict[str, str]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                line = await anext(self._lines)
                if not line:
                    if fields:
                        return fields
                    continue
                name, _, value = line.partition(":")
                fields[name or "comment"] = value.removeprefix(" ")


@asynccontextmanager
async def sse(app: AppProcess, path: str, token: str) -> AsyncIterator[EventSource]:
    """An SSE stream of `app`, subscribed: the stream says `:ok` once it is."""
    async with (
        app.client() as http,
        http.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        source = EventSource(response)
        assert await source.message() == {"comment": "ok"}
        yield source


@asynccontextmanager
async def subscription(
    app: AppProcess, token: str, query: str, variables: dict[str, Any]
) -> AsyncIterator[ClientConnection]:
    """A GraphQL subscription (graphql-transport-ws) on `app`, started as `id` "1"."""
    async with connect(
        app.graphql_ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        assert await exchange(ws, init) == {"type": "connection_ack"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": query, "variables": variables}}))
        yield ws


PRODUCT_EVENTS = """subscription($productId: ID!) {
  productEvents(productId: $productId) {
    event { id name data publishedAt private ttl deviceId } missed } }"""
CALL = """mutation($input: CallFunctionInput!) {
  callFunction(input: $input) { returnValue userErrors { field message code } } }"""
READ = """query($deviceId: String!, $name: String!) {
  device(deviceId: $deviceId) { variable(name: $name) {
    value userErrors { field message code } } } }"""


async def call_function(
    http: httpx.AsyncClient, token: str, device_id: str, name: str, argument: str
) -> dict[str, Any]:
    body = await graphql(http, CALL, {"input": {"deviceId": device_id, "name": name,
                                                "argument": argument}}, token=token)
    assert "errors" not in body, body
    return body["data"]["callFunction"]


async def read_variable(
    http: httpx.AsyncClient, token: str, device_id: str, name: str
) -> dict[str, Any]:
    body = await graphql(http, READ, {"deviceId": device_id, "name": name}, token=token)
    assert "errors" not in body, body
    return body["data"]["device"]["variable"]


# --- what the streams must say, from what was stored ---------------------------------------------


def particle_time(moment: datetime) -> str:
    """UTC to the millisecond with `Z`, as Particle's streams write it."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def sse_message(event: Event) -> dict[str, Any]:
    """The SSE message of a stored event, its `data` decoded."""
    return {"id": str(event.id), "event": event.name, "data": {
        "data": event.data, "ttl": 60, "published_at": particle_time(event.published_at),
        "coreid": event.device_id or "particle-internal"}}


def decoded(message: dict[str, str]) -> dict[str, Any]:
    return {**message, "data": json.loads(message["data"])}


def subscription_item(event: Event) -> dict[str, Any]:
    """The subscription's `next` message for a stored event (its `extensions`, the query's
    cost, left out)."""
    return {"id": "1", "type": "next", "payload": {"data": {"productEvents": {"event": {
        "id": gid("Event", event.id), "name": event.name, "data": event.data,
        "publishedAt": event.published_at.isoformat(), "private": event.private, "ttl": 60,
        "deviceId": event.device_id}, "missed": 0}}}}


async def next_item(ws: ClientConnection) -> dict[str, Any]:
    message = await receive(ws)
    message.get("payload", {}).pop("extensions", None)
    return message


async def logged_events(product_id: int) -> list[Event]:
    """The product's events other than the cloud's `spark/status` ones, oldest first."""
    return list(await Event.filter(product_id=product_id).exclude(name="spark/status")
                .order_by("id"))


# --- live events across processes --------------------------------------------------------------


async def test_events_published_through_one_process_reach_streams_on_another(
    apps: AppProcesses, world: World
) -> None:
    a, b = await apps.start(2)
    token = await world.token("DEVELOPER")
    product_id = gid("Product", world.product.id)
    device_id, secret = await make_device(world.product)
    # The device connects first: its `spark/status` online event is stored before its welcome,
    # so no stream opened afterwards sees it.
    async with (
        connected(a, device_id, secret, world.product.id) as device,
        subscription(b, token, PRODUCT_EVENTS, {"productId": product_id}) as live,
    ):
        # The subscription gives no sign that it is in effect, but Redis does: B is the
        # only process that can be subscribed to the product's channel.
        async def b_subscribed() -> bool:
            return await apps.redis_subscribers(product_channel(world.product.id)) == 1

        await eventually(b_subscribed)
        async with (
            sse(b, "/v1/products/thermostat/events", token) as product_stream,
            sse(b, f"/v1/devices/{device_id}/events", token) as device_stream,
        ):
            assert await exchange(device, publish(3, "m3", "temp", "21.5")) == {
                "type": "ack", "replyTo": 3}
            async with a.client() as http:
                published = await run_mutation(
                    http, "publishEvent", "PublishEventInput",
                    {"productId": product_id, "name": "door/open", "data": "ajar é",
                     "private": False},
                    "event { id publishedAt }", token=token)
            assert await exchange(device, publish(4, "m4", "temp", "22")) == {
                "type": "ack", "replyTo": 4}

            first, from_server, second = await logged_events(world.product.id)
            assert [(e.name, e.data, e.device_id, e.private) for e in (
                first, from_server, second)] == [
                ("temp", "21.5", device_id, True), ("door/open", "ajar é", None, False),
                ("temp", "22", device_id, True)]
            assert published == {"userErrors": [], "event": {
                "id": gid("Event", from_server.id),
                "publishedAt": from_server.published_at.isoformat()}}

            assert [decoded(await product_stream.message()) for _ in range(3)] == [
                sse_message(event) for event in (first, from_server, second)]
            # Only the device's own events on its stream: the second comes right after
            # the first.
            assert [decoded(await device_stream.message()) for _ in range(2)] == [
                sse_message(event) for event in (first, second)]
            assert [await next_item(live) for _ in range(3)] == [
                subscription_item(event) for event in (first, from_server, second)]

    async def b_let_go() -> bool:  # of the device's channel, once its only stream closed
        return await apps.redis_subscribers(device_channel(device_id)) == 0

    await eventually(b_let_go)


async def test_events_published_through_one_process_reach_subscribed_devices_on_another(
    apps: AppProcesses, world: World
) -> None:
    a, b = await apps.start(2)
    token = await world.token("DEVELOPER")
    listening = await make_device(world.product)
    publisher, secret = await make_device(world.product)
    async with (
        connected(a, *listening, world.product.id) as device,
        connected(b, publisher, secret, world.product.id) as other,
    ):
        # Answered once A's subscription to the product's channel is in effect in Redis.
        assert await exchange(device, {"type": "subscribe", "id": 3, "prefix": "door/"}) == {
            "type": "ack", "replyTo": 3}
        assert await exchange(other, publish(3, "m3", "door/open", "ajar")) == {
            "type": "ack", "replyTo": 3}
        async with b.client() as http:
            await run_mutation(
                http, "publishEvent", "PublishEventInput",
                {"productId": gid("Product", world.product.id), "name": "door/shut",
                 "data": "", "private": False},
                "event { id }", token=token)
        from_device, from_server = await logged_events(world.product.id)
        for event in (from_device, from_server):
            frame = await receive(device)
            assert frame == {
                "type": "event", "id": frame["id"], "name": event.name, "data": event.data,
                "private": event.private, "deviceId": event.device_id,
                "publishedAt": event.published_at.astimezone(UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")}
            await device.send(json.dumps({"type": "ack", "replyTo": frame["id"]}))
        assert (from_device.device_id, from_server.device_id) == (publisher, None)
        # One process's disconnect at a time: SQLite serves one writer.
        await other.close()

        async def publisher_offline() -> bool:
            return not (await Device.get(id=publisher)).online

        await eventually(publisher_offline)


# --- functions and variables across processes ------------------------------------------------


async def test_a_device_on_one_process_answers_calls_made_through_another(
    apps: AppProcesses, world: World
) -> None:
    a, b = await apps.start(2)
    token = await world.token("SUPPORT")
    device_id, secret = await make_device(world.product)
    never_connected, _ = await make_device(world.product)
    async with connected(b, device_id, secret, world.product.id) as device, a.client() as http:
        call = asyncio.create_task(call_function(http, token, device_id, "setTemp", "22.5"))
        request = await answer_next(device, value=-7)
        assert request == {"type": "call", "id": request["id"], "name": "setTemp",
                           "argument": "22.5"}
        assert await call == {"returnValue": -7, "userErrors": []}

        read = asyncio.create_task(read_variable(http, token, device_id, "temperature"))
        request = await answer_next(device, value=21.25)
        assert request == {"type": "get", "id": request["id"], "name": "temperature"}
        assert await read == {"value": 21.25, "userErrors": []}

        read = asyncio.create_task(read_variable(http, token, device_id, "temperature"))
        await answer_next(device, value="warm")
        assert await read == {"value": "warm", "userErrors": []}

        # The device's refusal crosses back too.
        call = asyncio.create_task(call_function(http, token, device_id, "reboot", ""))
        await answer_next(device, error={"code": "not_found", "message": "gone"})
        assert await call == {"returnValue": None, "userErrors": [{
            "field": "name", "message": "The device has no function named 'reboot'.",
            "code": "FUNCTION_NOT_FOUND"}]}

        assert await call_function(http, token, never_connected, "setTemp", "1") == {
            "returnValue": None, "userErrors": OFFLINE}
        assert await read_variable(http, token, never_connected, "temperature") == {
            "value": None, "userErrors": OFFLINE}


async def test_connecting_again_through_another_process_replaces_the_older_connection(
    apps: AppProcesses, world: World
) -> None:
    a, b = await apps.start(2)
    token = await world.token("SUPPORT")
    device_id, secret = await make_device(world.product)
    async with (
        connected(a, device_id, secret, world.product.id) as older,
        connected(b, device_id, secret, world.product.id) as newer,
    ):
        assert await receive(older) == REPLACED
        assert await close_code(older, within=5) == 4409
        # Once A has exited cleanly, it has finished with the connection it closed.
        await a.stop()
        device = await Device.get(id=device_id)
        assert device.online is True
        assert device.session_id is not None
        assert device.session_id.startswith(f"{b.pid}-")  # B's session
        assert await statuses(device_id) == [
            ("online", world.product.id), ("online", world.product.id)]
        async with b.client() as http:
            call = asyncio.create_task(call_function(http, token, device_id, "reboot", ""))
            await answer_next(newer, value=1)
            assert await call == {"returnValue": 1, "userErrors": []}


# --- a process killed during a publishing burst ------------------------------------------------

DEVICES = 20
WINDOW = 4  # publishes a device has sent and not yet seen acknowledged
KILL_AFTER = 200  # acknowledgements


@dataclass
class Publisher:
    """A device of the burst, and what it sent and had acknowledged."""

    device_id: str
    secret: str
    # Once the burst has gone on long enough, this device reads no more acks (as if they were
    # lost on the way) and sends nothing more: what A stores of it then goes unacknowledged.
    deaf: bool
    sent: list[str] = field(default_factory=list)  # message IDs, in order
    acked: set[str] = field(default_factory=set)
    # Set when a deaf device has stopped reading: no more acks will be counted for it.
    stopped_reading: asyncio.Event = field(default_factory=asyncio.Event)

    def data(self, message_id: str) -> str:
        return f"{self.device_id}/{message_id}"

    @property
    def unacked(self) -> list[str]:
        return [message_id for message_id in self.sent if message_id not in self.acked]


@dataclass
class Burst:
    acks: int = 0
    enough: asyncio.Event = field(default_factory=asyncio.Event)


async def publish_until_cut(ws: ClientConnection, publisher: Publisher, burst: Burst) -> None:
    """Publish as fast as acknowledgements allow (`WINDOW` in flight) until the connection
    breaks (or until `burst.enough`, for a deaf device). Acks come in order: the gateway answers
    a connection's frames one at a time."""
    in_flight: deque[tuple[int, str]] = deque()
    try:
        while not (publisher.deaf and burst.enough.is_set()):
            while len(in_flight) < WINDOW:
                frame_id = len(publisher.sent) + 3  # after auth and hello
                message_id = f"m{frame_id}"
                publisher.sent.append(message_id)  # before sending: it may get through
                in_flight.append((frame_id, message_id))
                await ws.send(json.dumps(publish(
                    frame_id, message_id, "burst", publisher.data(message_id))))
            reply = json.loads(await ws.recv())
            frame_id, message_id = in_flight.popleft()
            assert reply == {"type": "ack", "replyTo": frame_id}, reply
            publisher.acked.add(message_id)
            burst.acks += 1
            if burst.acks >= KILL_AFTER:
                burst.enough.set()
        publisher.stopped_reading.set()
        await ws.wait_closed()
    except ConnectionClosed:
        return


async def first_of(wanted: Awaitable[object], others: Iterable[asyncio.Task[None]],
                   within: float) -> None:
    """Wait for `wanted`, failing at once if one of `others` fails (or ends) first."""
    waiting = asyncio.ensure_future(wanted)
    done, _ = await asyncio.wait([waiting, *others], timeout=within,
                                 return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        for task in done:
            task.result()  # its failure
        pytest.fail("a publisher's connection closed first" if done else
                    f"not done within {within} s", pytrace=False)


async def stored_messages(device_ids: list[str]) -> list[tuple[str, str, str, str]]:
    return list(await Event.filter(device_id__in=device_ids).exclude(name="spark/status")
                .values_list("device_id", "message_id", "name", "data"))


async def test_a_process_killed_during_a_burst_loses_no_acknowledged_event(
    apps: AppProcesses, world: World
) -> None:
    a, b = await apps.start(2, env=FAST_PUBLISHING)
    publishers = [Publisher(*await make_device(world.product), deaf=n % 2 == 0)
                  for n in range(DEVICES)]
    deaf = [publisher for publisher in publishers if publisher.deaf]
    device_ids = [publisher.device_id for publisher in publishers]
    burst = Burst()
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(
                connected(a, publisher.device_id, publisher.secret, world.product.id))
            for publisher in publishers
        ]
        # A's own broker channel, on which it is asked for its devices: Redis drops it when A
        # dies, and a request for a device A held then finds nobody.
        session_id = (await Device.get(id=device_ids[0])).session_id
        assert session_id is not None
        a_channel = rpc.process_channel(rpc.process_of(session_id))
        assert await apps.redis_subscribers(a_channel) == 1

        tasks = [asyncio.create_task(publish_until_cut(ws, publisher, burst))
                 for ws, publisher in zip(sockets, publishers, strict=True)]
        await first_of(burst.enough.wait(), tasks, within=30)

        # Once the deaf devices read no more acks, what they sent and A stored beyond what they
        # saw acknowledged grows only.
        await first_of(asyncio.gather(*(p.stopped_reading.wait() for p in deaf)), tasks,
                       within=30)

        async def stored_unacknowledged() -> bool:
            stored = await stored_messages([publisher.device_id for publisher in deaf])
            acked = {(p.device_id, message_id) for p in deaf for message_id in p.acked}
            return bool({(device_id, message_id) for device_id, message_id, _, _ in stored}
                        - acked)

        # The others are still publishing as fast as they can: A dies in the middle of that.
        await first_of(eventually(stored_unacknowledged), tasks, within=30)
        await a.kill()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)  # every connection broke

    sent = {(p.device_id, message_id) for p in publishers for message_id in p.sent}
    acked = {(p.device_id, message_id) for p in publishers for message_id in p.acked}
    assert len(acked) >= KILL_AFTER
    assert sent - acked, "every publish was acknowledged: nothing was cut short"
    rows = await stored_messages(device_ids)
    stored = Counter((device_id, message_id) for device_id, message_id, _, _ in rows)
    assert {key: count for key, count in stored.items() if count != 1} == {}
    assert acked - set(stored) == set()  # no acknowledged event lost
    assert set(stored) - sent == set()
    assert set(stored) - acked, "A stored nothing that the devices did not see acknowledged"
    assert {(name, data) for device_id, message_id, name, data in rows} == {
        ("burst", f"{device_id}/{message_id}") for device_id, message_id, _, _ in rows}

    # A device A held is still marked online with A's session; B finds nobody to ask.
    async def a_gone_from_redis() -> bool:
        return await apps.redis_subscribers(a_channel) == 0

    await eventually(a_gone_from_redis)
    held = await Device.get(id=device_ids[0])
    assert (held.online, held.session_id) == (True, session_id)
    async with b.client() as http:
        assert await call_function(http, await world.token("SUPPORT"), device_ids[0], "reboot",
                                   "") == {"returnValue": None, "userErrors": OFFLINE}

    # Each device connects to B and sends again what it never saw acknowledged: each is
    # acknowledged, and stored once, whether or not A had stored it.
    async def retransmit(publisher: Publisher) -> None:
        async with connected(b, publisher.device_id, publisher.secret, world.product.id) as ws:
            for frame_id, message_id in enumerate(publisher.unacked, start=3):
                assert await exchange(ws, publish(
                    frame_id, message_id, "burst", publisher.data(message_id))) == {
                    "type": "ack", "replyTo": frame_id}

    await asyncio.gather(*(retransmit(publisher) for publisher in publishers))
    rows = await stored_messages(device_ids)
    assert Counter((device_id, message_id) for device_id, message_id, _, _ in rows) == Counter(
        sent)
    assert {(name, data) for device_id, message_id, name, data in rows} == {
        ("burst", f"{device_id}/{message_id}") for device_id, message_id in sent}
