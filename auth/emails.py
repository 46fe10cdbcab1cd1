"""Email address normalisation shared by accounts, invitations and customers, and the
confusable skeleton that tells look-alike addresses apart from new ones."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from auth.errors import AuthCode
from core.confusables import skeleton
from core.errors import CoreCode, InvalidInput


def normalize_email(raw: str, field: str = "email") -> str:
    """Trim, validate and lower-case an address (we treat the local part case-insensitively)."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("Enter an email address.", field=field, code=CoreCode.REQUIRED)
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(
            f"'{candidate[:100]}' is not a valid email address: {error}",
            field=field,
            code=AuthCode.INVALID_EMAIL,
        ) from None
    return result.normalized.lower()


def email_skeleton(address: str) -> str:
    """The skeleton of a normalised address: `demo@…` written with a fullwidth d, or with a
    Cyrillic e, shares `demo@…`'s, so no look-alike sign-up can pass for an account."""
    return skeleton(address)
