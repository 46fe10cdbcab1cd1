"""Billing periods (billing/periods.py): calendar months in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.periods import Period
from core.errors import CoreCode, InvalidInput


def test_a_period_from_a_moment_is_its_utc_month() -> None:
    assert Period.of(datetime(2026, 12, 2, 3, 4, tzinfo=UTC)) == Period(2026, 12)
    # 00:30 on 1 January in UTC+2 is still December in UTC.
    plus_two = timezone(timedelta(hours=2))
    assert Period.of(datetime(2027, 1, 1, 0, 30, tzinfo=plus_two)) == Period(2026, 12)
    assert Period.of(datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))) \
        == Period(2027, 1)


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Period.of(datetime(2026, 12, 2))


def test_start_and_end() -> None:
    period = Period(2026, 12)
    assert period.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert period.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert Period(2028, 2).end - Period(2028, 2).start == timedelta(days=29)
    assert period.start in period
    assert period.end - timedelta(microseconds=1) in period
    assert period.end not in period


def test_next_and_previous_cross_years() -> None:
    assert Period(2026, 12).next() == Period(2027, 1)
    assert Period(2027, 1).previous() == Period(2026, 12)
    assert Period(2026, 5).shift(-17) == Period(2024, 12)
    assert Period(2027, 3).months_since(Period(2026, 12)) == 3


def test_order_and_text() -> None:
    assert Period(2026, 12) < Period(2027, 1) < Period(2027, 2)
    assert str(Period(2026, 3)) == "2026-03"
    assert str(Period(33, 1)) == "0033-01"


@pytest.mark.parametrize(("text", "period"), [
    ("2026-12", Period(2026, 12)), ("2027-01", Period(2027, 1)), ("0001-01", Period(1, 1)),
    ("9999-12", Period(9999, 12)),
])
def test_parse(text: str, period: Period) -> None:
    assert Period.parse(text) == period


@pytest.mark.parametrize("text", [
    "", "2026", "2026-1", "2026-13", "2026-00", "0000-05", "26-12", "2026/12", "2026-12-01",
    " 2026-12", "2026-12\n", "-2026-12", "+202-12",
    "\uff12\uff10\uff12\uff16-\uff11\uff12", "2026-1\uff12",  # full-width digits
])
def test_parse_refuses_anything_but_yyyy_mm(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Period.parse(text, field="period")
    assert raised.value.code is CoreCode.INVALID
    assert raised.value.field == "period"
    assert raised.value.message == (
        f"A period is a month written YYYY-MM, such as 2026-12; got {text!r}.")


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 1), (10_000, 1)])
def test_impossible_periods_are_refused(year: int, month: int) -> None:
    with pytest.raises(ValueError, match="No period"):
        Period(year, month)


periods = st.builds(Period, st.integers(min_value=1, max_value=9998),
                    st.integers(min_value=1, max_value=12))


def reference_next(period: Period) -> tuple[int, int]:
    return (period.year + 1, 1) if period.month == 12 else (period.year, period.month + 1)


@settings(max_examples=300, deadline=None)
@given(periods)
def test_next_and_previous_match_the_reference(period: Period) -> None:
    assert (period.next().year, period.next().month) == reference_next(period)
    assert period.next().previous() == period
    assert period.end == period.next().start


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 30),
                           timezones=st.timezones()))
def test_a_moment_lies_in_its_period(moment: datetime) -> None:
    period = Period.of(moment)
    assert period.start <= moment < period.end
    assert moment in period
    assert Period.parse(str(period)) == period


@settings(max_examples=300, deadline=None)
@given(period=periods, months=st.integers(min_value=-300, max_value=300))
def test_shifting_is_stepping(period: Period, months: int) -> None:
    assume(0 <= period.index + months <= Period(9998, 12).index)
    stepped = period
    for _ in range(abs(months)):
        stepped = stepped.next() if months > 0 else stepped.previous()
    assert period.shift(months) == stepped
    assert stepped.months_since(period) == months
