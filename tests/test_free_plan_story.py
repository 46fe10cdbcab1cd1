"""The free plan's story, end to end against the live app with the test clock: warnings at 70
and 90 % (one email each to the owner and the administrator, never again), 100 %, the 3-day
grace, the pause (the live app refuses the devices' publishes and calls), the resumption at the
next period with a notification; and `addBlock`, refused on FREE, lifting a pause on BASIC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.app import OUTBOX
from billing import accounts, pauses, scheduler
from billing.plans import PlanKind, Subscription
from core import clock, metering
from core.metering import Metered, OperationKind, iso_utc, pause_message
from fleet import events, products
from models.outbox import OutboxEmail
from models.products import Product
from models.usage import PlanChange
from tests.support.accounts import Team, access_token, organization_with_team
from tests.support.gateway import exchange, make_device, publish, session
from tests.support.graphql import audit_trail, gid, graphql, run_mutation
from tests.support.metering import operations, pause
from tests.support.polling import eventually
from tests.support.servers import Clock, SmtpServer

START = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)  # in the period 2030-01
END = datetime(2030, 2, 1, tzinfo=UTC)
NOTIFICATIONS = """query($unread: Boolean) { organization(slug: "acme") {
    notifications(unread: $unread) { edges { node { id kind title read } } } } }"""


@dataclass
class Story:
    acme: Team
    product: Product
    device_id: str
    secret: str
    url: str
    smtp: SmtpServer

    async def use(self, data_operations: int) -> None:
        """Data operations of the device counted by the live app's ledger, the quick way."""
        await metering.meter().record([Metered(
            OperationKind.DEVICE_PUBLISH, self.product.id, self.device_id, clock.now(),
            name="bulk", size=data_operations * 1024)])

    async def publish(self, frame_id: int) -> dict[str, Any]:
        """A real publish of 1 data operation from the device; the cloud's answer."""
        async with session(self.url, self.device_id, self.secret, self.product.id) as (ws, _):
            return await exchange(ws, publish(frame_id))

    async def tick(self) -> list[str]:
        # The live app's broker: its pauses hear what the tick changes.
        return [str(done) for done in await scheduler.tick(
            clock.now(), broker=events.event_log().broker, outbox=OUTBOX)]

    async def emails(self, count: int) -> list[tuple[str, str]]:
        """The usage emails received once all were sent, which must be `count`: (to, subject)."""
        async def sent() -> bool:
            return not await OutboxEmail.filter(sent_at=None).exists()

        await eventually(sent)
        received = [(r.message["To"], r.message["Subject"]) for r in self.smtp.received
                    if r.message["Subject"].startswith("Acme:")]
        assert len(received) == count, received
        return received


@pytest.fixture
async def story(url: str, frozen_clock: Clock, smtp_server: SmtpServer
                ) -> AsyncIterator[Story]:
    frozen_clock.current = START
    acme = await organization_with_team("Acme", "acme",
                                        roles=("OWNER", "ADMINISTRATOR", "DEVELOPER"))
    product = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    device_id, secret = await make_device(product)
    yield Story(acme, product, device_id, secret, url, smtp_server)


def told(subject: str) -> list[tuple[str, str]]:
    return [("owner@example.com", subject), ("administrator@example.com", subject)]


def ack(frame_id: int) -> dict[str, Any]:
    return {"type": "ack", "replyTo": frame_id}


async def paused_until(product: Product, until: datetime | None) -> None:
    """Wait until the live app's meter says the product's devices are paused until `until`
    (None: not paused)."""
    async def says() -> bool:
        return metering.meter().paused_until(product.id) == until

    await eventually(says)


async def test_the_free_plan_warns_pauses_after_its_grace_and_resumes(
    http: httpx.AsyncClient, story: Story, frozen_clock: Clock
) -> None:
    await story.use(69_999)
    assert await story.tick() == []
    assert await story.publish(3) == ack(3)
    assert await operations(story.device_id) == 70_000
    assert await story.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)"]
    warned_70 = "Acme: 70 % of the data operations limit reached"
    assert await story.emails(2) == told(warned_70)

    await story.use(19_999)
    assert await story.publish(4) == ack(4)
    assert await story.tick() == [
        "acme: crossed 90 % of its data operations in 2030-01 (90,000 of 100,000)"]
    warned_90 = "Acme: 90 % of the data operations limit reached"
    assert await story.emails(4) == told(warned_70) + told(warned_90)
    assert await story.tick() == []
    assert await story.tick() == []
    assert await story.emails(4) == told(warned_70) + told(warned_90)

    await story.use(9_999)
    assert await story.publish(5) == ack(5)
    assert await story.tick() == [
        "acme: crossed 100 % of its data operations in 2030-01 (100,000 of 100,000)"]
    full = "Acme: 100 % of the data operations limit reached"
    assert (await story.emails(6))[4:] == told(full)

    # The grace: the devices keep working for 3 days.
    frozen_clock.current = START + timedelta(days=2, hours=23)
    assert await story.tick() == []
    assert metering.meter().paused_until(story.product.id) is None
    assert await story.publish(6) == ack(6)

    frozen_clock.current = START + timedelta(days=3)
    assert await story.tick() == [
        "acme: paused from 2030-01-13 12:00 UTC until 2030-02-01 00:00 UTC"]
    await paused_until(story.product, END)
    assert (await story.emails(8))[6:] == told("Acme: devices paused")
    refused = await story.publish(7)
    assert refused == {"type": "error", "code": "data_limit_reached", "replyTo": 7,
                       "message": pause_message(END), "until": iso_utc(END)}
    owner = await access_token("owner@example.com")
    async with session(story.url, story.device_id, story.secret, story.product.id):
        called = await run_mutation(
            http, "callFunction", "CallFunctionInput",
            {"deviceId": story.device_id, "name": "setTemp", "argument": "22"}, "returnValue",
            token=owner)
    assert called == {"returnValue": None, "userErrors": [
        {"field": None, "code": "DATA_LIMIT_REACHED", "message": pause_message(END)}]}
    assert await operations(story.device_id) == 100_001  # the grace's publish, not the refused

    body = await graphql(http, NOTIFICATIONS, token=owner)
    assert [(n["node"]["kind"], n["node"]["title"], n["node"]["read"]) for n in
            body["data"]["organization"]["notifications"]["edges"]] == [
        ("DEVICES_PAUSED", "Acme: devices paused", False),
        ("USAGE_WARNING", full, False),
        ("USAGE_WARNING", warned_90, False),
        ("USAGE_WARNING", warned_70, False)]

    # The next period: the pause has ended by itself; the tick tells so.
    frozen_clock.current = END + timedelta(minutes=1)
    assert metering.meter().paused_until(story.product.id) is None
    assert await story.publish(8) == ack(8)
    assert await story.tick() == ["acme: resumed at 2030-02-01 00:00 UTC"]
    assert (await story.emails(10))[8:] == told("Acme: devices resumed")
    owner = await access_token("owner@example.com")
    body = await graphql(http, NOTIFICATIONS, token=owner)
    newest = body["data"]["organization"]["notifications"]["edges"][0]["node"]
    assert (newest["kind"], newest["title"]) == ("DEVICES_RESUMED", "Acme: devices resumed")
    assert await story.tick() == []


ADD_BLOCK = ("planChange { plan blocks deviceLimit dataOperationLimit monthlyPriceCents "
             "billedFrom liftedPause }")


async def test_basic_lifts_a_pause_at_once_and_then_adds_blocks(
    http: httpx.AsyncClient, story: Story
) -> None:
    organization = story.acme.organization.id
    await pause(story.product, END)
    assert (await story.publish(3))["code"] == "data_limit_reached"
    upgraded = await accounts.set_plan(organization, Subscription(PlanKind.BASIC))
    assert upgraded.lifted_pause is True
    await pauses.changed(events.event_log().broker)
    await paused_until(story.product, None)
    assert await story.publish(4) == ack(4)
    administrator = await access_token("administrator@example.com")

    added = await run_mutation(http, "addBlock", "AddBlockInput", {
        "organizationId": gid("Organization", organization)}, ADD_BLOCK, token=administrator)
    assert added == {"planChange": {
        "plan": "BASIC", "blocks": 2, "deviceLimit": 200, "dataOperationLimit": 1_440_000,
        "monthlyPriceCents": 59_800, "billedFrom": "2030-02", "liftedPause": False},
        "userErrors": []}
    [entry] = [e for e in await audit_trail(http, "acme", token=administrator)
               if e["action"] == "billing.add_block"]
    assert (entry["actorEmail"], entry["targetType"], entry["targetLabel"], entry["details"]) == (
        "administrator@example.com", "BillingAccount", "BASIC, 2 blocks",
        {"blocks": [1, 2], "billedFrom": "2030-02", "liftedPause": False})


async def test_a_block_on_free_is_refused(http: httpx.AsyncClient, story: Story) -> None:
    owner = await access_token("owner@example.com")
    refused = await run_mutation(http, "addBlock", "AddBlockInput", {
        "organizationId": gid("Organization", story.acme.organization.id)}, ADD_BLOCK,
        token=owner)
    assert refused == {"planChange": None, "userErrors": [{
        "field": None, "code": "BLOCKS_ON_BASIC_ONLY",
        "message": "Blocks are added on the BASIC plan only; this organization is on FREE. "
                   "Changing plans is done by the operator."}]}
    assert await PlanChange.all().count() == 0
    assert [e for e in await audit_trail(http, "acme", token=owner)
            if e["action"] == "billing.add_block"] == []
