"""`organization.usage` and `product.usage` against the live server: counters written through the
ledger, read back exactly (sums by product, kind, day and device, percentages, billable devices,
thresholds, the pause and the grace), and the periods that can be asked for. Who may see them
is tests/test_usage_permissions.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.app import OUTBOX
from billing import accounts, scheduler, usage
from billing.ledger import Ledger
from billing.plans import Contract, Limits, PlanKind, Subscription
from core import clock
from core.broker import InProcessBroker
from core.metering import Metered, OperationKind
from fleet import products
from models.devices import Device
from models.organizations import Organization
from models.products import Product
from models.usage import BillingAccount, PlanChange, UsagePause, UsageThreshold
from tests.support.accounts import Team, access_token
from tests.support.database import recorded_queries
from tests.support.gateway import exchange, make_device, publish, session
from tests.support.graphql import graphql
from tests.support.servers import Clock
from tests.support.worlds import device_id, two_organizations

K = OperationKind
CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # Acme, its products
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
D1, D2, D3, D4, KD = (device_id(p) for p in ("d1", "d2", "d3", "d4", "k1"))


def at(day: int, month: int = 3, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@dataclass
class World:
    acme: Team
    thermostat: Product
    sprinkler: Product
    kettle: Product  # Globex's


async def record(*usages: Metered) -> None:
    await Ledger(lambda _product: None).record(list(usages))


def times(n: int, usage: Metered) -> list[Metered]:
    return [usage] * n


@pytest.fixture
async def world(frozen_clock: Clock) -> World:
    """Acme (created in January 2026) with thermostat (D1 online since January, D2 since March
    5, D4 never) and sprinkler (D3 since February); Globex's kettle with KD. Their counters:
    March (D1 10, D2 18, D3 4, KD 100) and February (D1 7). The clock stands at NOW."""
    frozen_clock.current = CREATED
    base = await two_organizations()
    sprinkler = await products.create_product(
        base.acme.principals["OWNER"], base.acme.organization.id, name="Sprinkler",
        slug="sprinkler", description="", platform="Photon", customer_auth="SIMPLE")
    for device, product, name, first in (
            (D1, base.thermostat, "Hall", at(10, 1)), (D2, base.thermostat, "Den", at(5)),
            (D4, base.thermostat, "Spare", None), (D3, sprinkler, "Lawn", at(1, 2)),
            (KD, base.kettle, "Kettle", at(1, 2))):
        await Device.create(id=device, secret_hash="0" * 64, platform="Photon",
                            provisioned_at=CREATED, product=product, name=name,
                            first_online_at=first)
    t, s, k = base.thermostat.id, sprinkler.id, base.kettle.id
    await record(
        Metered(K.DEVICE_PUBLISH, t, D1, at(1, hour=1), name="temp", size=1025),
        *times(3, Metered(K.FUNCTION_CALL, t, D1, at(1, hour=23))),
        *times(5, Metered(K.LOCATION_POINT, t, D1, at(4))),
        *times(2, Metered(K.VARIABLE_READ, t, D2, at(4))),
        Metered(K.DEVICE_PUBLISH, t, D2, at(10, hour=14), name="temp", size=16384),
        Metered(K.DEVICE_PUBLISH, t, D2, at(10, hour=14), name="spark/status", size=10),
        *times(4, Metered(K.SUBSCRIPTION_DELIVERY, s, D3, at(2), name="water", size=10)),
        *times(100, Metered(K.FUNCTION_CALL, k, KD, at(1))),
        *times(7, Metered(K.FUNCTION_CALL, t, D1, at(28, 2))),
    )
    frozen_clock.current = NOW
    return World(base.acme, base.thermostat, sprinkler, base.kettle)


async def enterprise(organization_id: int, *, devices: int, operations: int) -> None:
    await accounts.set_plan(organization_id, Subscription(PlanKind.ENTERPRISE, contract=Contract(
        Limits(devices=devices, data_operations=operations))))


ORGANIZATION_USAGE = """
query($period: String) { organization(slug: "acme") { usage(period: $period) {
  period start end plan blocks
  dataOperations { used limit percent
    byProduct { productId product { slug } operations }
    byKind { kind operations }
    byDay { date operations } }
  devices { billable limit percent byProduct { productId product { slug } count } }
  thresholdsCrossed { metric threshold used limit crossedAt }
  pause { pausedFrom pausedUntil graceEndsAt }
  topDevices(first: 2) { deviceId name productId product { slug } operations }
} } }
"""

PRODUCT_USAGE = """
query($period: String) { product(idOrSlug: "thermostat") { usage(period: $period) {
  period start end
  dataOperations { used byKind { kind operations } byDay { date operations } }
  billableDevices
  topDevices { deviceId name operations }
} } }
"""


async def ask(http: Any, query: str, period: str | None = None, role: str = "ADMINISTRATOR"
              ) -> dict[str, Any]:
    token = await access_token(f"{role.lower()}@example.com")
    return await graphql(http, query, {"period": period}, token=token)


def kinds(function_call: int, variable_read: int, publish: int, delivery: int,
          location: int) -> list[dict[str, Any]]:
    return [{"kind": k, "operations": n} for k, n in (
        ("FUNCTION_CALL", function_call), ("VARIABLE_READ", variable_read),
        ("DEVICE_PUBLISH", publish), ("SUBSCRIPTION_DELIVERY", delivery),
        ("LOCATION_POINT", location))]


def march_days(**operations: int) -> list[dict[str, Any]]:
    """March 1 to 10 (today), zeros but for `operations` (`d4=7`: March 4 had 7)."""
    return [{"date": f"2026-03-{day:02d}", "operations": operations.get(f"d{day}", 0)}
            for day in range(1, 11)]


async def test_the_current_period_of_an_organization(http, world: World):
    await enterprise(world.acme.organization.id, devices=4, operations=40)
    await UsageThreshold.create(organization_id=world.acme.organization.id, period="2026-03",
                                metric="DATA_OPERATIONS", threshold=70, used=28, limit=40,
                                crossed_at=at(10, hour=14))
    await UsageThreshold.create(organization_id=world.acme.organization.id, period="2026-02",
                                metric="DEVICES", threshold=70, used=3, limit=4,
                                crossed_at=at(1, 2))
    body = await ask(http, ORGANIZATION_USAGE)
    assert body.get("errors") is None, body
    thermostat, sprinkler = {"slug": "thermostat"}, {"slug": "sprinkler"}
    assert body["data"]["organization"]["usage"] == {
        "period": "2026-03", "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-04-01T00:00:00+00:00", "plan": "ENTERPRISE", "blocks": 1,
        "dataOperations": {
            "used": 32, "limit": 40, "percent": 80.0,
            "byProduct": [
                {"productId": world.thermostat.id, "product": thermostat, "operations": 28},
                {"productId": world.sprinkler.id, "product": sprinkler, "operations": 4},
            ],
            "byKind": kinds(3, 2, 18, 4, 5),
            "byDay": march_days(d1=5, d2=4, d4=7, d10=16),
        },
        # D1 and D2 in thermostat, D3 in sprinkler; D4 never came online.
        "devices": {"billable": 3, "limit": 4, "percent": 75.0, "byProduct": [
            {"productId": world.thermostat.id, "product": thermostat, "count": 2},
            {"productId": world.sprinkler.id, "product": sprinkler, "count": 1},
        ]},
        "thresholdsCrossed": [{"metric": "DATA_OPERATIONS", "threshold": 70, "used": 28,
                               "limit": 40, "crossedAt": "2026-03-10T14:00:00+00:00"}],
        "pause": {"pausedFrom": None, "pausedUntil": None, "graceEndsAt": None},
        "topDevices": [
            {"deviceId": D2, "name": "Den", "productId": world.thermostat.id,
             "product": thermostat, "operations": 18},
            {"deviceId": D1, "name": "Hall", "productId": world.thermostat.id,
             "product": thermostat, "operations": 10},
        ],
    }


async def test_a_past_period_is_whole_and_has_its_own_counters(http, world: World):
    body = await ask(http, ORGANIZATION_USAGE, "2026-02")
    found = body["data"]["organization"]["usage"]
    assert (found["period"], found["start"], found["end"]) == (
        "2026-02", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00")
    assert (found["plan"], found["dataOperations"]["limit"], found["devices"]["limit"]) == (
        "FREE", 100_000, 100)
    assert found["dataOperations"]["used"] == 7
    assert found["dataOperations"]["percent"] == 0.0
    assert found["dataOperations"]["byKind"] == kinds(7, 0, 0, 0, 0)
    assert found["dataOperations"]["byDay"] == [
        {"date": f"2026-02-{day:02d}", "operations": 7 if day == 28 else 0}
        for day in range(1, 29)]
    # By the end of February D1 (January) and D3 (February 1) had come online.
    assert found["devices"]["billable"] == 2
    assert found["topDevices"] == [{"deviceId": D1, "name": "Hall",
                                    "productId": world.thermostat.id,
                                    "product": {"slug": "thermostat"}, "operations": 7}]


async def test_a_product_alone(http, world: World):
    body = await ask(http, PRODUCT_USAGE, role="OWNER")
    assert body["data"]["product"]["usage"] == {
        "period": "2026-03", "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-04-01T00:00:00+00:00",
        "dataOperations": {"used": 28, "byKind": kinds(3, 2, 18, 0, 5),
                           "byDay": march_days(d1=5, d4=7, d10=16)},
        "billableDevices": 2,
        "topDevices": [{"deviceId": D2, "name": "Den", "operations": 18},
                       {"deviceId": D1, "name": "Hall", "operations": 10}],
    }


async def test_percent_has_one_decimal_rounded_half_up(http, world: World):
    # March's 32, 4369 publishes of 16 KB and 14 calls: 69,950 of FREE's 100,000, 69.95 %.
    t = world.thermostat.id
    await record(*times(4369, Metered(K.DEVICE_PUBLISH, t, D1, at(9), name="x", size=16384)),
                 *times(14, Metered(K.FUNCTION_CALL, t, D1, at(9))))
    body = await ask(http, "{ organization(slug: \"acme\") { usage { dataOperations { used "
                           "limit percent } } } }")
    assert body["data"]["organization"]["usage"]["dataOperations"] == {
        "used": 69_950, "limit": 100_000, "percent": 70.0}
    await record(Metered(K.FUNCTION_CALL, t, D1, at(9)))
    body = await ask(http, "{ organization(slug: \"acme\") { usage { dataOperations { "
                           "percent } } } }")
    assert body["data"]["organization"]["usage"]["dataOperations"] == {"percent": 70.0}


async def pause_of(http: Any, period: str) -> dict[str, Any]:
    body = await ask(http, "query($period: String) { organization(slug: \"acme\") { "
                           "usage(period: $period) { pause { pausedFrom pausedUntil "
                           "graceEndsAt } } } }", period)
    assert body.get("errors") is None, body
    found: dict[str, Any] = body["data"]["organization"]["usage"]["pause"]
    return found


async def test_the_grace_after_100_percent_then_the_pause(http, world: World):
    organization = world.acme.organization.id
    for threshold in (70, 90, 100):
        await UsageThreshold.create(organization_id=organization, period="2026-03",
                                    metric="DATA_OPERATIONS", threshold=threshold,
                                    used=100_000, limit=100_000, crossed_at=at(8, hour=9))
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": "2026-03-11T09:00:00+00:00"}
    paused = await UsagePause.create(organization_id=organization, period="2026-03",
                                     paused_from=at(11, hour=9),
                                     paused_until=datetime(2026, 4, 1, tzinfo=UTC))
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": "2026-03-11T09:00:00+00:00", "pausedUntil": "2026-04-01T00:00:00+00:00",
        "graceEndsAt": None}
    # February had neither.
    assert await pause_of(http, "2026-02") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": None}
    # On BASIC there is no grace to wait for.
    await paused.delete()
    await accounts.set_plan(organization, Subscription(PlanKind.BASIC))
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": None}


async def pause_and_resume(frozen_clock: Clock, *, upgrade_at: datetime | None = None) -> None:
    """March's 100 % at 8 March 09:00: the scheduler pauses Acme as its grace ends, an upgrade
    at `upgrade_at` lifts the pause if given, and the scheduler resumes it in April."""
    organization = await Organization.get(slug="acme")
    await UsageThreshold.create(organization_id=organization.id, period="2026-03",
                                metric="DATA_OPERATIONS", threshold=100, used=100_000,
                                limit=100_000, crossed_at=at(8, hour=9))
    broker = InProcessBroker()
    await broker.start()
    try:
        frozen_clock.current = at(11, hour=9) + timedelta(minutes=5)
        assert [str(d) for d in await scheduler.tick(clock.now(), broker=broker,
                                                     outbox=OUTBOX)] == [
            "acme: paused from 2026-03-11 09:00 UTC until 2026-04-01 00:00 UTC"]
        if upgrade_at is not None:
            frozen_clock.current = upgrade_at
            assert (await accounts.set_plan(organization.id, Subscription(PlanKind.BASIC))
                    ).lifted_pause is True
            await accounts.set_plan(organization.id, Subscription(PlanKind.FREE))
        frozen_clock.current = datetime(2026, 4, 2, tzinfo=UTC)
        await scheduler.tick(clock.now(), broker=broker, outbox=OUTBOX)
    finally:
        await broker.close()
    account = await BillingAccount.get(organization_id=organization.id)
    assert (account.paused_from, account.paused_until) == (None, None)


async def test_a_past_periods_pause_stays_in_its_view(http, world: World,
                                                        frozen_clock: Clock):
    await pause_and_resume(frozen_clock)
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": "2026-03-11T09:00:00+00:00", "pausedUntil": "2026-04-01T00:00:00+00:00",
        "graceEndsAt": None}
    assert await pause_of(http, "2026-04") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": None}


async def test_a_lifted_pause_ends_when_it_was_lifted(http, world: World, frozen_clock: Clock):
    await pause_and_resume(frozen_clock, upgrade_at=at(15, hour=10))
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": "2026-03-11T09:00:00+00:00", "pausedUntil": "2026-03-15T10:00:00+00:00",
        "graceEndsAt": None}


LIMITS = """
query($period: String) { organization(slug: "acme") { usage(period: $period) {
  plan blocks dataOperations { limit } devices { limit } } } }
"""


async def test_a_period_is_seen_against_the_plan_in_force_at_its_end(
    http, world: World, frozen_clock: Clock
):
    organization = world.acme.organization.id
    frozen_clock.current = at(20, 1)
    await accounts.set_plan(organization, Subscription(PlanKind.ENTERPRISE, contract=Contract(
        Limits(devices=7, data_operations=900), manufacturing_grace=True)))
    frozen_clock.current = at(2)
    await accounts.set_plan(organization, Subscription(PlanKind.BASIC, blocks=2))
    frozen_clock.current = NOW

    async def limits(period: str) -> dict[str, Any]:
        body = await ask(http, LIMITS, period)
        assert body.get("errors") is None, body
        found: dict[str, Any] = body["data"]["organization"]["usage"]
        return found

    assert await limits("2026-03") == {"plan": "BASIC", "blocks": 2,
                                       "dataOperations": {"limit": 1_440_000},
                                       "devices": {"limit": 200}}
    # The contract of 20 January was in force at the ends of January and February.
    for period in ("2026-01", "2026-02"):
        assert await limits(period) == {"plan": "ENTERPRISE", "blocks": 1,
                                        "dataOperations": {"limit": 900},
                                        "devices": {"limit": 7}}
    # With no change before January's end, January is seen against FREE, one block.
    await PlanChange.filter(organization_id=organization).update(changed_at=at(1, 2, hour=0))
    assert await limits("2026-01") == {"plan": "FREE", "blocks": 1,
                                       "dataOperations": {"limit": 100_000},
                                       "devices": {"limit": 100}}


async def test_no_grace_ends_after_its_period(http, world: World):
    """100 % reached less than 3 days before the period ends: the next period comes first."""
    await UsageThreshold.create(organization_id=world.acme.organization.id, period="2026-02",
                                metric="DATA_OPERATIONS", threshold=100, used=100_000,
                                limit=100_000, crossed_at=at(26, 2))
    assert await pause_of(http, "2026-02") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": None}
    await UsageThreshold.filter(period="2026-02").update(crossed_at=at(25, 2, hour=11))
    assert await pause_of(http, "2026-02") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": "2026-02-28T11:00:00+00:00"}


async def test_device_thresholds_do_not_start_a_grace(http, world: World):
    await UsageThreshold.create(organization_id=world.acme.organization.id, period="2026-03",
                                metric="DEVICES", threshold=100, used=100, limit=100,
                                crossed_at=at(8))
    assert await pause_of(http, "2026-03") == {
        "pausedFrom": None, "pausedUntil": None, "graceEndsAt": None}


@pytest.mark.parametrize(("period", "message"), [
    ("2026-04", "2026-04 has not begun: the current period is 2026-03."),
    ("2031-01", "2031-01 has not begun: the current period is 2026-03."),
    ("2025-12", "There is no usage for 2025-12: the earliest period is 2026-01 (there was "
                "nothing to count before)."),
    ("2026-3", "A period is a month written YYYY-MM, such as 2026-12; got '2026-3'."),
    ("", "A period is a month written YYYY-MM, such as 2026-12; got ''."),
])
async def test_a_period_without_usage_to_show_is_refused(http, world: World, period: str,
                                                         message: str):
    for query, root in ((ORGANIZATION_USAGE, "organization"), (PRODUCT_USAGE, "product")):
        body = await ask(http, query, period)
        assert [(e["message"], e["extensions"], e["path"]) for e in body["errors"]] == [
            (message, {"code": "INVALID"}, [root, "usage"])]
        assert body["data"] == {root: {"usage": None}}


async def test_usage_goes_back_24_months(http, world: World):
    await Organization.filter(id=world.acme.organization.id).update(
        created_at=datetime(2020, 6, 1, tzinfo=UTC))
    body = await ask(http, ORGANIZATION_USAGE, "2024-03")
    assert body["data"]["organization"]["usage"]["period"] == "2024-03"
    body = await ask(http, ORGANIZATION_USAGE, "2024-02")
    assert body["errors"][0]["message"] == (
        "There is no usage for 2024-02: the earliest period is 2024-03 (usage goes back 24 "
        "months).")


async def test_a_product_created_later_has_no_earlier_periods(http, world: World, frozen_clock):
    frozen_clock.current = at(3)
    await products.create_product(
        world.acme.principals["OWNER"], world.acme.organization.id, name="Fan", slug="fan",
        description="", platform="Photon", customer_auth="SIMPLE")
    frozen_clock.current = NOW
    body = await ask(http, 'query($period: String) { product(idOrSlug: "fan") { '
                           'usage(period: $period) { period } } }', "2026-02")
    assert body["errors"][0]["message"] == (
        "There is no usage for 2026-02: the earliest period is 2026-03 (there was nothing to "
        "count before).")


async def test_top_devices_takes_first_within_bounds(http, world: World):
    query = ('query($first: Int!) { organization(slug: "acme") { usage { '
             'topDevices(first: $first) { deviceId operations } } } }')
    token = await access_token("owner@example.com")
    body = await graphql(http, query, {"first": 10}, token=token)
    assert body["data"]["organization"]["usage"]["topDevices"] == [
        {"deviceId": D2, "operations": 18}, {"deviceId": D1, "operations": 10},
        {"deviceId": D3, "operations": 4}]
    body = await graphql(http, query, {"first": 0}, token=token)
    assert body["data"]["organization"]["usage"]["topDevices"] == []
    body = await graphql(http, query, {"first": 101}, token=token)
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        ("`first` must be between 0 and 100.", {"code": "INVALID_ARGUMENT"})]


async def test_a_deleted_product_keeps_its_usage(http, world: World):
    sprinkler = world.sprinkler.id
    await Device.filter(id=D3).delete()
    await Product.filter(id=sprinkler).delete()
    body = await ask(http, ORGANIZATION_USAGE)
    found = body["data"]["organization"]["usage"]
    assert found["dataOperations"]["used"] == 32
    assert found["dataOperations"]["byProduct"][1] == {
        "productId": sprinkler, "product": None, "operations": 4}
    body = await ask(http, 'query { organization(slug: "acme") { usage { topDevices { '
                           'deviceId name productId product { slug } operations } } } }')
    assert body["data"]["organization"]["usage"]["topDevices"][2] == {
        "deviceId": D3, "name": None, "productId": sprinkler, "product": None, "operations": 4}


async def test_the_whole_view_runs_the_same_queries_for_more_products_and_devices(
        http, world: World, monkeypatch: pytest.MonkeyPatch):
    """Aggregates: five more products, each with a counted, billable device, change nothing in
    how many queries the whole view runs."""

    async def queries() -> int:
        with recorded_queries(monkeypatch, serving_requests=True) as seen:
            body = await ask(http, ORGANIZATION_USAGE.replace("first: 2", "first: 20"))
        assert body.get("errors") is None, body
        return len(seen)

    before = await queries()
    for n in range(5):
        product = await products.create_product(
            world.acme.principals["OWNER"], world.acme.organization.id, name=f"P{n}",
            slug=f"product-{n}", description="", platform="Photon", customer_auth="SIMPLE")
        device = device_id(f"f{n}")
        await Device.create(id=device, secret_hash="0" * 64, platform="Photon",
                            provisioned_at=CREATED, product=product, first_online_at=at(2))
        await record(Metered(K.FUNCTION_CALL, product.id, device, at(3)))
    assert await queries() == before


async def test_now_moves_the_current_period(http, world: World, frozen_clock: Clock):
    frozen_clock.current = datetime(2026, 4, 1, tzinfo=UTC) + timedelta(hours=1)
    body = await ask(http, ORGANIZATION_USAGE)
    found = body["data"]["organization"]["usage"]
    assert (found["period"], found["dataOperations"]["used"]) == ("2026-04", 0)
    assert found["dataOperations"]["byDay"] == [{"date": "2026-04-01", "operations": 0}]
    assert found["dataOperations"]["byProduct"] == []
    assert found["dataOperations"]["byKind"] == kinds(0, 0, 0, 0, 0)
    assert found["topDevices"] == []
    # Billable devices carry over: D1, D2 and D3 came online before.
    assert found["devices"]["billable"] == 3


@pytest.mark.parametrize(("used", "limit", "tenths"), [
    (0, 100_000, 0), (69_949, 100_000, 699), (69_950, 100_000, 700),
    (1, 3, 333), (2, 3, 667), (100_000, 100_000, 1000), (250_001, 100_000, 2500),
])
def test_percent_in_tenths(used: int, limit: int, tenths: int):
    assert usage.percent_tenths(used, limit) == tenths


async def test_what_a_connected_device_does_is_what_its_owner_sees(
        http, url: str, calling_team, frozen_clock: Clock):
    """A device connected to the live server publishes 1025 and 16384 bytes and sends three
    location points; its owner sees exactly those 2 + 16 + 3 operations, today, in the view
    and in the download. (The clock stands still, so today stays today.)"""
    _principals, product = calling_team
    await Product.filter(id=product.id).update(event_data_limit=16384)
    device, secret = await make_device(product)
    async with session(url, device, secret, product.id) as (ws, _):
        for frame_id, size in ((3, 1025), (4, 16384)):
            assert await exchange(ws, publish(frame_id, data="x" * size)) == {
                "type": "ack", "replyTo": frame_id}
        points = [{"lat": 48.85, "lon": 2.29 + n / 1000} for n in range(3)]
        assert await exchange(ws, {"type": "location", "id": 5, "messageId": "l5",
                                   "points": points}) == {"type": "ack", "replyTo": 5}
    token = await access_token("owner@callers.example")
    body = await graphql(http, '{ organization(slug: "callers") { usage { dataOperations { '
                               'used byKind { kind operations } byDay { date operations } } '
                               'topDevices { deviceId operations } } } }', token=token)
    found = body["data"]["organization"]["usage"]
    today = clock.now().date().isoformat()
    assert found["dataOperations"]["used"] == 21
    assert found["dataOperations"]["byKind"] == kinds(0, 0, 18, 0, 3)
    assert found["dataOperations"]["byDay"][-1] == {"date": today, "operations": 21}
    assert sum(d["operations"] for d in found["dataOperations"]["byDay"]) == 21
    assert found["topDevices"] == [{"deviceId": device, "operations": 21}]
    response = await http.get("/v1/orgs/callers/usage.csv",
                              headers={"Authorization": f"Bearer {token}"})
    assert response.content.decode().splitlines()[1:] == [
        f"{today},{product.id},{product.slug},{device},DEVICE_PUBLISH,18",
        f"{today},{product.id},{product.slug},{device},LOCATION_POINT,3",
    ]
