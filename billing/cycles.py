"""Billing cycles: a subscription's periods, anchored at the moment its cycle started.

A cycle's periods are not calendar months: period `index` starts `index` intervals after the
anchor, counted from the anchor itself (never from the previous period, so a short month does
not pull the later ones earlier). The anchor's day of the month is kept where the month has it
and is the month's last day where it does not: a cycle anchored on 31 January at 10:00 UTC has
periods starting 31 January, 28 February (29 in a leap year), 31 March, 30 April…, each at
10:00 UTC; an annual one anchored on 29 February 2028 starts again on 28 February 2029 and on
29 February 2032. All arithmetic is in UTC.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

from billing.plans import Interval


def _utc(moment: datetime, what: str) -> datetime:
    """`moment` in UTC; a naive datetime names no instant: `ValueError`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} is an aware datetime; this one is naive.")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of time, `start <= moment < end` (end exclusive), stored in UTC. Naive
    datetimes, and an end not after the start, are `ValueError`."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "A span's start"))
        object.__setattr__(self, "end", _utc(self.end, "A span's end"))
        if self.end <= self.start:
            raise ValueError(f"A span ends after it starts: {self.start} → {self.end}.")

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= _utc(moment, "A moment") < self.end


def _shift(anchor: datetime, months: int) -> datetime:
    """The anchor `months` months later: same time of day, day of month clamped to the
    month's length. `ValueError` past year 9999."""
    years, month = divmod(anchor.month - 1 + months, 12)
    year = anchor.year + years
    if not 1 <= year <= 9999:
        raise ValueError(f"No billing period in year {year}: years 1 to 9999.")
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def cycle_period(anchor: datetime, interval: Interval, index: int) -> Span:
    """Period `index` (0 is the first, starting at `anchor`) of a cycle anchored at `anchor`:
    from `index` intervals after the anchor up to `index + 1` intervals after it. A naive
    anchor, a negative index and a period past year 9999 are `ValueError`."""
    start = _utc(anchor, "A cycle's anchor")
    if index < 0:
        raise ValueError(f"A cycle's periods start at its anchor: no period {index}.")
    months = interval.months
    return Span(_shift(start, index * months), _shift(start, (index + 1) * months))


def period_containing(anchor: datetime, interval: Interval, moment: datetime
                      ) -> tuple[int, Span]:
    """The index and span of the period of the cycle anchored at `anchor` that `moment` falls
    in: `cycle_period(anchor, interval, index)` is the one with `start <= moment < end`. A
    naive datetime and a moment before the anchor are `ValueError`."""
    start, at = _utc(anchor, "A cycle's anchor"), _utc(moment, "A moment")
    if at < start:
        raise ValueError(f"{at} is before the cycle started, at {start}.")
    months = (at.year - start.year) * 12 + at.month - start.month
    index = months // interval.months
    span = cycle_period(start, interval, index)
    if at < span.start:
        index -= 1
        span = cycle_period(start, interval, index)
    return index, span
