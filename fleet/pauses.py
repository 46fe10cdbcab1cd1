"""What a paused organization's devices are refused (its data operations used up and its grace
over: `core.metering`), the one rule behind the gateway's publishes and location points, the
deliveries of subscriptions and the cloud's function calls and variable reads
(docs/device-protocol.md, "Data operations and pauses").

Only new things are refused: a retransmission of an event or a location frame stored already
(same `messageId`) is acknowledged as ever, so a device whose `ack` was lost just before the
pause does not send it again and again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.metering import meter, pause_message
from models.devices import Event, LocationPoint


@dataclass(frozen=True, slots=True)
class Pause:
    """The devices of a product's organization are paused until `until`; `message` says so."""

    until: datetime
    message: str


def pause_of(product_id: int | None) -> Pause | None:
    """The pause of the devices of the product's organization, or None (from memory: asked for
    every frame)."""
    until = meter().paused_until(product_id)
    return None if until is None else Pause(until, pause_message(until))


async def refusing_publish(device_id: str, product_id: int | None,
                           message_id: str) -> Pause | None:
    """The pause that refuses a device's publish: None when not paused, or when the event is
    stored already (a retransmission)."""
    pause = pause_of(product_id)
    if pause is None or await Event.filter(device_id=device_id, message_id=message_id).exists():
        return None
    return pause


async def refusing_location(device_id: str, product_id: int | None,
                            message_id: str) -> Pause | None:
    """The pause that refuses a device's location frame: None when not paused, or when its
    points are stored already (a retransmission)."""
    pause = pause_of(product_id)
    if pause is None or await LocationPoint.filter(device_id=device_id,
                                                    message_id=message_id).exists():
        return None
    return pause
