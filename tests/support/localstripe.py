"""localstripe (a stateful Stripe-compatible server) for the tests, one per test process.

The `localstripe` fixture runs `python -m localstripe` on a free loopback port for the session
and yields a `Localstripe`: its `url` is what `STRIPE_API_BASE` (or `StripeGateway`'s
`api_base`) is set to, and `API_KEY` is accepted there (localstripe takes any `sk_` key).

localstripe ignores the `Idempotency-Key` header, which the billing code relies on to charge
once per attempt. So `url` is a small front in this process that does what Stripe documents:
the first response to a key (a success, or a card error) is replayed for every later request
with that key and the same method, path and body (with `Idempotent-Replayed: true`); a key
reused with other parameters gets Stripe's 400 `idempotency_error`. Everything else is passed
through to localstripe unchanged; `server_url` is localstripe itself.

localstripe keeps its state in memory for the whole session: tests must not depend on one
another, so each makes its own customers.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.processes import free_port

API_KEY = "sk_test_localstripe"
STARTUP_TIMEOUT = 30.0  # seconds until localstripe answers
PORT_ATTEMPTS = 3  # a free port may be taken between choosing it and binding it
# What Stripe keeps an idempotent result for: a request that ran (not one it refused as
# malformed, nor a server error).
KEPT_STATUSES = frozenset(range(200, 300)) | {402}


@dataclass(frozen=True)
class Localstripe:
    url: str  # the idempotent front: give this to the code under test
    server_url: str  # localstripe itself

    def client(self) -> httpx.AsyncClient:
        """An HTTP client for localstripe's API, authenticated with `API_KEY` (for what the
        app side or Stripe.js does in real life, such as confirming a SetupIntent)."""
        return httpx.AsyncClient(base_url=self.server_url, auth=(API_KEY, ""), timeout=10,
                                 trust_env=False)


@dataclass
class _Kept:
    request: tuple[str, str, bytes]  # method, path with query, body
    status: int
    body: bytes
    content_type: str


@dataclass
class _IdempotentFront:
    """Replays Stripe's idempotent results in front of a server that keeps none."""

    upstream: httpx.AsyncClient
    kept: dict[tuple[str, str], _Kept] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key:
            return await self.forward(request, body)
        scope = (request.headers.get("authorization", ""), key)
        async with self.locks.setdefault(scope, asyncio.Lock()):
            asked = (request.method, request.url.path + "?" + request.url.query, body)
            kept = self.kept.get(scope)
            if kept is not None and kept.request != asked:
                return JSONResponse({"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                               "parameters they were first used with.",
                }}, status_code=400)
            if kept is not None:
                return Response(kept.body, kept.status, media_type=kept.content_type,
                                headers={"Idempotent-Replayed": "true"})
            response = await self.forward(request, body)
            if response.status_code in KEPT_STATUSES:
                self.kept[scope] = _Kept(asked, response.status_code, bytes(response.body),
                                         response.media_type or "application/json")
            return response

    async def forward(self, request: Request, body: bytes) -> Response:
        headers = {name: value for name, value in request.headers.items()
                   if name in ("authorization", "content-type", "stripe-version")}
        answer = await self.upstream.request(
            request.method, request.url.path, params=request.url.query, content=body,
            headers=headers,
        )
        return Response(answer.content, answer.status_code,
                        media_type=answer.headers.get("content-type"))


async def _start_server(log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """localstripe on a free port, once it answers; the process and its URL."""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch",
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        if await _answers(process, url):
            return process, url
        if "address already in use" not in _output(log).lower():
            break
    pytest.fail(f"localstripe exited with status {process.returncode} before it answered; "
                f"its output:\n{_output(log)}", pytrace=False)


def _output(log: Path) -> str:
    return log.read_text(errors="replace")


async def _answers(process: asyncio.subprocess.Process, url: str) -> bool:
    """Poll localstripe until it answers (True), or it exits (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(base_url=url, auth=(API_KEY, ""), timeout=2,
                                 trust_env=False) as http:
        while process.returncode is None:
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                if (await http.get("/v1/customers")).status_code == 200:
                    return True
            if loop.time() > deadline:
                process.kill()
                await process.wait()
                pytest.fail(f"localstripe did not answer within {STARTUP_TIMEOUT:g} s",
                            pytrace=False)
            await asyncio.sleep(0.05)
    await process.wait()
    return False


@pytest.fixture(scope="session")
async def localstripe() -> AsyncIterator[Localstripe]:
    """localstripe for this test process, behind its idempotent front."""
    with tempfile.TemporaryDirectory() as tmp:
        process, server_url = await _start_server(Path(tmp) / "localstripe.log")
        upstream = httpx.AsyncClient(base_url=server_url, timeout=30, trust_env=False)
        front = Starlette(routes=[Route("/{path:path}", _IdempotentFront(upstream).handle,
                                        methods=["GET", "POST", "DELETE"])])
        server = uvicorn.Server(uvicorn.Config(front, host="127.0.0.1", port=0,
                                               log_config=None, lifespan="off"))
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    pytest.fail("the idempotent front of localstripe did not start",
                                pytrace=False)
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield Localstripe(f"http://127.0.0.1:{port}", server_url)
        finally:
            server.should_exit = True
            await task
            await upstream.aclose()
            process.terminate()
            await process.wait()
