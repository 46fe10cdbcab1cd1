"""Text rules every layer shares: what the databases can store, names, slugs and keys.

Storable text is Unicode without NUL characters or lone surrogates. PostgreSQL refuses NUL in
text, and a lone surrogate (which JSON's `\\ud800` escapes and percent-decoding can produce)
cannot be encoded at all: either would fail deep inside a write as an internal error.
Transports check their input with `storable` and refuse it at the edge.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from core.errors import CoreCode, InvalidInput

REFUSAL = "Text must be Unicode without NUL characters or unpaired surrogates."
NAME_MAX = 100
SLUG_MIN, SLUG_MAX = 3, 63
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KEY = re.compile(r"[0-9]{1,19}")
# Bidirectional formatting characters (embeddings, overrides, isolates, marks): they can make a
# name shown on a page read as something else ("Device Cloud \u202eppa live").
BIDI_FORMATTING = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
KEY_MAX = 2**63 - 1  # BIGINT


def storable(value: Any) -> bool:
    """Whether every string in `value` (a string, or lists and dicts of them, as parsed JSON
    or form fields are) can be stored."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(storable(key) and storable(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(storable(item) for item in value)
    return True


def parse_key(value: str) -> int | None:
    """A primary key from client text (a node ID, a numeric product ID): ASCII digits within
    BIGINT range, else None. `str.isdigit` also accepts digits like '²' that `int` refuses, and
    a larger number makes the database driver fail."""
    if not _KEY.fullmatch(value):
        return None
    key = int(value)
    return key if key <= KEY_MAX else None


def check_length(text: str, limit: int, *, field: str, what: str) -> str:
    """`text`, if it is at most `limit` characters; `what` names it in the refusal."""
    if len(text) > limit:
        raise InvalidInput(
            f"The {what} is {len(text)} characters long; the limit is {limit}.",
            field=field,
            code=CoreCode.TOO_LONG,
        )
    return text


def unsafe_character(value: str) -> str | None:
    """The first control character (Unicode Cc) or bidirectional formatting character in
    `value`, if any."""
    for character in value:
        if character in BIDI_FORMATTING or unicodedata.category(character) == "Cc":
            return character
    return None


def clean_name(value: str, field: str = "name") -> str:
    """A name shown to people (an organization's, a product's, an app's): runs of spaces
    collapsed, at most `NAME_MAX` characters, and no control or bidirectional formatting
    characters, which could disguise it."""
    name = " ".join(value.split())
    if not name:
        raise InvalidInput("Enter a name.", field=field, code=CoreCode.REQUIRED)
    unsafe = unsafe_character(value)
    if unsafe is not None:
        raise InvalidInput(
            f"A name cannot contain control or text-direction characters; remove "
            f"U+{ord(unsafe):04X}.",
            field=field,
            code=CoreCode.UNSAFE_CHARACTERS,
        )
    return check_length(name, NAME_MAX, field=field, what="name")


def clean_slug(value: str, field: str = "slug") -> str:
    if not SLUG_MIN <= len(value) <= SLUG_MAX or not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"A slug is {SLUG_MIN} to {SLUG_MAX} lowercase letters, digits and single hyphens "
            f"between them (like 'acme-sensors'); '{value[:80]}' is not.",
            field=field,
            code=CoreCode.INVALID_SLUG,
        )
    return value


def slugify(name: str) -> str:
    """A slug derived from a name ('Acme Sensors, Inc.' → 'acme-sensors-inc')."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_MAX].strip("-")
    return slug if len(slug) >= SLUG_MIN else (slug + "-org").strip("-")
