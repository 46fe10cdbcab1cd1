"""The usage scheduler (billing/scheduler.py): warnings at 70, 90 and 100 % of each limit once
per period, the free plan's pause after its 3-day grace and the resumption at the next period,
idempotent ticks, one leader on PostgreSQL; and the plan changes it depends on
(billing/accounts.py), with the operator's commands."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.app import OUTBOX
from billing import accounts, pauses, scheduler
from billing.ledger import Ledger
from billing.plans import GRACE, Contract, Limits, PlanKind, Subscription
from core import clock
from core.broker import Broker, InProcessBroker
from core.errors import Conflict
from core.metering import Metered, OperationKind
from fleet import products
from models.devices import Device
from models.outbox import OutboxEmail
from models.products import Product
from models.usage import BillingAccount, Notification, PlanChange, UsagePause, UsageThreshold
from tests.support.accounts import Team, organization_with_team
from tests.support.constants import TEST_DATABASE
from tests.support.polling import eventually
from tests.support.servers import Clock
from tests.support.worlds import device_id

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)  # in the period 2030-01
END = datetime(2030, 2, 1, tzinfo=UTC)
DEVICE = device_id("ab")


@dataclass
class World:
    acme: Team
    product: Product
    broker: Broker
    changes: list[bytes]  # what `pauses.changed` published

    async def use(self, operations: int) -> None:
        """`operations` more data operations of DEVICE, now."""
        await Ledger(lambda _product: None).record([Metered(
            OperationKind.DEVICE_PUBLISH, self.product.id, DEVICE, clock.now(), name="t",
            size=operations * 1024)])

    async def tick(self) -> list[str]:
        return [str(done) for done in
                await scheduler.tick(clock.now(), broker=self.broker, outbox=OUTBOX)]


@pytest.fixture
async def world(frozen_clock: Clock) -> AsyncIterator[World]:
    frozen_clock.current = START
    acme = await organization_with_team("Acme", "acme",
                                        roles=("OWNER", "ADMINISTRATOR", "DEVELOPER"))
    product = await products.create_product(
        acme.principals["OWNER"], acme.organization.id, name="Thermostat", slug="thermostat",
        description="", platform="Photon", customer_auth="SIMPLE")
    broker = InProcessBroker()
    await broker.start()
    changes: list[bytes] = []
    async with broker.subscribed(pauses.CHANNEL, changes.append):
        yield World(acme, product, broker, changes)
    await broker.close()


async def thresholds() -> list[tuple[str, int, int, int, datetime]]:
    return [tuple(row) for row in await UsageThreshold.all().order_by("id").values_list(
        "metric", "threshold", "used", "limit", "crossed_at")]


async def notifications() -> list[tuple[str, str, str]]:
    return [tuple(row) for row in await Notification.all().order_by("id").values_list(
        "kind", "key", "title")]


async def emails() -> list[tuple[str, str]]:
    """The usage emails queued (not the team's invitations), in order."""
    return [tuple(row) for row in await OutboxEmail.filter(subject__startswith="Acme:")
            .order_by("id").values_list("to", "subject")]


def told(subject: str) -> list[tuple[str, str]]:
    """The email every one told gets: the owner and the administrator, not the developer."""
    return [("owner@example.com", subject), ("administrator@example.com", subject)]


async def test_each_threshold_is_crossed_exactly_once_a_period(world: World) -> None:
    await world.use(69_999)
    assert await world.tick() == []
    await world.use(1)
    assert await world.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)"]
    assert await thresholds() == [("DATA_OPERATIONS", 70, 70_000, 100_000, START)]
    assert await notifications() == [("USAGE_WARNING", "threshold:2030-01:DATA_OPERATIONS:70",
                                      "Acme: 70 % of the data operations limit reached")]
    assert await emails() == told("Acme: 70 % of the data operations limit reached")
    body = await OutboxEmail.filter(to="owner@example.com", subject__startswith="Acme:").first()
    assert body is not None
    assert body.body == "Acme has used 70,000 of its 100,000 data operations in 2030-01."

    # More usage under the next threshold, and more ticks: nothing more.
    await world.use(19_999)
    assert await world.tick() == []
    assert await world.tick() == []
    assert len(await emails()) == 2
    assert world.changes == []


async def test_a_jump_crosses_every_threshold_it_passes(world: World) -> None:
    await world.use(69_000)
    assert await world.tick() == []
    await world.use(26_000)
    assert await world.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (95,000 of 100,000)",
        "acme: crossed 90 % of its data operations in 2030-01 (95,000 of 100,000)"]
    assert [(m, t) for m, t, *_ in await thresholds()] == [("DATA_OPERATIONS", 70),
                                                           ("DATA_OPERATIONS", 90)]
    assert await emails() == [*told("Acme: 70 % of the data operations limit reached"),
                              *told("Acme: 90 % of the data operations limit reached")]


async def test_two_ticks_at_once_write_each_thing_once(world: World) -> None:
    await world.use(100_000)
    first, second = await asyncio.gather(world.tick(), world.tick())
    assert sorted(first + second) == sorted(
        f"acme: crossed {t} % of its data operations in 2030-01 (100,000 of 100,000)"
        for t in (70, 90, 100))
    assert len(await thresholds()) == 3
    assert len(await notifications()) == 3
    assert len(await emails()) == 6

    clock.set_source(lambda: START + GRACE)
    first, second = await asyncio.gather(world.tick(), world.tick())
    assert first + second == ["acme: paused from 2030-01-13 12:00 UTC until 2030-02-01 00:00 UTC"]
    assert [kind for kind, *_ in await notifications()].count("DEVICES_PAUSED") == 1
    assert len(world.changes) == 1


async def test_the_free_plan_pauses_after_its_grace_and_resumes_next_period(
    world: World, frozen_clock: Clock
) -> None:
    await world.use(100_000)
    assert len(await world.tick()) == 3
    full = await Notification.get(key="threshold:2030-01:DATA_OPERATIONS:100")
    assert full.body == (
        "Acme has used 100,000 of its 100,000 data operations in 2030-01. On the free plan, its "
        "devices keep working for a 3-day grace; from 2030-01-13 12:00 UTC their data "
        "operations are paused until 2030-02-01 00:00 UTC, when they resume by themselves. "
        "Upgrading ends the pause.")

    frozen_clock.current = START + GRACE - timedelta(seconds=1)
    assert await world.tick() == []
    assert await BillingAccount.exists(organization_id=world.acme.organization.id) is False

    # The tick comes late: the pause begins when the grace ended, not at the tick.
    frozen_clock.current = START + GRACE + timedelta(minutes=7)
    assert await world.tick() == [
        "acme: paused from 2030-01-13 12:00 UTC until 2030-02-01 00:00 UTC"]
    account = await BillingAccount.get(organization_id=world.acme.organization.id)
    assert (account.plan, account.paused_from, account.paused_until) == (
        "FREE", START + GRACE, END)
    assert world.changes == [b""]
    assert (await notifications())[-1] == (
        "DEVICES_PAUSED", "paused:2030-01:2030-01-13T12:07:00+00:00", "Acme: devices paused")
    assert (await emails())[-2:] == told("Acme: devices paused")
    memory = pauses.Pauses(world.broker)
    await memory.reload()
    assert memory.paused_until(world.product.id) == END
    assert await world.tick() == []

    frozen_clock.current = END - timedelta(microseconds=1)
    assert memory.paused_until(world.product.id) == END
    frozen_clock.current = END + timedelta(seconds=30)
    assert memory.paused_until(world.product.id) is None  # it ended by itself
    assert await world.tick() == ["acme: resumed at 2030-02-01 00:00 UTC"]
    account = await BillingAccount.get(organization_id=world.acme.organization.id)
    assert (account.paused_from, account.paused_until) == (None, None)
    assert world.changes == [b"", b""]
    assert (await notifications())[-1] == ("DEVICES_RESUMED", "resumed:2030-01",
                                           "Acme: devices resumed")
    assert (await emails())[-2:] == told("Acme: devices resumed")
    # The new period starts from nothing: no threshold, no pause.
    assert await world.tick() == []
    assert len(await thresholds()) == 3


async def test_a_grace_that_outlasts_the_period_pauses_nothing(
    world: World, frozen_clock: Clock
) -> None:
    frozen_clock.current = END - timedelta(days=2)
    await world.use(100_000)
    assert len(await world.tick()) == 3
    body = (await Notification.get(key="threshold:2030-01:DATA_OPERATIONS:100")).body
    assert body.endswith("On the free plan, the period ends at 2030-02-01 00:00 UTC, before "
                         "the grace.")
    frozen_clock.current = END - timedelta(minutes=1)
    assert await world.tick() == []
    frozen_clock.current = END + timedelta(days=2)
    assert await world.tick() == []
    assert await BillingAccount.filter(paused_from__isnull=False).count() == 0


async def test_a_threshold_reached_in_a_periods_last_minute_is_told_the_next_day(
    world: World, frozen_clock: Clock
) -> None:
    frozen_clock.current = END - timedelta(seconds=10)
    await world.use(70_000)
    frozen_clock.current = END + timedelta(hours=23)
    assert await world.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)"]


async def online_devices(product: Product, count: int, first: int = 0) -> None:
    await Device.bulk_create([
        Device(id=device_id(f"d{n:03d}"), secret_hash="0" * 64, platform="Photon",
               provisioned_at=clock.now(), product=product,
               first_online_at=clock.now() - timedelta(minutes=1))
        for n in range(first, first + count)])


async def test_the_device_limit_warns_and_enterprise_is_never_paused(
    world: World, frozen_clock: Clock
) -> None:
    await accounts.set_plan(world.acme.organization.id, Subscription(
        PlanKind.ENTERPRISE, contract=Contract(Limits(devices=10, data_operations=1_000))))
    await online_devices(world.product, 6)
    await Device.create(id=device_id("f0"), secret_hash="0" * 64, platform="Photon",
                        provisioned_at=clock.now(), first_online_at=START - timedelta(days=1))
    assert await world.tick() == []  # a device in no product is nobody's
    await online_devices(world.product, 3, first=6)
    await world.use(1_500)
    assert await world.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (1,500 of 1,000)",
        "acme: crossed 90 % of its data operations in 2030-01 (1,500 of 1,000)",
        "acme: crossed 100 % of its data operations in 2030-01 (1,500 of 1,000)",
        "acme: crossed 70 % of its devices in 2030-01 (9 of 10)",
        "acme: crossed 90 % of its devices in 2030-01 (9 of 10)"]
    device_full = "Acme: 100 % of the devices limit reached"
    await online_devices(world.product, 1, first=9)
    assert await world.tick() == ["acme: crossed 100 % of its devices in 2030-01 (10 of 10)"]
    assert (await emails())[-2:] == told(device_full)
    body = (await Notification.get(key="threshold:2030-01:DEVICES:100")).body
    assert body == ("Acme has 10 billable devices in 2030-01; its plan allows 10. The "
                    "contract's limit is reached; devices keep working.")

    frozen_clock.current = START + timedelta(days=10)
    assert await world.tick() == []
    account = await BillingAccount.get(organization_id=world.acme.organization.id)
    assert account.paused_from is None


async def test_a_second_scheduler_holding_no_lock_does_nothing(world: World) -> None:
    await world.use(70_000)
    first = scheduler.Scheduler(broker=world.broker, outbox=OUTBOX)
    second = scheduler.Scheduler(broker=world.broker, outbox=OUTBOX)
    try:
        done = await first.run_once()
        assert [str(d) for d in done or []] == [
            "acme: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)"]
        await world.use(20_000)
        if TEST_DATABASE == "postgres":
            # The first holds the lock: the second ticks not at all, whatever there is to do.
            assert await second.run_once() is None
            assert len(await thresholds()) == 1
            await first.close()  # the leader goes away: the second takes over
            assert [str(d) for d in await second.run_once() or []] == [
                "acme: crossed 90 % of its data operations in 2030-01 (90,000 of 100,000)"]
            assert await first.run_once() is None
        else:
            # SQLite serves one process: every scheduler leads.
            assert [str(d) for d in await second.run_once() or []] == [
                "acme: crossed 90 % of its data operations in 2030-01 (90,000 of 100,000)"]
    finally:
        await first.close()
        await second.close()


async def test_the_app_runs_the_scheduler_every_interval(world: World) -> None:
    await world.use(70_000)

    async def crossed(threshold: int) -> bool:
        return await UsageThreshold.filter(threshold=threshold).exists()

    async with scheduler.running(1, broker=world.broker, outbox=OUTBOX):
        await eventually(lambda: crossed(70))
        await world.use(20_000)
        await eventually(lambda: crossed(90))
    assert [t for _, t, *_ in await thresholds()] == [70, 90]


async def test_a_pause_lifted_by_an_upgrade_comes_again_back_on_free(
    world: World, frozen_clock: Clock
) -> None:
    org = world.acme.organization.id
    await world.use(100_000)
    await world.tick()
    frozen_clock.current = START + GRACE
    assert len(await world.tick()) == 1
    assert (await accounts.set_plan(org, Subscription(PlanKind.BASIC))).lifted_pause is True
    assert await world.tick() == []  # BASIC is never paused
    await accounts.set_plan(org, Subscription(PlanKind.FREE))
    frozen_clock.advance(hours=1)
    assert await world.tick() == [
        "acme: paused from 2030-01-13 13:00 UTC until 2030-02-01 00:00 UTC"]
    assert [k for k, *_ in await notifications()].count("DEVICES_PAUSED") == 2
    # Both pauses are kept: the first as lifted by the upgrade.
    assert await UsagePause.filter(organization_id=org).order_by("paused_from").values_list(
        "period", "paused_from", "paused_until", "lifted_at") == [
        ("2030-01", START + GRACE, END, START + GRACE),
        ("2030-01", START + GRACE + timedelta(hours=1), END, None)]


# --- Plan changes ------------------------------------------------------------------------------


async def test_a_plan_change_applies_now_and_is_billed_from_the_next_period(world: World) -> None:
    org = world.acme.organization.id
    done = await accounts.set_plan(org, Subscription(PlanKind.BASIC, blocks=2))
    assert (done.account.plan, done.account.blocks, done.change.billed_from,
            done.lifted_pause) == ("BASIC", 2, "2030-02", False)
    assert (await accounts.subscription_of(org)).limits == Limits(200, 1_440_000)
    clock.set_source(lambda: END)
    done = await accounts.add_block(org)
    assert (done.account.blocks, done.change.billed_from) == (3, "2030-02")  # at its start
    assert await PlanChange.filter(organization_id=org).order_by("id").values_list(
        "plan", "blocks", "billed_from") == [("BASIC", 2, "2030-02"), ("BASIC", 3, "2030-02")]


async def test_a_block_lifts_a_pause_at_once_and_only_basic_has_blocks(world: World) -> None:
    org = world.acme.organization.id
    with pytest.raises(Conflict) as refused:
        await accounts.add_block(org)
    assert (refused.value.code, refused.value.message) == (
        "BLOCKS_ON_BASIC_ONLY", "Blocks are added on the BASIC plan only; this organization "
        "is on FREE. Changing plans is done by the operator.")
    assert await PlanChange.all().count() == 0
    await BillingAccount.create(organization_id=org, plan="BASIC", paused_from=START,
                                paused_until=END, updated_at=START)
    done = await accounts.add_block(org)
    assert (done.account.blocks, done.account.paused_from, done.account.paused_until,
            done.lifted_pause) == (2, None, None, True)
    stored = await BillingAccount.get(organization_id=org)
    assert (stored.blocks, stored.paused_from) == (2, None)


async def test_two_blocks_added_at_once_are_two_blocks(world: World) -> None:
    org = world.acme.organization.id
    await accounts.set_plan(org, Subscription(PlanKind.BASIC))
    await asyncio.gather(accounts.add_block(org), accounts.add_block(org))
    assert (await BillingAccount.get(organization_id=org)).blocks == 3


async def test_upgrading_from_free_lifts_its_pause(world: World) -> None:
    org = world.acme.organization.id
    await BillingAccount.create(organization_id=org, paused_from=START, paused_until=END,
                                updated_at=START)
    done = await accounts.set_plan(org, Subscription(PlanKind.BASIC))
    assert done.lifted_pause is True
    assert (await BillingAccount.get(organization_id=org)).paused_until is None


async def test_a_pause_committed_as_a_plan_changes_is_lifted_by_it(
    world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's pause commits between the change's first read of the account and its
    update: the change reads it again, locked, and lifts it."""
    org = world.acme.organization.id
    await BillingAccount.create(organization_id=org, updated_at=START)
    get_or_create = BillingAccount.get_or_create

    async def then_paused(*args: object, **kwargs: object) -> object:
        found = await get_or_create(*args, **kwargs)  # type: ignore[arg-type]
        await BillingAccount.filter(organization_id=org).update(paused_from=START,
                                                                paused_until=END)
        await UsagePause.create(organization_id=org, period="2030-01", paused_from=START,
                                paused_until=END)
        return found

    monkeypatch.setattr(BillingAccount, "get_or_create", then_paused)
    frozen_clock.advance(hours=1)
    done = await accounts.set_plan(org, Subscription(PlanKind.ENTERPRISE, contract=Contract(
        Limits(devices=10, data_operations=1_000))))
    assert done.lifted_pause is True
    stored = await BillingAccount.get(organization_id=org)
    assert (stored.plan, stored.paused_from, stored.paused_until) == ("ENTERPRISE", None, None)
    assert await UsagePause.filter(organization_id=org).values_list("lifted_at", flat=True) == [
        START + timedelta(hours=1)]


async def test_only_a_free_account_is_read_as_paused(world: World) -> None:
    org = world.acme.organization.id
    await BillingAccount.create(organization_id=org, plan="BASIC", paused_from=START,
                                paused_until=END, updated_at=START)
    memory = pauses.Pauses(world.broker)
    await memory.reload()
    assert memory.paused_until(world.product.id) is None
    await BillingAccount.filter(organization_id=org).update(plan="FREE")
    await memory.reload()
    assert memory.paused_until(world.product.id) == END


async def test_an_account_with_no_pause_start_is_not_resumed(
    world: World, frozen_clock: Clock
) -> None:
    await BillingAccount.create(organization_id=world.acme.organization.id, paused_until=END,
                                updated_at=START)
    frozen_clock.current = END + timedelta(minutes=1)
    assert await world.tick() == []
    assert await notifications() == []


def test_the_leader_connects_with_database_urls_own_options() -> None:
    assert scheduler.asyncpg_dsn(
        "postgres://user:secret@db.example.com:6432/cloud?sslmode=verify-full"
        "&sslrootcert=%2Fetc%2Fca.pem&minsize=2&maxsize=20&application_name=devicecloud"
    ) == ("postgresql://user:secret@db.example.com:6432/cloud?sslmode=verify-full"
          "&sslrootcert=%2Fetc%2Fca.pem&application_name=devicecloud")
    assert scheduler.asyncpg_dsn("asyncpg://user@localhost/cloud") == \
        "postgresql://user@localhost/cloud"


# --- The operator's commands -------------------------------------------------------------------


async def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_operator_sets_plans_and_ticks(database_url: str, world: World) -> None:
    clock.set_source(None)  # the commands run on the real clock: so does this test
    now = clock.now()
    assert await cli(database_url, "plan", "set", "acme", "BASIC", "--blocks", "3") == (
        0, "acme is on BASIC, 3 blocks: 300 devices and 2,160,000 data operations a month, "
           f"89700 cents a month; the limits apply now, billed from "
           f"{accounts.billed_from(now)}.\n", "")
    assert await cli(database_url, "plan", "set", "acme", "ENTERPRISE", "--devices", "5",
                     "--data-operations", "1000", "--manufacturing-grace") == (
        0, "acme is on ENTERPRISE: 5 devices and 1,000 data operations a month, by "
           "contract, with the manufacturing grace; the limits apply now, billed from "
           f"{accounts.billed_from(now)}.\n", "")
    assert await cli(database_url, "plan", "set", "acme", "ENTERPRISE", "--devices", "5") == (
        1, "", "ENTERPRISE needs its contract's limits: --devices N --data-operations N.\n")
    assert await cli(database_url, "plan", "set", "acme", "FREE", "--blocks", "2") == (
        1, "", "FREE is not sold as 2 blocks.\n")
    assert await cli(database_url, "plan", "set", "nobody", "FREE") == (
        1, "", "No organization has the slug 'nobody'.\n")

    await world.use(950)
    period = now.strftime("%Y-%m")
    assert await cli(database_url, "usage", "tick") == (0, "".join(
        f"acme: crossed {t} % of its data operations in {period} (950 of 1,000)\n"
        for t in (70, 90)) + "2 things done.\n", "")
    assert await cli(database_url, "usage", "tick") == (0, "0 things done.\n", "")


async def test_one_organizations_failure_holds_up_no_other(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    globex = await organization_with_team("Globex", "globex", domain="globex.example",
                                          roles=("OWNER",))
    kettle = await products.create_product(
        globex.principals["OWNER"], globex.organization.id, name="Kettle", slug="kettle",
        description="", platform="Photon", customer_auth="SIMPLE")
    await world.use(70_000)
    # One device online of the one Acme's contract allows: its billable devices are counted.
    await accounts.set_plan(world.acme.organization.id, Subscription(
        PlanKind.ENTERPRISE, contract=Contract(Limits(devices=1, data_operations=100_000))))
    await online_devices(world.product, 1)
    await Ledger(lambda _product: None).record([Metered(
        OperationKind.DEVICE_PUBLISH, kettle.id, DEVICE, clock.now(), name="t",
        size=70_000 * 1024)])
    counted = scheduler.billable_devices

    async def broken(organization_id: int, *args: object, **kwargs: bool) -> object:
        if organization_id == world.acme.organization.id:
            raise RuntimeError("broken")
        return await counted(organization_id, *args, **kwargs)

    monkeypatch.setattr(scheduler, "billable_devices", broken)
    with caplog.at_level("ERROR", logger="devicecloud.scheduler"):
        assert await world.tick() == [
            "globex: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)"]
    [record] = [r for r in caplog.records if r.name == "devicecloud.scheduler"]
    assert (record.getMessage(), record.organization_id) == (
        "the usage scheduler failed for an organization", world.acme.organization.id)
    monkeypatch.setattr(scheduler, "billable_devices", counted)
    assert await world.tick() == [
        "acme: crossed 70 % of its data operations in 2030-01 (70,000 of 100,000)",
        *(f"acme: crossed {t} % of its devices in 2030-01 (1 of 1)" for t in (70, 90, 100))]
