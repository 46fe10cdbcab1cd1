"""Device IDs given as input: parsed to their canonical form or refused as `InvalidInput`."""

from __future__ import annotations

from core.device_ids import normalize_device_id
from core.errors import InvalidInput
from fleet.errors import FleetCode


def parse_device_id(raw: str, field: str = "deviceId") -> str:
    device_id = normalize_device_id(raw)
    if device_id is None:
        raise InvalidInput(
            f"'{raw[:40]}' is not a device ID: a device ID is 24 hexadecimal characters.",
            field=field,
            code=FleetCode.INVALID_DEVICE_ID,
        )
    return device_id
