"""Device IDs: 24 hexadecimal characters, stored lower-case, never changing."""

from __future__ import annotations

import re

from core.errors import InvalidInput

_DEVICE_ID = re.compile(r"[0-9a-f]{24}")


def normalize_device_id(raw: str) -> str | None:
    """The canonical (lower-case, trimmed) form of a device ID, or None if it is not one."""
    candidate = raw.strip().lower()
    return candidate if _DEVICE_ID.fullmatch(candidate) else None


def parse_device_id(raw: str, field: str = "deviceId") -> str:
    device_id = normalize_device_id(raw)
    if device_id is None:
        raise InvalidInput(
            f"'{raw[:40]}' is not a device ID: a device ID is 24 hexadecimal characters.",
            field=field,
            code="INVALID_DEVICE_ID",
        )
    return device_id
