"""The device protocol v1 as the client knows it: close codes, limits, frame encoding.

These constants are the simulator's own copy of what `docs/device-protocol.md` says, not
shared with the gateway: the document is the contract a third-party firmware is written
against, and the simulator is one more client of it. `tests/test_device_protocol.py` parses
the document's tables and checks the gateway's constants and these against them, so that the
document, the cloud and the reference client cannot drift apart.
"""

from __future__ import annotations

import json
import re
from enum import IntEnum
from typing import Any

# Every frame, either way, is at most this many UTF-8 bytes.
MAX_FRAME_BYTES = 128 * 1024
# Frame `id`s (the device's) and `replyTo`s run from 1 to this.
MAX_FRAME_ID = 2**31 - 1
# The cloud's default publish limit per device (its settings DEVICE_EVENT_RATE and
# DEVICE_EVENT_BURST): events a second on average, and the bursts allowed.
DEVICE_EVENT_RATE = 1.0
DEVICE_EVENT_BURST = 4
# Subscriptions a device holds at once; a prefix is at most 64 of these characters.
MAX_SUBSCRIPTIONS = 4
PREFIX = re.compile(r"[A-Za-z0-9_\-/.]{0,64}")


class CloseCode(IntEnum):
    """The WebSocket close codes the cloud ends a session with."""

    UNAUTHORIZED = 4401
    DENIED = 4403
    TIMEOUT = 4408
    REPLACED = 4409
    INTERNAL = 1011


# A session closed with one of these is refused for good, with this reason: not retried.
REFUSED = {CloseCode.UNAUTHORIZED: "unauthorized", CloseCode.DENIED: "denied"}


def encode(frame: dict[str, Any]) -> str:
    """One frame as the text of a WebSocket message (compact JSON)."""
    return json.dumps(frame, separators=(",", ":"))


def decode(message: str | bytes) -> dict[str, Any] | None:
    """The frame in a message from the cloud, or None if it is not a JSON object."""
    try:
        frame = json.loads(message)
    except (TypeError, ValueError):
        return None
    return frame if isinstance(frame, dict) else None
