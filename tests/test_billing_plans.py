"""The plan catalog (billing/plans.py): limits, prices in integer cents, the free trial, and
the warning thresholds crossed by a batch of usage."""

from __future__ import annotations

import ast
import dataclasses
import fractions
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.periods import Period
from billing.plans import (
    CATALOG,
    DEFAULT_PLAN,
    GRACE,
    THRESHOLDS,
    TRIAL,
    Contract,
    Interval,
    Limits,
    PlanKind,
    Subscription,
    grace_end,
    grace_text,
    has_trial,
    period_price_cents,
    thresholds_crossed,
    trial_end,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_catalog_has_the_four_plans() -> None:
    assert list(CATALOG) == [PlanKind.FREE, PlanKind.BASIC, PlanKind.TEAM, PlanKind.ENTERPRISE]
    assert list(PlanKind) == list(CATALOG)
    assert all(plan.kind is kind for kind, plan in CATALOG.items())


def test_new_organizations_start_on_free() -> None:
    assert DEFAULT_PLAN is PlanKind.FREE


def test_free() -> None:
    free = Subscription(PlanKind.FREE)
    assert free.limits == Limits(devices=100, data_operations=100_000)
    assert free.monthly_price_cents == 0
    assert free.manufacturing_grace is False


@pytest.mark.parametrize(("blocks", "devices", "operations", "cents"), [
    (1, 100, 720_000, 29_900),
    (2, 200, 1_440_000, 59_800),
    (7, 700, 5_040_000, 209_300),
])
def test_basic_per_block(blocks: int, devices: int, operations: int, cents: int) -> None:
    basic = Subscription(PlanKind.BASIC, blocks=blocks)
    assert basic.limits == Limits(devices=devices, data_operations=operations)
    assert basic.monthly_price_cents == cents
    assert basic.manufacturing_grace is False


@pytest.mark.parametrize(("blocks", "devices", "operations"), [
    (1, 100, 720_000), (2, 200, 1_440_000), (5, 500, 3_600_000),
])
def test_team_is_one_block_and_more_can_be_added(blocks: int, devices: int,
                                                 operations: int) -> None:
    team = Subscription(PlanKind.TEAM, blocks=blocks)
    assert team.limits == Limits(devices=devices, data_operations=operations)
    assert team.monthly_price_cents is None  # priced by its seats: period_price_cents
    assert team.manufacturing_grace is False


def test_the_intervals() -> None:
    assert [(i.value, i.months) for i in Interval] == [("MONTHLY", 1), ("ANNUAL", 12)]


@pytest.mark.parametrize(("plan", "interval", "seats", "blocks", "cents"), [
    (PlanKind.FREE, Interval.MONTHLY, 1, 1, 0),
    (PlanKind.FREE, Interval.ANNUAL, 9, 1, 0),
    (PlanKind.BASIC, Interval.MONTHLY, 1, 1, 29_900),
    (PlanKind.BASIC, Interval.MONTHLY, 12, 3, 89_700),
    (PlanKind.BASIC, Interval.ANNUAL, 1, 1, 358_800),
    (PlanKind.BASIC, Interval.ANNUAL, 4, 2, 717_600),
    (PlanKind.TEAM, Interval.MONTHLY, 1, 1, 4_900),
    (PlanKind.TEAM, Interval.MONTHLY, 3, 1, 14_700),
    (PlanKind.TEAM, Interval.ANNUAL, 1, 1, 58_800),
    (PlanKind.TEAM, Interval.ANNUAL, 3, 1, 176_400),
    (PlanKind.TEAM, Interval.MONTHLY, 3, 2, 44_600),
    (PlanKind.TEAM, Interval.MONTHLY, 1, 4, 94_600),
    (PlanKind.TEAM, Interval.ANNUAL, 2, 3, 835_200),
])
def test_the_price_of_a_full_period(plan: PlanKind, interval: Interval, seats: int,
                                    blocks: int, cents: int) -> None:
    assert period_price_cents(plan, interval, seats=seats, blocks=blocks) == cents


@settings(max_examples=200, deadline=None)
@given(plan=st.sampled_from([PlanKind.FREE, PlanKind.BASIC, PlanKind.TEAM]),
       interval=st.sampled_from(list(Interval)),
       seats=st.integers(min_value=1, max_value=500),
       blocks=st.integers(min_value=1, max_value=50))
def test_the_price_is_the_reference(plan: PlanKind, interval: Interval, seats: int,
                                    blocks: int) -> None:
    if plan is PlanKind.FREE:
        blocks = 1
    months = {Interval.MONTHLY: 1, Interval.ANNUAL: 12}[interval]
    monthly = {PlanKind.FREE: 0, PlanKind.BASIC: 29_900 * blocks,
               PlanKind.TEAM: 4_900 * seats + 29_900 * (blocks - 1)}[plan]
    price = period_price_cents(plan, interval, seats=seats, blocks=blocks)
    assert type(price) is int
    assert price == monthly * months
    if plan is not PlanKind.TEAM:
        assert price == Subscription(plan, blocks=blocks).monthly_price_cents * months


@pytest.mark.parametrize(("plan", "seats", "blocks", "message"), [
    (PlanKind.ENTERPRISE, 1, 1, "ENTERPRISE is priced by its contract"),
    (PlanKind.TEAM, 0, 1, "at least 1 seat"),
    (PlanKind.BASIC, -2, 1, "at least 1 seat"),
    (PlanKind.TEAM, 1, 0, "TEAM is not sold as 0 blocks"),
    (PlanKind.BASIC, 1, -1, "BASIC is not sold as -1 blocks"),
    (PlanKind.FREE, 1, 2, "FREE is not sold as 2 blocks"),
])
def test_prices_the_catalog_does_not_have(plan: PlanKind, seats: int, blocks: int,
                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        period_price_cents(plan, Interval.MONTHLY, seats=seats, blocks=blocks)


def test_team_and_basic_start_with_a_trial() -> None:
    assert timedelta(days=14) == TRIAL
    assert [plan for plan in PlanKind if has_trial(plan)] == [PlanKind.BASIC, PlanKind.TEAM]
    started = datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
    assert trial_end(PlanKind.TEAM, started) == datetime(2026, 11, 17, 9, 15, tzinfo=UTC)
    assert trial_end(PlanKind.BASIC, started, length=timedelta(days=30)) == \
        datetime(2026, 12, 3, 9, 15, tzinfo=UTC)
    assert trial_end(PlanKind.TEAM, started, length=timedelta(0)) is None
    assert trial_end(PlanKind.FREE, started) is None
    assert trial_end(PlanKind.ENTERPRISE, started) is None


def test_impossible_trials_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        trial_end(PlanKind.TEAM, datetime(2026, 11, 3))
    with pytest.raises(ValueError, match="no less than nothing"):
        trial_end(PlanKind.TEAM, datetime(2026, 11, 3, tzinfo=UTC), length=-timedelta(days=1))


@pytest.mark.parametrize("grace", [True, False])
def test_enterprise_is_by_contract(grace: bool) -> None:
    contract = Contract(Limits(devices=5_000, data_operations=40_000_000),
                        manufacturing_grace=grace)
    enterprise = Subscription(PlanKind.ENTERPRISE, contract=contract)
    assert enterprise.limits == Limits(devices=5_000, data_operations=40_000_000)
    assert enterprise.monthly_price_cents is None
    assert enterprise.manufacturing_grace is grace


def test_the_grace_ends_three_days_after_the_limit_unless_the_period_ends_first() -> None:
    period = Period(2026, 3)
    crossed = datetime(2026, 3, 10, 8, 30, tzinfo=UTC)
    assert grace_text() == "3-day"
    assert timedelta(days=3) == GRACE
    assert grace_end(crossed, period) == datetime(2026, 3, 13, 8, 30, tzinfo=UTC)
    assert grace_end(period.end - GRACE - timedelta(microseconds=1), period) == \
        period.end - timedelta(microseconds=1)
    assert grace_end(period.end - GRACE, period) is None
    assert grace_end(datetime(2026, 3, 31, tzinfo=UTC), period) is None


@pytest.mark.parametrize(("plan", "blocks", "contract"), [
    (PlanKind.FREE, 2, None),
    (PlanKind.FREE, 0, None),
    (PlanKind.BASIC, 0, None),
    (PlanKind.BASIC, -1, None),
    (PlanKind.BASIC, 1, Contract(Limits(1, 1))),
    (PlanKind.TEAM, 0, None),
    (PlanKind.TEAM, 1, Contract(Limits(1, 1))),
    (PlanKind.FREE, 1, Contract(Limits(1, 1))),
    (PlanKind.ENTERPRISE, 1, None),
    (PlanKind.ENTERPRISE, 2, Contract(Limits(1, 1))),
])
def test_what_the_catalog_does_not_sell(plan: PlanKind, blocks: int,
                                        contract: Contract | None) -> None:
    with pytest.raises(ValueError):
        Subscription(plan, blocks=blocks, contract=contract)


@pytest.mark.parametrize(("devices", "operations"), [(0, 1), (1, 0), (-5, 10)])
def test_a_limit_is_at_least_1(devices: int, operations: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Limits(devices, operations)


def _numbers(value: object) -> list[object]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [n for f in dataclasses.fields(value) for n in _numbers(getattr(value, f.name))]
    if isinstance(value, bool):
        return []
    return [value] if isinstance(value, int | float | fractions.Fraction) else []


def test_money_and_limits_are_integers_never_floats() -> None:
    found = [n for plan in CATALOG.values() for n in _numbers(plan)]
    assert found and all(type(n) is int for n in found)
    basic = Subscription(PlanKind.BASIC, blocks=3)
    assert type(basic.monthly_price_cents) is int
    assert type(period_price_cents(PlanKind.TEAM, Interval.ANNUAL, seats=2, blocks=2)) is int
    assert all(type(n) is int for n in _numbers(basic.limits))


def test_no_float_and_no_true_division_in_billing() -> None:
    """Money and limits stay exact: no float literal, no `float()`, no `/` anywhere in
    billing/ (a share is compared by cross-multiplying, a kilobyte count by floor division)."""
    found = []
    for path in sorted((ROOT / "billing").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and type(node.value) is float) or (
                isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Div)
            ) or (isinstance(node, ast.Name) and node.id == "float"):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


def test_the_thresholds() -> None:
    assert THRESHOLDS == (70, 90, 100)


@pytest.mark.parametrize(("before", "after", "limit", "crossed"), [
    (0, 0, 100_000, ()),
    (0, 69_999, 100_000, ()),
    (69_999, 70_000, 100_000, (70,)),
    (70_000, 70_001, 100_000, ()),
    (69_000, 95_000, 100_000, (70, 90)),
    (0, 100_000, 100_000, (70, 90, 100)),
    (89_999, 100_000, 100_000, (90, 100)),
    (100_000, 250_000, 100_000, ()),
    (99_999, 100_000, 100_000, (100,)),
    (0, 70, 100, (70,)),
    (69, 70, 100, (70,)),
    # 70% of 7 devices is 4.9: the fifth device crosses it, the fourth does not.
    (3, 4, 7, ()),
    (4, 5, 7, (70,)),
    (6, 7, 7, (90, 100)),
    (0, 1, 1, (70, 90, 100)),
])
def test_thresholds_crossed(before: int, after: int, limit: int,
                            crossed: tuple[int, ...]) -> None:
    assert thresholds_crossed(before, after, limit) == crossed


@pytest.mark.parametrize(("before", "after", "limit"), [(5, 4, 10), (-1, 3, 10), (0, 1, 0)])
def test_thresholds_of_impossible_usage_are_refused(before: int, after: int,
                                                    limit: int) -> None:
    with pytest.raises(ValueError):
        thresholds_crossed(before, after, limit)


def reference_crossed(before: int, after: int, limit: int) -> list[int]:
    """Each threshold's usage, as the smallest whole usage at or above the share, then a
    walk up from `before`: written with fractions, not cross-multiplication."""
    reached = []
    for threshold in (70, 90, 100):
        share = fractions.Fraction(threshold, 100) * limit
        smallest = share.numerator // share.denominator + (share.denominator != 1)
        if before < smallest <= after:
            reached.append(threshold)
    return reached


@settings(max_examples=500, deadline=None)
@given(limit=st.integers(min_value=1, max_value=10_000_000),
       a=st.integers(min_value=0, max_value=20_000_000),
       b=st.integers(min_value=0, max_value=20_000_000))
def test_thresholds_crossed_match_the_reference(limit: int, a: int, b: int) -> None:
    before, after = sorted((a % (2 * limit + 1), b % (2 * limit + 1)))
    assert list(thresholds_crossed(before, after, limit)) == reference_crossed(before, after,
                                                                               limit)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(min_value=1, max_value=1000),
       steps=st.lists(st.integers(min_value=0, max_value=300), max_size=30))
def test_batches_cross_each_threshold_at_most_once(limit: int, steps: list[int]) -> None:
    used, crossed = 0, []
    for step in steps:
        crossed += thresholds_crossed(used, used + step, limit)
        used += step
    assert crossed == [t for t in (70, 90, 100) if used * 100 >= t * limit]


def test_the_manuals_threshold_examples() -> None:
    """docs/usage.md's table of thresholds crossed is what the function answers."""
    text = (ROOT / "docs" / "usage.md").read_text()
    table = text[text.index("## Warnings"):text.index("## Billable devices")]
    rows = re.findall(r"^\| ([\d,]+)(?: devices)? \| ([\d,]+) → ([\d,]+) \| ([^|]+) \|$",
                      table, re.M)
    assert len(rows) == 6
    for limit, before, after, crossed in rows:
        # "none (…)" and "70 (70 % of 7 is 4.9)": the thresholds are the numbers before "(".
        expected = tuple(int(t) for t in re.findall(r"\d+", crossed.split("(")[0]))
        assert thresholds_crossed(*(int(n.replace(",", "")) for n in (before, after, limit))) \
            == expected, (limit, before, after)


def test_the_manuals_price_examples() -> None:
    """docs/billing.md's table of full-period prices is what period_price_cents answers."""
    text = (ROOT / "docs" / "billing.md").read_text()
    table = text[text.index("## Plans and prices"):text.index("## Billing cycles")]
    rows = re.findall(r"^  \| (FREE|BASIC|TEAM) \| (MONTHLY|ANNUAL) \| (\d+|any) \| (\d+) \| "
                      r"([\d,]+)[^|]* \|$", table, re.M)
    assert len(rows) == 5
    for plan, interval, seats, blocks, cents in rows:
        assert period_price_cents(PlanKind(plan), Interval(interval),
                                  seats=1 if seats == "any" else int(seats),
                                  blocks=int(blocks)) == int(cents.replace(",", "")), plan
