"""A device's side of the gateway (`/device/v1`), as the tests drive it over WebSocket: devices
made straight in the registry, a connected and welcomed session, frames sent and answered."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from auth import tokens
from core import clock
from models.devices import Device, Event
from models.products import Product
from tests.support.polling import eventually, receive

FIRMWARE = {"firmwareVersion": "3", "systemFirmwareVersion": "5.6.0",
            "functions": ["reboot", "setTemp"], "variables": ["temperature"]}


async def make_device(
    product: Product | None = None, *, forced: bool = False, quarantine: str = "NONE",
    online: bool = False, last_heard_at: Any = None,
) -> tuple[str, str]:
    """A device straight in the registry (as provisioning and import leave it): ID, secret."""
    device_id, secret = secrets.token_hex(12), secrets.token_urlsafe(24)
    await Device.create(
        id=device_id, secret_hash=tokens.digest(secret), platform="Photon",
        provisioned_at=clock.now(), product=product,
        imported_at=clock.now() if product else None, import_forced=forced,
        quarantine=quarantine, online=online, last_heard_at=last_heard_at,
        session_id="dead-process" if online else None,
    )
    return device_id, secret


async def exchange(ws: ClientConnection, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
    await ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
    return await receive(ws)


async def close_code(ws: ClientConnection, within: float = 10) -> int | None:
    await asyncio.wait_for(ws.wait_closed(), within)
    return ws.close_code


async def statuses(device_id: str) -> list[tuple[str, int | None]]:
    return list(
        await Event.filter(device_id=device_id, name="spark/status")
        .order_by("id").values_list("data", "product_id")
    )


@asynccontextmanager
async def session(
    url: str, device_id: str, secret: str, product_id: int | None
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A device connected and welcomed: the connection and the welcome frame."""
    async with connect(url, max_size=None) as ws:
        auth = {"type": "auth", "id": 1, "deviceId": device_id, "secret": secret}
        assert await exchange(ws, auth) == {"type": "ok", "replyTo": 1}
        welcome = await exchange(ws, {"type": "hello", "id": 2, "productId": product_id,
                                      **FIRMWARE})
        assert welcome["type"] == "welcome", welcome
        session_id = (await Device.get(id=device_id)).session_id
        yield ws, welcome

    async def ended() -> bool:
        return (await Device.get(id=device_id)).session_id != session_id

    await eventually(ended)


def publish(frame_id: int, name: str = "temp", data: str = "21.5", **extra: Any
            ) -> dict[str, Any]:
    """A `publish` frame (its message ID follows the frame ID)."""
    return {"type": "publish", "id": frame_id, "messageId": f"m{frame_id}", "name": name,
            "data": data, **extra}


async def answer_next(ws: ClientConnection, **reply: Any) -> dict[str, Any]:
    """Read the cloud's next request and answer it with `reply`; the request."""
    request = await receive(ws)
    await ws.send(json.dumps({"type": "reply", "replyTo": request["id"], **reply}))
    return request
