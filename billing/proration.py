"""Proration: what a change in the middle of a period adds to, or takes off, the next invoice.

A change at `at` within a period `span` is charged (or credited) the part of a full period's
amount for the time left, `at` to `span.end`, counted in whole seconds (a fraction of a second
left is not counted), out of the period's whole seconds, rounded to the cent with halves away
from zero: `round_half_up(full * seconds_left, seconds_in_period)`. Rounding symmetrically makes
a removal's credit exactly the negation of the matching addition's charge. Integer arithmetic
throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from billing.cycles import Span
from billing.money import format_usd
from billing.plans import CATALOG, Interval, PlanKind

_SECOND = timedelta(seconds=1)
# Between the two dates of a line: an en dash with a space each side.
_DASH = " \u2013 "
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def round_half_up(numerator: int, denominator: int) -> int:
    """`numerator ÷ denominator` rounded to the nearest integer, a half rounded up in
    magnitude (away from zero): 5 ÷ 2 → 3, -5 ÷ 2 → -3, 4 ÷ 3 → 1. `denominator` is positive
    (`ValueError` otherwise)."""
    if denominator < 1:
        raise ValueError(f"A denominator is positive, not {denominator}.")
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


def _whole_seconds(delta: timedelta) -> int:
    return delta // _SECOND


def _check_within(span: Span, at: datetime, *, end_included: bool) -> None:
    """`ValueError` unless `at` is aware and in `span` (`span.end` too if `end_included`)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("A change happens at an aware datetime; this one is naive.")
    if not (span.start <= at <= span.end if end_included else at in span):
        raise ValueError(f"{at} is not within the period {span.start} → {span.end}.")


def prorated_cents(full_period_cents: int, span: Span, at: datetime) -> int:
    """The part of `full_period_cents` (negative for a credit) for the time left in `span`
    from `at`: `round_half_up(full * seconds_left, seconds_in_period)`, with `seconds_left` the
    whole seconds from `at` to `span.end` and `seconds_in_period` the span's whole seconds. So
    `at = span.start` is the full amount and `at = span.end` is 0. A naive `at`, one outside
    `span.start <= at <= span.end`, and a span shorter than a second are `ValueError`."""
    _check_within(span, at, end_included=True)
    seconds_in_period = _whole_seconds(span.end - span.start)
    if seconds_in_period < 1:
        raise ValueError("A period lasts at least a second.")
    return round_half_up(full_period_cents * _whole_seconds(span.end - at), seconds_in_period)


def date_text(moment: datetime) -> str:
    """A moment's date in UTC as the invoices write it: "10 Nov 2026"."""
    day = moment.astimezone(UTC)
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def dates_text(start: datetime, end: datetime) -> str:
    """The days `start` up to `end` (exclusive) touch, in UTC: the first and the last joined by
    an en dash with a space each side, "10 Nov 2026 \u2013 30 Nov 2026" for 10 Nov 00:00 to
    1 Dec 00:00. The last day is the one of the last instant before `end`."""
    return date_text(start) + _DASH + date_text(end - timedelta(microseconds=1))


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A line for the next invoice, for a change within a period: what it is for and for which
    dates (`description`), its amount in USD cents (positive: a charge; negative: a credit),
    and the time it covers, `start` (the change) up to `end` (the period's end), both aware.
    `end` not after `start`, and an empty description, are `ValueError`. The constructors below
    take the change's moment `at` within its period `span`: `span.start <= at < span.end` (a
    change at `span.end` is in the next period, at its start), else `ValueError`."""

    description: str
    amount_cents: int
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        Span(self.start, self.end)
        if not self.description:
            raise ValueError("An adjustment says what it is for.")

    @classmethod
    def _prorated(cls, what: str, full_period_cents: int, span: Span, at: datetime
                  ) -> Adjustment:
        _check_within(span, at, end_included=False)
        return cls(f"{what}, {dates_text(at, span.end)}",
                   prorated_cents(full_period_cents, span, at), at, span.end)

    @classmethod
    def seat_added(cls, member: str, interval: Interval, span: Span, at: datetime
                   ) -> Adjustment:
        """A TEAM member (`member`: their email, or name) accepted at `at`: one seat's price
        for a period of `interval` (4,900 cents a month), prorated. "Team member added
        (ana@example.com), {dates}", the dates as `dates_text` writes them."""
        return cls._prorated(f"Team member added ({member})", _seat_cents(interval), span, at)

    @classmethod
    def seat_removed(cls, member: str, interval: Interval, span: Span, at: datetime
                     ) -> Adjustment:
        """A TEAM member removed at `at`: the credit for their seat's time left, exactly the
        negation of `seat_added` for the same moment. "Team member removed (ana@example.com),
        {dates}"."""
        return cls._prorated(f"Team member removed ({member})", -_seat_cents(interval), span,
                             at)

    @classmethod
    def block_added(cls, plan: PlanKind, interval: Interval, span: Span, at: datetime
                    ) -> Adjustment:
        """A block added at `at` on `plan` (one that sells blocks: BASIC or TEAM, else
        `ValueError`): a block's price for a period of `interval` (29,900 cents a month),
        prorated. "Block added (100 devices, 720,000 data operations a month), {dates}"."""
        terms = CATALOG[plan]
        if terms.block is None or terms.block_price_cents is None or terms.max_blocks == 1:
            raise ValueError(f"{plan} does not sell more blocks.")
        what = (f"Block added ({terms.block.devices:,} devices, "
                f"{terms.block.data_operations:,} data operations a month)")
        return cls._prorated(what, terms.block_price_cents * interval.months, span, at)

    @classmethod
    def plan_switched(cls, old: str, old_period_cents: int, new: str, new_period_cents: int,
                      span: Span, at: datetime) -> Adjustment:
        """A switch at `at` from the plan named `old`, whose full period costs
        `old_period_cents`, to the one named `new` (`new_period_cents` for the same period
        `span`): the charge for the new plan's time left less the credit for the old plan's,
        each prorated and rounded on its own, so the line's amount is the difference of the
        two amounts it names. "Plan switched from BASIC, 1 block, monthly to TEAM, 3 members,
        monthly, {dates}: $98.00 for TEAM, 3 members, monthly less $199.33 unused of BASIC, 1
        block, monthly"."""
        _check_within(span, at, end_included=False)
        charge = prorated_cents(new_period_cents, span, at)
        credit = prorated_cents(old_period_cents, span, at)
        return cls(f"Plan switched from {old} to {new}, {dates_text(at, span.end)}: "
                   f"{format_usd(charge)} for {new} less {format_usd(credit)} unused of {old}",
                   charge - credit, at, span.end)


def _seat_cents(interval: Interval) -> int:
    """One TEAM seat's price for a period of `interval`."""
    seat = CATALOG[PlanKind.TEAM].seat_price_cents
    assert seat is not None  # TEAM is priced per seat
    return seat * interval.months
