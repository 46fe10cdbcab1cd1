"""Money as the invoices write it. Every amount is integer cents of one currency, USD."""

from __future__ import annotations

CURRENCY = "USD"


def format_usd(cents: int) -> str:
    """`cents` as dollars with a thousands separator and two decimals: 123456 → "$1,234.56",
    -3267 → "-$32.67", 0 → "$0.00"."""
    dollars, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}${dollars:,}.{rest:02d}"
