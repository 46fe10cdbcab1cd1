"""A closed-loop load generator: a fixed number of workers repeat one request for a fixed
time, each on its own keep-alive `httpx.AsyncClient` (one connection per client: a pool
shared by all workers spends more time managing its connections than sending requests)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

# A bound on each worker's loop besides the deadline.
MAX_REQUESTS_PER_WORKER = 1_000_000


@dataclass(frozen=True)
class Probe:
    """One request to repeat, and how to tell a correct answer."""

    method: str
    path: str
    accept: Callable[[httpx.Response], bool]
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    json: Any = None

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(
            self.method, self.path, headers=self.headers, data=self.data, json=self.json
        )


@dataclass(frozen=True)
class Measurement:
    """The outcome of one timed run."""

    completed: int
    failed: int
    seconds: float
    cpu_seconds: float
    first_failure: str | None

    @property
    def rate(self) -> float:
        """Correct answers per second."""
        return self.completed / self.seconds

    @property
    def client_cpu(self) -> float:
        """The load generator's CPU time over wall time: near 1.0, the client is the limit."""
        return self.cpu_seconds / self.seconds


@contextlib.asynccontextmanager
async def open_clients(base_url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One single-connection client per worker; proxies from the environment are ignored."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    limits=httpx.Limits(max_connections=1),
                    timeout=30.0,
                    trust_env=False,
                )
            )
            for _ in range(count)
        ]


async def measure(
    clients: Sequence[httpx.AsyncClient], probe: Probe, *, seconds: float, warmup: float
) -> Measurement:
    """Run `probe` on every client for `warmup` seconds (discarded), then for `seconds`."""
    await _run(clients, probe, warmup)
    return await _run(clients, probe, seconds)


def _accepted(probe: Probe, response: httpx.Response) -> bool:
    try:
        return probe.accept(response)
    except (ValueError, LookupError, TypeError):  # a body of an unexpected shape
        return False


async def _run(clients: Sequence[httpx.AsyncClient], probe: Probe, seconds: float) -> Measurement:
    loop = asyncio.get_running_loop()
    completed = failed = 0
    first_failure: str | None = None

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal completed, failed, first_failure
        for _ in range(MAX_REQUESTS_PER_WORKER):
            if loop.time() >= deadline:
                return
            try:
                response = await probe.send(client)
            except httpx.HTTPError as error:
                failed += 1
                first_failure = first_failure or repr(error)
                continue
            if _accepted(probe, response):
                completed += 1
            else:
                failed += 1
                first_failure = first_failure or f"{response.status_code} {response.text[:200]}"

    cpu_started = time.process_time()
    started = loop.time()
    await asyncio.gather(*(worker(client, started + seconds) for client in clients))
    return Measurement(
        completed=completed,
        failed=failed,
        seconds=loop.time() - started,
        cpu_seconds=time.process_time() - cpu_started,
        first_failure=first_failure,
    )
