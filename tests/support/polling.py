"""Waiting with a deadline, never a sleep that hopes: poll a condition, read the next frame."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

WITHIN = 10  # seconds: how long anything expected may take


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WITHIN) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next WebSocket message, as JSON, within WITHIN seconds."""
    return json.loads(await asyncio.wait_for(ws.recv(), WITHIN))
