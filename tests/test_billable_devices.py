"""Billable devices end to end: devices connect to the live app over the gateway, which writes
the days they were online; the clock travels eight months; `billing.billable` answers which
devices each month bills, with and without manufacturing grace. Also the online days of one
connection kept open across midnight and for months."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from auth.principals import UserPrincipal
from billing.billable import billable_devices
from billing.periods import Period
from core import clock
from fleet import devices, gateway, products, sims
from models.devices import Device
from models.products import Product
from models.usage import DeviceOnlineDay
from tests.support.accounts import Team, organization_with_team
from tests.support.customers import make_customer
from tests.support.database import recorded_queries
from tests.support.gateway import exchange, make_device, session
from tests.support.polling import eventually
from tests.support.servers import Clock
from tests.support.sims import iccid

JANUARY = Period(2027, 1)
MONTHS = [JANUARY.shift(i) for i in range(8)]

# Each device's story, one entry a month from January 2027 (day of the month: what happens,
# in day order). "online": it connects through the gateway and leaves; "sim off" / "sim on":
# `setSimActive`; "cellular": it gets an ICCID (its SIM active); "claim": its customer gets it.
STORIES: dict[str, dict[int, list[tuple[int, str]]]] = {
    "never": {},
    "once": {1: [(10, "online")]},
    "every": {m: [(10, "online")] for m in range(1, 9)},
    "late": {3: [(10, "online")]},  # in the other product
    "claimed": {1: [(10, "online")], 3: [(15, "claim")]},
    "quarantined": {m: [(10, "online")] for m in range(1, 9)},
    # SIM off from February 20 to April 20: all of March.
    "sim_whole": {1: [(5, "cellular"), (10, "online")], 2: [(10, "online"), (20, "sim off")],
                  4: [(20, "sim on"), (21, "online")],
                  **{m: [(10, "online")] for m in range(5, 9)}},
    # SIM off for five days of May, then from July 20 on: part of July, all of August.
    "sim_part": {1: [(5, "cellular"), (10, "online")],
                 **{m: [(10, "online")] for m in (2, 3, 4, 6)},
                 5: [(10, "online"), (20, "sim off"), (25, "sim on")],
                 7: [(10, "online"), (20, "sim off")]},
}
# Billable months: `B` billable, `-` not; without grace, then with it.
EXPECTED = {
    "never": ("--------", "--------"),
    "once": ("BBBBBBBB", "B-----BB"),  # with grace: not February to June, billable from July
    "every": ("BBBBBBBB", "BBBBBBBB"),
    "late": ("--BBBBBB", "--B-----"),
    "claimed": ("BBBBBBBB", "B-----BB"),  # as "once": claiming changes nothing
    "quarantined": ("--------", "--------"),
    "sim_whole": ("BB-BBBBB", "BB-BBBBB"),
    "sim_part": ("BBBBBBB-", "BBBBBBB-"),
}


@pytest.fixture
async def team() -> Team:
    return await organization_with_team(roles=("OWNER",))


async def make_products(owner: UserPrincipal, organization_id: int, *names: str
                        ) -> list[Product]:
    return [await products.create_product(owner, organization_id, name=name, slug=None,
                                          description="", platform="Photon",
                                          customer_auth="SIMPLE") for name in names]


async def test_eight_months_of_billable_devices(
    url: str, team: Team, frozen_clock: Clock
) -> None:
    frozen_clock.current = datetime(2027, 1, 1, 9, tzinfo=UTC)
    owner = team.principals["OWNER"]
    thermostat, sprinkler = await make_products(owner, team.organization.id, "Thermostat",
                                           "Sprinkler")
    customer = await make_customer(thermostat, "buyer@customers.example")
    ids: dict[str, tuple[str, str]] = {}
    for name in STORIES:
        home = None if name == "quarantined" else sprinkler if name == "late" else thermostat
        ids[name] = await make_device(home)

    async def happen(name: str, what: str) -> None:
        device_id, secret = ids[name]
        if what == "online":
            reported = sprinkler if name == "late" else thermostat
            async with session(url, device_id, secret, reported.id):
                pass
        elif what == "cellular":
            await sims.set_sim_active(owner, device_id, active=True,
                                      iccid=iccid(list(STORIES).index(name)))
        elif what in ("sim off", "sim on"):
            await sims.set_sim_active(owner, device_id, active=what == "sim on")
        else:
            await devices.assign_device_customer(owner, device_id, customer.id)

    for month, period in enumerate(MONTHS, start=1):
        happenings = sorted((day, name, what) for name, story in STORIES.items()
                            for day, what in story.get(month, []))
        for day, name, what in happenings:
            frozen_clock.current = datetime(period.year, period.month, day, 12, tzinfo=UTC)
            await happen(name, what)

    assert (await Device.get(id=ids["quarantined"][0])).quarantine == "QUARANTINED"
    assert (await Device.get(id=ids["claimed"][0])).customer_id == customer.id
    # Every connection wrote its day, and only that day.
    for name, story in STORIES.items():
        days = await DeviceOnlineDay.filter(device_id=ids[name][0]).order_by("day") \
            .values_list("day", flat=True)
        assert days == [date(p.year, p.month, day) for month, p in enumerate(MONTHS, start=1)
                        for day, what in story.get(month, []) if what == "online"], name

    frozen_clock.current = datetime(2027, 9, 1, tzinfo=UTC)
    for grace, column in ((False, 0), (True, 1)):
        for index, period in enumerate(MONTHS):
            expected: dict[int, list[str]] = {}
            for name, letters in EXPECTED.items():
                if letters[column][index] == "B":
                    product = sprinkler if name == "late" else thermostat
                    expected.setdefault(product.id, []).append(ids[name][0])
            found = await billable_devices(team.organization.id, period,
                                           manufacturing_grace=grace)
            assert found == {p: sorted(d) for p, d in expected.items()}, (str(period), grace)


async def test_the_current_period_so_far(url: str, team: Team, frozen_clock: Clock) -> None:
    """`until` judges the period as it stands: a device first online on the 20th is not billable
    on the 15th; one whose SIM was off since before the period is not billable until it is
    activated."""
    frozen_clock.current = datetime(2027, 1, 5, tzinfo=UTC)
    owner = team.principals["OWNER"]
    (thermostat,) = await make_products(owner, team.organization.id, "Thermostat")
    cellular, secret = await make_device(thermostat)
    await sims.set_sim_active(owner, cellular, active=True, iccid=iccid(1))
    async with session(url, cellular, secret, thermostat.id):
        pass
    frozen_clock.current = datetime(2027, 1, 30, tzinfo=UTC)
    await sims.set_sim_active(owner, cellular, active=False)
    newcomer, newcomer_secret = await make_device(thermostat)
    frozen_clock.current = datetime(2027, 2, 20, tzinfo=UTC)
    async with session(url, newcomer, newcomer_secret, thermostat.id):
        pass
    frozen_clock.current = datetime(2027, 2, 25, tzinfo=UTC)
    await sims.set_sim_active(owner, cellular, active=True)
    february = Period(2027, 2)

    async def so_far(day: int) -> dict[int, list[str]]:
        return await billable_devices(team.organization.id, february, manufacturing_grace=False,
                                      until=datetime(2027, 2, day, tzinfo=UTC))

    assert await so_far(15) == {}
    assert await so_far(21) == {thermostat.id: [newcomer]}
    assert await so_far(26) == {thermostat.id: sorted([cellular, newcomer])}


async def days_online(device_id: str) -> list[date]:
    return list(await DeviceOnlineDay.filter(device_id=device_id).order_by("day")
                .values_list("day", flat=True))


async def test_one_connection_has_a_row_for_each_day_it_stays_open(
    url: str, team: Team, frozen_clock: Clock
) -> None:
    frozen_clock.current = datetime(2027, 1, 31, 23, 59, 58, tzinfo=UTC)
    (thermostat,) = await make_products(team.principals["OWNER"], team.organization.id,
                                   "Thermostat")
    device_id, secret = await make_device(thermostat)
    async with session(url, device_id, secret, thermostat.id) as (ws, _):
        assert await days_online(device_id) == [date(2027, 1, 31)]  # written with the welcome
        frozen_clock.advance(seconds=4)  # past midnight
        assert await exchange(ws, {"type": "ping", "id": 3}) == {"type": "pong", "replyTo": 3}

        async def written(last: date) -> bool:
            return (await days_online(device_id))[-1:] == [last]

        await eventually(lambda: written(date(2027, 2, 1)))  # by the heard flush
        assert await days_online(device_id) == [date(2027, 1, 31), date(2027, 2, 1)]
        # Heard again the same day: nothing new. Three months later, still the same
        # connection: every day in between.
        assert await exchange(ws, {"type": "ping", "id": 4}) == {"type": "pong", "replyTo": 4}
        frozen_clock.advance(days=89)
        assert await exchange(ws, {"type": "ping", "id": 5}) == {"type": "pong", "replyTo": 5}
        await eventually(lambda: written(date(2027, 5, 1)))
        assert await days_online(device_id) == [
            date(2027, 1, 31) + timedelta(days=n) for n in range(91)]
        # Heard on one more day and closed before the flush: the close writes it.
        frozen_clock.advance(days=1)
        assert await exchange(ws, {"type": "ping", "id": 6}) == {"type": "pong", "replyTo": 6}
    await eventually(lambda: written(date(2027, 5, 2)))
    assert await days_online(device_id) == [
        date(2027, 1, 31) + timedelta(days=n) for n in range(92)]
    for period, grace in ((Period(2027, 3), True), (Period(2027, 4), True)):
        assert await billable_devices(team.organization.id, period,
                                      manufacturing_grace=grace) == {thermostat.id: [device_id]}


async def test_the_heard_flush_writes_online_days_once_a_day_in_one_statement(
    team: Team, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_clock.current = datetime(2027, 3, 1, 8, tzinfo=UTC)
    (thermostat,) = await make_products(team.principals["OWNER"], team.organization.id,
                                        "Thermostat")
    hello = gateway.Hello(thermostat.id, "1", "5.0", (), ())
    device_ids = [(await make_device(thermostat))[0] for _ in range(40)]
    sessions = {device_id: (await gateway.welcome(device_id, hello)).session_id
                for device_id in device_ids}

    async def flush_inserts() -> int:
        heard = {session_id: clock.now() for session_id in sessions.values()}
        with recorded_queries(monkeypatch) as seen:
            await gateway.record_heard(heard)
        return sum("device_online_days" in query for query in seen)

    assert await flush_inserts() == 0  # the welcome wrote today
    frozen_clock.advance(days=1)
    assert await flush_inserts() == 1
    frozen_clock.advance(hours=5)
    assert await flush_inserts() == 0  # the same day again: remembered
    frozen_clock.advance(days=3)
    assert await flush_inserts() == 1  # three more days each, in one statement
    for device_id, session_id in sessions.items():
        assert await gateway.disconnect(device_id, session_id, clock.now())
    assert await DeviceOnlineDay.filter(device_id__in=device_ids).count() == 40 * 5
    assert set(await DeviceOnlineDay.all().values_list("day", flat=True)) == {
        date(2027, 3, day) for day in range(1, 6)}


@pytest.mark.parametrize(("active", "billable"), [(False, False), (True, True)])
async def test_a_sim_change_at_the_periods_first_instant_holds_for_the_whole_period(
    team: Team, frozen_clock: Clock, active: bool, billable: bool
) -> None:
    frozen_clock.current = datetime(2027, 1, 10, tzinfo=UTC)
    owner = team.principals["OWNER"]
    (thermostat,) = await make_products(owner, team.organization.id, "Thermostat")
    device_id, _ = await make_device(thermostat)
    await Device.filter(id=device_id).update(first_online_at=clock.now())
    await sims.set_sim_active(owner, device_id, active=not active, iccid=iccid(7))
    frozen_clock.current = datetime(2027, 2, 1, tzinfo=UTC)
    await sims.set_sim_active(owner, device_id, active=active)
    found = await billable_devices(team.organization.id, Period(2027, 2),
                                   manufacturing_grace=False)
    assert found == ({thermostat.id: [device_id]} if billable else {})
