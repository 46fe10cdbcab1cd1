"""Running the Node client libraries of `tests/clients/` (the ones apps use) against the live
server: a script there, run by Node without blocking the event loop the server runs on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
WITHIN = 30  # seconds a script may take


async def run_script(script: str, *args: str, node_flags: tuple[str, ...] = ()
                     ) -> list[dict[str, Any]]:
    """The JSON lines `script` printed; fails if it exits with an error or takes too long."""
    process = await asyncio.create_subprocess_exec(
        "node", *node_flags, str(CLIENTS / script), *args, cwd=CLIENTS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), WITHIN)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines()]
