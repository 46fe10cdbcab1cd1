"""Proration (billing/proration.py) and money text (billing/money.py): a mid-period change's
part of a full period, to the second and rounded to the cent half up, against a reference
computed with fractions."""

from __future__ import annotations

import fractions
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.cycles import Span, cycle_period
from billing.money import CURRENCY, format_usd
from billing.plans import Interval, PlanKind, period_price_cents
from billing.proration import (
    Adjustment,
    date_text,
    dates_text,
    prorated_cents,
    round_half_up,
)

ROOT = Path(__file__).resolve().parent.parent
NOVEMBER = Span(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
DAY_10_ENDS = datetime(2026, 11, 11, tzinfo=UTC)  # 20 of November's 30 days are left


def test_a_member_added_on_day_10_of_a_30_day_month() -> None:
    assert prorated_cents(4_900, NOVEMBER, DAY_10_ENDS) == 3_267
    added = Adjustment.seat_added("ana@example.com", Interval.MONTHLY, NOVEMBER, DAY_10_ENDS)
    removed = Adjustment.seat_removed("ana@example.com", Interval.MONTHLY, NOVEMBER,
                                      DAY_10_ENDS)
    assert added == Adjustment("Team member added (ana@example.com), 11 Nov 2026 \u2013 30 Nov "
                               "2026", 3_267, DAY_10_ENDS, NOVEMBER.end)
    assert removed == Adjustment("Team member removed (ana@example.com), 11 Nov 2026 \u2013 30 "
                                 "Nov 2026", -3_267, DAY_10_ENDS, NOVEMBER.end)


def test_an_annual_seat_is_12_months_of_the_price() -> None:
    year = cycle_period(datetime(2026, 11, 1, tzinfo=UTC), Interval.ANNUAL, 0)
    assert Adjustment.seat_added("Ana", Interval.ANNUAL, year, year.start).amount_cents == 58_800
    half = datetime(2027, 5, 2, 12, tzinfo=UTC)  # 182.5 of 365 days left
    assert prorated_cents(58_800, year, half) == 29_400
    assert Adjustment.seat_added("Ana", Interval.ANNUAL, year, half).description == \
        "Team member added (Ana), 2 May 2027 \u2013 31 Oct 2027"


def test_a_block_added() -> None:
    block = Adjustment.block_added(PlanKind.TEAM, Interval.MONTHLY, NOVEMBER, DAY_10_ENDS)
    assert block == Adjustment(
        "Block added (100 devices, 720,000 data operations a month), 11 Nov 2026 \u2013 30 Nov "
        "2026", 19_933, DAY_10_ENDS, NOVEMBER.end)
    assert Adjustment.block_added(PlanKind.BASIC, Interval.ANNUAL, NOVEMBER, NOVEMBER.start
                                  ).amount_cents == 358_800
    for plan in (PlanKind.FREE, PlanKind.ENTERPRISE):
        with pytest.raises(ValueError, match="does not sell more blocks"):
            Adjustment.block_added(plan, Interval.MONTHLY, NOVEMBER, DAY_10_ENDS)


def test_a_plan_switched_is_the_new_plans_charge_less_the_old_plans_credit() -> None:
    basic = period_price_cents(PlanKind.BASIC, Interval.MONTHLY, seats=3, blocks=1)
    team = period_price_cents(PlanKind.TEAM, Interval.MONTHLY, seats=3, blocks=1)
    switched = Adjustment.plan_switched("BASIC, 1 block, monthly", basic,
                                        "TEAM, 3 members, monthly", team, NOVEMBER, DAY_10_ENDS)
    assert switched == Adjustment(
        "Plan switched from BASIC, 1 block, monthly to TEAM, 3 members, monthly, 11 Nov 2026 "
        "\u2013 30 Nov 2026: $98.00 for TEAM, 3 members, monthly less $199.33 unused of BASIC, "
        "1 block, monthly", 9_800 - 19_933, DAY_10_ENDS, NOVEMBER.end)
    back = Adjustment.plan_switched("TEAM", team, "BASIC", basic, NOVEMBER, DAY_10_ENDS)
    assert back.amount_cents == -switched.amount_cents == 10_133


def test_to_the_second_and_rounded_half_up() -> None:
    span = Span(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 0, 0, 4, tzinfo=UTC))
    at = datetime(2026, 11, 1, 0, 0, 2, tzinfo=UTC)
    assert prorated_cents(1, span, at) == 1  # 0.5 rounds up
    assert prorated_cents(-1, span, at) == -1  # and a credit's half away from zero
    assert prorated_cents(3, span, at) == 2  # 1.5
    # Only whole seconds left count: 1.5 s or 1.999999 s left is 1 of 4, 0.5 s left is none.
    assert prorated_cents(10, span, at + timedelta(microseconds=500_000)) == 3
    assert prorated_cents(10, span, at + timedelta(microseconds=1)) == 3
    assert prorated_cents(10, span, at + timedelta(seconds=1, microseconds=500_000)) == 0
    assert prorated_cents(10, span, at) == 5
    assert prorated_cents(10, span, span.start) == 10
    assert prorated_cents(10, span, span.end) == 0


@pytest.mark.parametrize(("numerator", "denominator", "rounded"), [
    (5, 2, 3), (-5, 2, -3), (4, 3, 1), (-4, 3, -1), (5, 3, 2), (-5, 3, -2), (0, 7, 0),
    (7, 7, 1), (1, 2, 1), (-1, 2, -1), (1, 3, 0), (-1, 3, 0),
])
def test_round_half_up(numerator: int, denominator: int, rounded: int) -> None:
    assert round_half_up(numerator, denominator) == rounded


def test_impossible_prorations_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        round_half_up(1, 0)
    with pytest.raises(ValueError, match="naive"):
        prorated_cents(4_900, NOVEMBER, datetime(2026, 11, 11))
    with pytest.raises(ValueError, match="not within the period"):
        prorated_cents(4_900, NOVEMBER, NOVEMBER.start - timedelta(microseconds=1))
    with pytest.raises(ValueError, match="not within the period"):
        prorated_cents(4_900, NOVEMBER, NOVEMBER.end + timedelta(microseconds=1))
    with pytest.raises(ValueError, match="at least a second"):
        prorated_cents(4_900, Span(NOVEMBER.start, NOVEMBER.start + timedelta(milliseconds=999)),
                       NOVEMBER.start)
    # A change at the period's end is in the next period, where it is at its start.
    with pytest.raises(ValueError, match="not within the period"):
        Adjustment.seat_added("Ana", Interval.MONTHLY, NOVEMBER, NOVEMBER.end)
    with pytest.raises(ValueError, match="naive"):
        Adjustment.plan_switched("A", 1, "B", 2, NOVEMBER, datetime(2026, 11, 11))
    with pytest.raises(ValueError, match="ends after it starts"):
        Adjustment("Nothing", 0, NOVEMBER.end, NOVEMBER.end)
    with pytest.raises(ValueError, match="says what it is for"):
        Adjustment("", 5, NOVEMBER.start, NOVEMBER.end)


def test_dates() -> None:
    assert date_text(datetime(2026, 11, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))) == \
        "2 Nov 2026"
    assert dates_text(NOVEMBER.start, NOVEMBER.end) == "1 Nov 2026 \u2013 30 Nov 2026"
    # A period ending at 10:00 covers part of its last day, which is written.
    assert dates_text(datetime(2027, 1, 31, 10, tzinfo=UTC),
                      datetime(2027, 2, 28, 10, tzinfo=UTC)) == "31 Jan 2027 \u2013 28 Feb 2027"
    assert [date_text(datetime(2027, m, 5, tzinfo=UTC))[2:5] for m in range(1, 13)] == [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.mark.parametrize(("cents", "text"), [
    (0, "$0.00"), (1, "$0.01"), (-1, "-$0.01"), (99, "$0.99"), (100, "$1.00"),
    (3_267, "$32.67"), (-3_267, "-$32.67"), (123_456, "$1,234.56"), (58_800, "$588.00"),
    (100_000_000_05, "$100,000,000.05"), (-123_456_789, "-$1,234,567.89"),
])
def test_format_usd(cents: int, text: str) -> None:
    assert CURRENCY == "USD"
    assert format_usd(cents) == text


def reference(full: int, span: Span, at: datetime) -> int:
    """The same rule written with fractions: the share of whole seconds left, rounded to the
    nearest cent, a half away from zero."""
    def whole_seconds(delta: timedelta) -> int:
        return delta.days * 86_400 + delta.seconds  # a timedelta's microseconds are apart

    left, whole = whole_seconds(span.end - at), whole_seconds(span.end - span.start)
    exact = fractions.Fraction(abs(full) * left, whole)
    rounded = exact.numerator // exact.denominator
    if exact - rounded >= fractions.Fraction(1, 2):
        rounded += 1
    return rounded if full >= 0 else -rounded


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(UTC))
amounts = st.integers(min_value=-10_000_000, max_value=10_000_000)
lengths = st.one_of(
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)),
    st.integers(min_value=1, max_value=120).map(lambda s: timedelta(seconds=s)),
)


@st.composite
def changes(draw: st.DrawFn) -> tuple[Span, datetime]:
    """A period (a cycle's or any span) and a moment in it, from its start to its end."""
    if draw(st.booleans()):
        span = cycle_period(draw(moments), draw(st.sampled_from(list(Interval))),
                            draw(st.integers(min_value=0, max_value=100)))
    else:
        start = draw(moments)
        span = Span(start, start + draw(lengths))
    length = span.end - span.start
    return span, span.start + draw(st.timedeltas(min_value=timedelta(0), max_value=length))


@settings(max_examples=1000, deadline=None)
@given(full=amounts, change=changes())
def test_proration_matches_the_reference(full: int, change: tuple[Span, datetime]) -> None:
    span, at = change
    assume((span.end - span.start) >= timedelta(seconds=1))
    prorated = prorated_cents(full, span, at)
    assert type(prorated) is int
    assert prorated == reference(full, span, at)
    assert prorated_cents(-full, span, at) == -prorated
    assert prorated_cents(full, span, span.start) == full
    assert prorated_cents(full, span, span.end) == 0


@settings(max_examples=500, deadline=None)
@given(full=amounts, change=changes(), share=st.integers(min_value=0, max_value=1_000))
def test_proration_is_monotone_in_the_moment(full: int, change: tuple[Span, datetime],
                                             share: int) -> None:
    span, at = change
    later = at + (span.end - at) * share // 1_000
    earlier_part, later_part = prorated_cents(full, span, at), prorated_cents(full, span, later)
    assert (earlier_part >= later_part) if full >= 0 else (earlier_part <= later_part)
    assert abs(later_part) <= abs(full)


@settings(max_examples=500, deadline=None)
@given(change=changes(), interval=st.sampled_from(list(Interval)),
       member=st.emails())
def test_a_member_added_then_removed_at_the_same_moment_sums_to_zero(
        change: tuple[Span, datetime], interval: Interval, member: str) -> None:
    span, at = change
    assume(at < span.end)
    added = Adjustment.seat_added(member, interval, span, at)
    removed = Adjustment.seat_removed(member, interval, span, at)
    assert added.amount_cents + removed.amount_cents == 0
    assert added.amount_cents == prorated_cents(4_900 * interval.months, span, at)
    assert (added.start, added.end) == (removed.start, removed.end) == (at, span.end)
    assert added.description.endswith(dates_text(at, span.end))


def test_the_manuals_descriptions() -> None:
    """docs/billing.md's adjustment lines are what the constructors write, for the issue's
    example: 20 of November's 30 days left."""
    text = (ROOT / "docs" / "billing.md").read_text()
    rows = re.findall(r"^  \| [a-z ]+ \| `Adjustment\.(\w+)\([^`]*\)` \| `([^`]+)` \|$",
                      text[text.index("## Proration"):], re.M)
    basic = period_price_cents(PlanKind.BASIC, Interval.MONTHLY, seats=3, blocks=1)
    team = period_price_cents(PlanKind.TEAM, Interval.MONTHLY, seats=3, blocks=1)
    made = {
        "seat_added": Adjustment.seat_added("ana@example.com", Interval.MONTHLY, NOVEMBER,
                                            DAY_10_ENDS),
        "seat_removed": Adjustment.seat_removed("ana@example.com", Interval.MONTHLY, NOVEMBER,
                                                DAY_10_ENDS),
        "block_added": Adjustment.block_added(PlanKind.TEAM, Interval.MONTHLY, NOVEMBER,
                                              DAY_10_ENDS),
        "plan_switched": Adjustment.plan_switched(
            "BASIC, 1 block, monthly", basic, "TEAM, 3 members, monthly", team, NOVEMBER,
            DAY_10_ENDS),
    }
    assert {name: description for name, description in rows} == {
        name: adjustment.description for name, adjustment in made.items()}
