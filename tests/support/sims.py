"""ICCIDs for tests: valid ones made from a number, with their Luhn check digit."""

from __future__ import annotations

from fleet.sims import luhn_valid


def iccid(number: int) -> str:
    """A valid 19-digit ICCID (89, then 44, then `number` on 14 digits, then the check
    digit); distinct numbers give distinct ICCIDs."""
    body = f"8944{number:014d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))
