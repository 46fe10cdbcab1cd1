"""Real app processes for end-to-end tests across processes.

Each `AppProcess` is `python -m uvicorn api.app:create_app --factory` in a process of its own on
a free loopback port, as behind a load balancer: every process uses the test run's database
(the `database_url` fixture's) and one Redis broker (`TEST_REDIS_URL`), namespaced by a channel
prefix of its own for each `app_processes` block, so that test runs sharing a Redis never meet.

    async with app_processes(database_url) as apps:
        a, b = await apps.start(2)
        c = await apps.start_one(env={"DEVICE_EVENT_RATE": "1000"})
        await a.kill()  # SIGKILL

The block stops (SIGTERM) whatever still runs when it ends, and fails the test if a process
does not exit cleanly; a process's output (its log) is printed then, so a failing test shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError

from core.settings import get_settings
from tests.support.constants import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0  # seconds until /readyz answers 200
STOP_TIMEOUT = 15.0  # seconds from SIGTERM to exit
GRACEFUL_SHUTDOWN = 5  # uvicorn's limit on open connections at SIGTERM
PORT_ATTEMPTS = 3  # a free port may be taken between choosing it and binding it
# uvicorn exits by SIGTERM itself once it has shut down gracefully.
CLEAN_EXIT = (0, -signal.SIGTERM)
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class AppProcess:
    """One running app process."""

    name: str
    url: str  # http://127.0.0.1:<port>
    process: asyncio.subprocess.Process
    log: Path
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    @property
    def device_url(self) -> str:
        """The device gateway's WebSocket URL."""
        return self.url.replace("http://", "ws://") + "/device/v1"

    @property
    def graphql_ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False, **kwargs)

    def output(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace")

    async def stop(self) -> None:
        """SIGTERM, then wait for the process to exit. Fails the test if it does not exit
        cleanly within `STOP_TIMEOUT` seconds (and then kills it)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        problem = await self.stopped()
        if problem:
            pytest.fail(f"{problem}; its output:\n{self.output()}", pytrace=False)

    async def stopped(self) -> str | None:
        """Wait for the process to exit after SIGTERM: None if it exited cleanly, else what
        went wrong (it is killed if it did not exit in time)."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                status = await self.process.wait()
        except TimeoutError:
            await self.kill()
            return f"app process {self.name} did not exit within {STOP_TIMEOUT:g} s of SIGTERM"
        if status not in CLEAN_EXIT and not self.killed:
            return f"app process {self.name} exited with status {status}"
        if TRACEBACK in self.output():
            return f"app process {self.name} logged an exception"
        return None

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash; returns once it is gone."""
        self.killed = True
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


@dataclass
class AppProcesses:
    """The app processes of one test, sharing its database and broker namespace."""

    database_url: str
    directory: Path
    prefix: str = field(default_factory=lambda: f"test-{secrets.token_hex(6)}")
    started: list[AppProcess] = field(default_factory=list)
    _named: int = 0

    def redis_channel(self, channel: str) -> str:
        """The Redis channel that carries the broker channel `channel` of these processes."""
        return f"{self.prefix}:{channel}"

    async def redis_subscribers(self, channel: str) -> int:
        """How many processes Redis counts as subscribed to the broker channel `channel`."""
        client = redis.Redis.from_url(TEST_REDIS_URL)
        try:
            ((_, count),) = await client.pubsub_numsub(self.redis_channel(channel))
        finally:
            await client.aclose()
        return int(count)

    async def start(self, count: int, env: Mapping[str, str] | None = None) -> list[AppProcess]:
        """Start `count` processes at once (with extra environment `env`); returns them
        once every one is ready."""
        return list(await asyncio.gather(*(self.start_one(env) for _ in range(count))))

    async def start_one(self, env: Mapping[str, str] | None = None) -> AppProcess:
        name = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[self._named % 26]  # A, B… in the order asked
        self._named += 1
        for attempt in range(1, PORT_ATTEMPTS + 1):
            app = await self._spawn(f"{name}-{attempt}" if attempt > 1 else name, env)
            if await self._ready(app):
                return app
            self.started.remove(app)  # it has exited: reported below, or replaced
            if "address already in use" not in app.output().lower():
                break
        pytest.fail(
            f"app process {app.name} exited with status {app.process.returncode} before it "
            f"was ready; its output:\n{app.output()}",
            pytrace=False,
        )

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        settings = get_settings()
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "BROKER_URL": TEST_REDIS_URL,
            "BROKER_CHANNEL_PREFIX": self.prefix,
            "ENVIRONMENT": "development",
            "SECRET_KEY": settings.secret_key,
            "BASE_URL": settings.base_url,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",  # the log is complete up to a SIGKILL
            **(extra or {}),
        }

    async def _spawn(self, name: str, env: Mapping[str, str] | None) -> AppProcess:
        port = free_port()
        log = self.directory / f"{name}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN),
                cwd=ROOT, env=self.environment(env), stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
            )
        app = AppProcess(name, f"http://127.0.0.1:{port}", process, log)
        self.started.append(app)
        return app

    async def _ready(self, app: AppProcess) -> bool:
        """Wait until the process answers /readyz (its lifespan has started: database,
        broker, gateway); False if it exited first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        async with httpx.AsyncClient(base_url=app.url, timeout=2, trust_env=False) as http:
            while app.running:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass  # not listening yet
                if loop.time() > deadline:
                    await app.kill()
                    self.started.remove(app)  # reported here
                    pytest.fail(
                        f"app process {app.name} was not ready within {STARTUP_TIMEOUT:g} s; "
                        f"its output:\n{app.output()}",
                        pytrace=False,
                    )
                await asyncio.sleep(0.05)
        await app.process.wait()
        return False

    async def close(self) -> None:
        """Stop every process still running (all at once), kill what will not stop, and fail
        if one did not exit cleanly (unless the test killed it) or logged an exception."""
        for app in self.started:
            if app.running:
                with contextlib.suppress(ProcessLookupError):
                    app.process.send_signal(signal.SIGTERM)
        problems = [problem for app in self.started if (problem := await app.stopped())]
        for app in self.started:
            output = app.output()
            if output:
                print(f"--- output of app process {app.name} (pid {app.pid}) ---\n{output}")
        if problems:
            pytest.fail("; ".join(problems) + " (the output is above)", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def require_redis() -> None:
    """Fail the test, saying why, when Redis is not there: the tests never skip for it."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        unreachable = str(error)
    else:
        return
    finally:
        await client.aclose()
    pytest.fail(
        f"Redis at {TEST_REDIS_URL} (TEST_REDIS_URL) is unreachable ({unreachable}); the tests "
        "across app processes need it: start one, e.g. `redis-server --daemonize yes`.",
        pytrace=False,
    )


@contextlib.asynccontextmanager
async def app_processes(database_url: str) -> AsyncIterator[AppProcesses]:
    """App processes on `database_url` for the duration of the block; see the module."""
    await require_redis()
    with tempfile.TemporaryDirectory(prefix="app-processes-") as directory:
        apps = AppProcesses(database_url, Path(directory))
        try:
            yield apps
        finally:
            await apps.close()
