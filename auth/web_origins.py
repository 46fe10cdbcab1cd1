"""The browser origins the API answers cross-origin: those of the live WEB clients' redirect
URIs (a product's WEB clients and users' third-party apps) and the configured
`CORS_ALLOWED_ORIGINS`.

A WEB client's app runs where its redirect URIs point, so each http(s) redirect URI contributes
its origin (`scheme://host[:port]`); MOBILE, SERVER and platform clients, deleted clients and
private-use schemes contribute none.

Each app process keeps the set in memory (`WebOrigins`), so that a request costs no query: it
is loaded at start-up and kept current as clients change. The process that creates or deletes a
client updates its own set right after the commit (`client_changed`) and names the client on the
broker's `CHANNEL`; every process (that one included) then reads that client again, one change
at a time, so the set ends as the database is whatever order the messages arrive in. When the
broker says messages may have been lost (Redis dropped), the process reads every client again.
A read that fails (the database is down, at start-up too) is tried again every few seconds
while the process serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

from core.broker import Broker, BrokerUnavailable
from core.origins import origin_of
from models.oauth import ClientType, OAuthClient

log = logging.getLogger("devicecloud.origins")

CHANNEL = "oauth-clients:changed"
_RELOAD_ALL = ""  # queued when the broker lost messages: read every client again
RETRY_INTERVAL = 5.0  # seconds before reading clients again after the database failed


def client_origins(kind: str, redirect_uris: Iterable[str], *, deleted: bool) -> frozenset[str]:
    """The origins a client contributes: those of its http(s) redirect URIs if it is a live
    WEB client, else none."""
    if deleted or kind != ClientType.WEB:
        return frozenset()
    return frozenset(o for uri in redirect_uris if (o := origin_of(uri)) is not None)


class WebOrigins:
    """This process's set of allowed origins; see the module docstring."""

    def __init__(self, broker: Broker, configured: Iterable[str] = (), *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.broker = broker
        self.configured = frozenset(configured)
        self.loaded = False  # whether the clients have been read (else only `configured`)
        self._sleep = sleep  # how it waits before reading again after a failure (tests: a gate)
        self._by_client: dict[str, frozenset[str]] = {}
        self._counts: Counter[str] = Counter()  # origin -> live clients contributing it
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def allows(self, origin: str) -> bool:
        return origin in self.configured or origin in self._counts

    def apply(self, client_id: str, origins: frozenset[str]) -> None:
        """Client `client_id` now contributes `origins` (none: it is gone)."""
        before = self._by_client.pop(client_id, frozenset())
        self._counts.subtract(before)
        self._counts += Counter()  # drops the origins no client contributes any more
        if origins:
            self._by_client[client_id] = origins
            self._counts.update(origins)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebOrigins]:
        """Listen for changes, then load every client (listening first, so that no change
        made while loading is missed), and follow changes while the block runs."""
        async with self.broker.subscribed(CHANNEL, self._receive):
            try:
                await self._reload_all()
            except Exception as error:  # the database is down: serve, and load once it is up
                log.warning("allowed origins not loaded yet", extra={"error": repr(error)})
                self._queue.put_nowait(_RELOAD_ALL)
            follower = asyncio.create_task(self._follow(), name="web-origins")
            try:
                yield self
            finally:
                follower.cancel()
                await asyncio.wait([follower])

    def _receive(self, message: bytes | None) -> None:
        self._queue.put_nowait(_RELOAD_ALL if message is None else message.decode())

    async def _follow(self) -> None:
        while True:
            client_id = await self._queue.get()
            try:
                if client_id == _RELOAD_ALL:
                    await self._reload_all()
                else:
                    await self._reload(client_id)
            except Exception as error:  # the database failed: try again in a while
                log.warning("could not read the OAuth clients; trying again",
                            extra={"client": client_id or "all", "error": repr(error)})
                await self._sleep(RETRY_INTERVAL)
                self._queue.put_nowait(client_id)

    async def _reload(self, client_id: str) -> None:
        client = await OAuthClient.get_or_none(client_id=client_id)
        if client is None:
            self.apply(client_id, frozenset())
        else:
            self.apply(client_id, client_origins(
                client.kind, client.redirect_uris, deleted=client.deleted_at is not None
            ))

    async def _reload_all(self) -> None:
        rows = await OAuthClient.filter(kind=ClientType.WEB, deleted_at=None).values_list(
            "client_id", "redirect_uris"
        )
        self._by_client.clear()
        self._counts.clear()
        for client_id, uris in rows:
            self.apply(client_id, client_origins(ClientType.WEB, uris, deleted=False))
        self.loaded = True


# The origin sets of the apps running in this process, the latest last (normally just one).
_installed: list[WebOrigins] = []


@contextlib.contextmanager
def installed(origins: WebOrigins) -> Iterator[None]:
    """Make `origins` this process's origin set while the block (the app's lifespan) runs."""
    _installed.append(origins)
    try:
        yield
    finally:
        _installed.remove(origins)


async def client_changed(client: OAuthClient) -> None:
    """A client was created or deleted (committed): update this process's origin sets now and
    tell the other processes. Without a running app in this process (a script) there is no set
    to update and no broker to tell; the app processes read the change at their next start."""
    origins = client_origins(client.kind, client.redirect_uris,
                             deleted=client.deleted_at is not None)
    for current in _installed:
        current.apply(client.client_id, origins)
    if _installed:
        try:
            await _installed[-1].broker.publish(CHANNEL, client.client_id.encode())
        except BrokerUnavailable:
            log.warning("could not tell the other processes that a client changed",
                        extra={"client": client.client_id})
