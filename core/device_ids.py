"""The form of a device ID: 24 hexadecimal characters, stored lower-case, never changing.

A protocol fact shared by the cloud and its device clients (the simulator reads device IDs
from a CSV file), so it lives here rather than in `fleet/`.
"""

from __future__ import annotations

import re

_DEVICE_ID = re.compile(r"[0-9a-f]{24}")


def normalize_device_id(raw: str) -> str | None:
    """The canonical (lower-case, trimmed) form of a device ID, or None if it is not one."""
    candidate = raw.strip().lower()
    return candidate if _DEVICE_ID.fullmatch(candidate) else None
