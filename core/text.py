"""Text the databases can store: Unicode without NUL characters or lone surrogates.

PostgreSQL refuses NUL in text, and a lone surrogate (which JSON's `\\ud800` escapes and
percent-decoding can produce) cannot be encoded at all: either would fail deep inside a write
as an internal error. Transports check their input with `storable` and refuse it at the edge.
"""

from __future__ import annotations

from typing import Any

REFUSAL = "Text must be Unicode without NUL characters or unpaired surrogates."


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
