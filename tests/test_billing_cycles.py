"""Billing cycles (billing/cycles.py): a subscription's periods, anchored at its cycle's start."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.cycles import Span, cycle_period, period_containing
from billing.plans import Interval


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(anchor: datetime, interval: Interval, count: int) -> list[datetime]:
    return [cycle_period(anchor, interval, i).start for i in range(count)]


def test_monthly_periods_keep_the_anchor_day_or_the_months_last() -> None:
    anchor = utc(2027, 1, 31, 10)
    assert starts(anchor, Interval.MONTHLY, 6) == [
        utc(2027, 1, 31, 10), utc(2027, 2, 28, 10), utc(2027, 3, 31, 10), utc(2027, 4, 30, 10),
        utc(2027, 5, 31, 10), utc(2027, 6, 30, 10)]
    assert starts(utc(2028, 1, 31, 10), Interval.MONTHLY, 3) == [
        utc(2028, 1, 31, 10), utc(2028, 2, 29, 10), utc(2028, 3, 31, 10)]
    assert cycle_period(anchor, Interval.MONTHLY, 1) == Span(utc(2027, 2, 28, 10),
                                                             utc(2027, 3, 31, 10))
    assert cycle_period(anchor, Interval.MONTHLY, 11).end == utc(2028, 1, 31, 10)
    assert cycle_period(anchor, Interval.MONTHLY, 13).start == utc(2028, 2, 29, 10)


def test_annual_periods_from_29_february() -> None:
    assert starts(utc(2028, 2, 29, 8, 30), Interval.ANNUAL, 5) == [
        utc(2028, 2, 29, 8, 30), utc(2029, 2, 28, 8, 30), utc(2030, 2, 28, 8, 30),
        utc(2031, 2, 28, 8, 30), utc(2032, 2, 29, 8, 30)]


def test_the_anchor_is_taken_in_utc() -> None:
    # 1 March 00:30 at UTC+2 is 28 February 22:30 UTC: the cycle keeps the 28th.
    anchor = datetime(2027, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert cycle_period(anchor, Interval.MONTHLY, 1) == Span(utc(2027, 3, 28, 22, 30),
                                                             utc(2027, 4, 28, 22, 30))
    assert cycle_period(anchor, Interval.MONTHLY, 0).start.tzinfo is UTC


def test_period_containing() -> None:
    anchor = utc(2027, 1, 31, 10)
    assert period_containing(anchor, Interval.MONTHLY, anchor) == (
        0, Span(utc(2027, 1, 31, 10), utc(2027, 2, 28, 10)))
    assert period_containing(anchor, Interval.MONTHLY, utc(2027, 2, 28, 9, 59, 59))[0] == 0
    assert period_containing(anchor, Interval.MONTHLY, utc(2027, 2, 28, 10))[0] == 1
    assert period_containing(anchor, Interval.MONTHLY, utc(2027, 3, 1))[0] == 1
    assert period_containing(anchor, Interval.ANNUAL, utc(2029, 1, 31, 9)) == (
        1, Span(utc(2028, 1, 31, 10), utc(2029, 1, 31, 10)))


def test_impossible_cycles_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        cycle_period(datetime(2027, 1, 31), Interval.MONTHLY, 0)
    with pytest.raises(ValueError, match="naive"):
        period_containing(datetime(2027, 1, 31), Interval.MONTHLY, utc(2027, 2, 1))
    with pytest.raises(ValueError, match="naive"):
        period_containing(utc(2027, 1, 31), Interval.MONTHLY, datetime(2027, 2, 1))
    with pytest.raises(ValueError, match="no period -1"):
        cycle_period(utc(2027, 1, 31), Interval.MONTHLY, -1)
    with pytest.raises(ValueError, match="before the cycle started"):
        period_containing(utc(2027, 1, 31), Interval.MONTHLY, utc(2027, 1, 30))
    with pytest.raises(ValueError, match="year 10000"):
        cycle_period(utc(9999, 6, 1), Interval.ANNUAL, 0)


def test_spans() -> None:
    span = Span(datetime(2027, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), utc(2027, 2, 1))
    assert span.start == utc(2027, 1, 1)
    assert span.start.tzinfo is UTC
    assert span.start in span
    assert span.end - timedelta(microseconds=1) in span
    assert span.end not in span
    with pytest.raises(ValueError, match="ends after it starts"):
        Span(utc(2027, 1, 1), utc(2027, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        Span(datetime(2027, 1, 1), utc(2027, 1, 2))
    with pytest.raises(ValueError, match="naive"):
        _ = datetime(2027, 1, 1, 12) in span


anchors = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2400, 12, 31),
                       timezones=st.just(UTC))
intervals = st.sampled_from(list(Interval))


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, interval=intervals, first=st.integers(min_value=0, max_value=600),
       count=st.integers(min_value=1, max_value=30))
def test_periods_tile_time_and_keep_their_lengths(anchor: datetime, interval: Interval,
                                                  first: int, count: int) -> None:
    spans = [cycle_period(anchor, interval, i) for i in range(first, first + count)]
    shortest, longest = (28, 31) if interval is Interval.MONTHLY else (365, 366)
    for span, following in itertools.pairwise(spans):
        assert span.end == following.start
    for index, span in enumerate(spans, start=first):
        assert timedelta(days=shortest) <= span.end - span.start <= timedelta(days=longest)
        assert span.start.time() == anchor.time()
        length = calendar.monthrange(span.start.year, span.start.month)[1]
        assert span.start.day == min(anchor.day, length)
        months = (span.start.year - anchor.year) * 12 + span.start.month - anchor.month
        assert months == index * interval.months


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, interval=intervals,
       later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40 * 366)))
def test_period_containing_agrees_with_cycle_period(anchor: datetime, interval: Interval,
                                                    later: timedelta) -> None:
    moment = anchor + later
    index, span = period_containing(anchor, interval, moment)
    assert span == cycle_period(anchor, interval, index)
    assert span.start <= moment < span.end
    assert moment in span
    if index:
        assert moment >= cycle_period(anchor, interval, index - 1).end
