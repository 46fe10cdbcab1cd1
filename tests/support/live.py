"""Live events as clients watch them: SSE streams (Particle's format) and GraphQL
subscriptions (graphql-transport-ws), and events recorded as a device's or server's publish
records them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from core import clock
from fleet import events
from fleet.events import LiveEvent, NewEvent
from models.products import Product
from tests.support.polling import WITHIN, receive
from tests.support.servers import LiveServer


async def publish(product: Product | None, device_id: str | None, name: str, data: str = "",
                  at: datetime | None = None) -> LiveEvent:
    """An event recorded (and fanned out) as a publish records it."""
    (event,) = await events.record([NewEvent(
        product_id=product.id if product else None, device_id=device_id, name=name, data=data,
        published_at=at or clock.now())])
    assert event is not None
    return event


class Sse:
    """An open SSE response, read one message (the lines up to a blank line) at a time."""

    def __init__(self, response: httpx.Response):
        self._chunks = response.aiter_bytes()
        self._pending = b""

    async def message(self) -> bytes:
        async with asyncio.timeout(WITHIN):
            while b"\n\n" not in self._pending:
                self._pending += await anext(self._chunks)
        message, _, self._pending = self._pending.partition(b"\n\n")
        return message + b"\n\n"

    async def event(self) -> dict[str, str]:
        """The next message that is not a comment, as its fields."""
        while (message := await self.message()).startswith(b":"):
            pass
        fields = (line.split(": ", 1) for line in message.decode().strip("\n").split("\n"))
        return {name: value for name, value in fields}

    async def ends(self) -> dict[str, str]:
        """The server ends the response (within WITHIN seconds), sending only keep-alives and
        then `spark/stream/ended`: its data (code and message)."""
        async with asyncio.timeout(WITHIN):
            async for chunk in self._chunks:
                self._pending += chunk
        messages = [m for m in self._pending.split(b"\n\n") if m not in (b":", b"")]
        assert len(messages) == 1, messages
        name, data = messages[0].decode().split("\n")
        assert name == "event: spark/stream/ended", messages
        ended: dict[str, str] = json.loads(data.removeprefix("data: "))
        return ended


def auth_headers(token: str | None, **extra: str) -> dict[str, str]:
    """A bearer `Authorization` header for `token` (none without one), and `extra`."""
    return ({"Authorization": f"Bearer {token}"} if token else {}) | extra


@asynccontextmanager
async def sse(http: httpx.AsyncClient, path: str, token: str | None, **headers: str
              ) -> AsyncIterator[Sse]:
    """A stream that the server accepted: 200, `:ok` received (so it is subscribed)."""
    async with http.stream("GET", path, headers=auth_headers(token, **headers)) as response:
        assert response.status_code == 200, await response.aread()
        stream = Sse(response)
        assert await stream.message() == b":ok\n\n"
        yield stream


async def refused(http: httpx.AsyncClient, path: str, token: str | None, **headers: str
                  ) -> httpx.Response:
    """A request the server must refuse (read in full; a 200 stream would never end)."""
    async with http.stream("GET", path, headers=auth_headers(token, **headers)) as response:
        assert response.status_code != 200
        await response.aread()
        return response


def particle(event: LiveEvent, coreid: str) -> dict[str, str]:
    """The fields of the SSE message Particle sends for `event`."""
    published_at = event.published_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    data = {"data": event.data, "ttl": 60, "published_at": published_at, "coreid": coreid}
    return {"id": str(event.id), "event": event.name,
            "data": json.dumps(data, separators=(",", ":"))}


async def until_subscribed(channel: str, count: int = 1) -> None:
    """Poll this process's broker until `count` streams listen on `channel`."""
    broker = events.event_log().broker
    deadline = asyncio.get_running_loop().time() + WITHIN
    while (listening := broker.local_subscribers(channel)) != count:
        assert asyncio.get_running_loop().time() < deadline, f"{listening} streams, not {count}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def graphql_ws(live_server: LiveServer, token: str | None
                     ) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection, initialised (with the token) and acknowledged."""
    url = live_server.url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert await receive(ws) == {"type": "connection_ack"}
        yield ws


async def subscribe(ws: ClientConnection, query: str, **variables: Any) -> None:
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": query, "variables": variables}}))
