"""Which products' devices are paused, in memory: asked for every frame, so never a query.

An organization is paused while its `BillingAccount` says so (on FREE, `paused_from <= now <
paused_until`: the scheduler sets both when the free plan's grace ends, and clears them when
the pause is lifted). Each app process keeps the paused organizations' product IDs
(`Pauses`): read at start, again whenever a process names a change on the broker's `CHANNEL`
(`changed`), and again at every `REFRESH` (so a product created in a paused organization, or a
message lost, is caught up within it). A pause whose `paused_until` passes ends in memory at
that instant, without waiting for a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from billing.plans import PlanKind
from core import clock
from core.broker import Broker, BrokerUnavailable
from models.products import Product
from models.usage import BillingAccount

log = logging.getLogger("devicecloud.pauses")

CHANNEL = "billing:pauses"
REFRESH = 60  # seconds between reads of the pauses, messages or not


class Pauses:
    """This process's paused products; see the module docstring."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._until: dict[int, datetime] = {}  # product ID -> end of its organization's pause
        self._wake = asyncio.Event()

    def paused_until(self, product_id: int | None) -> datetime | None:
        until = self._until.get(product_id) if product_id is not None else None
        return until if until is not None and clock.now() < until else None

    async def reload(self) -> None:
        now = clock.now()
        accounts = dict(await BillingAccount.filter(  # only FREE is ever paused
            plan=PlanKind.FREE.value, paused_from__lte=now, paused_until__gt=now
        ).values_list("organization_id", "paused_until"))
        products = await Product.filter(organization_id__in=list(accounts)).values_list(
            "id", "organization_id"
        ) if accounts else []
        self._until = {product: accounts[organization] for product, organization in products}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Pauses]:
        """Listen for changes, read the pauses, and keep them current while the block runs."""
        async with self.broker.subscribed(CHANNEL, lambda _message: self._wake.set()):
            follower = asyncio.create_task(self._follow(), name="pauses")
            try:
                yield self
            finally:
                follower.cancel()
                await asyncio.wait([follower])

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reload()
            except Exception as error:  # the database is down: the next refresh tries again
                log.warning("could not read the pauses", extra={"error": repr(error)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH):
                    await self._wake.wait()


async def changed(broker: Broker) -> None:
    """An organization's pause was set or lifted (committed): have every process read the
    pauses again."""
    try:
        await broker.publish(CHANNEL, b"")
    except BrokerUnavailable:
        log.warning("could not announce a pause change; processes catch up within a minute")
