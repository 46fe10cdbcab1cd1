"""Billing periods: calendar months in UTC.

Until subscriptions get their own anchor day, an organization's usage period is the calendar
month in UTC (issue 13, point 5), so a period is a year and a month and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import InvalidInput

_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """One calendar month in UTC. Ordered by time; written `YYYY-MM`."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.year <= 9999 or not 1 <= self.month <= 12:
            raise ValueError(
                f"No period {self.year}-{self.month}: years 1 to 9999, months 1 to 12."
            )

    @classmethod
    def of(cls, moment: datetime) -> Period:
        """The period `moment` falls in. A naive datetime is refused: it names no instant."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("A period is found from an aware datetime; this one is naive.")
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def parse(cls, text: str, *, field: str = "period") -> Period:
        """`YYYY-MM` (such as `2026-12`), or `InvalidInput` naming `field`: this is what users
        type in a query or a URL."""
        match = _TEXT.fullmatch(text)
        if match is None or int(match[1]) < 1 or not 1 <= int(match[2]) <= 12:
            raise InvalidInput(
                f"A period is a month written YYYY-MM, such as 2026-12; got {text!r}.",
                field=field,
            )
        return cls(int(match[1]), int(match[2]))

    @property
    def index(self) -> int:
        """Months since January of year 1: periods `a` and `b` are `b.index - a.index` apart."""
        return self.year * 12 + self.month - 13

    @classmethod
    def from_index(cls, index: int) -> Period:
        year, month = divmod(index, 12)
        return cls(year + 1, month + 1)

    def shift(self, months: int) -> Period:
        """The period `months` later (earlier when negative)."""
        return Period.from_index(self.index + months)

    def next(self) -> Period:
        return self.shift(1)

    def previous(self) -> Period:
        return self.shift(-1)

    def months_since(self, earlier: Period) -> int:
        """How many periods after `earlier` this one is (0 for the same one)."""
        return self.index - earlier.index

    @property
    def start(self) -> datetime:
        """The first instant of the period, in UTC."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period (the next one's start): periods are half-open,
        `start <= moment < end`. (9999-12 has none: `ValueError`.)"""
        return self.next().start

    def __contains__(self, moment: datetime) -> bool:
        return Period.of(moment) == self

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
