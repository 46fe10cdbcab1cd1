"""The app under test (Device Cloud plus a bare baseline route) and the uvicorn process
that serves it on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.app import create_app as create_devicecloud_app
from bench import BenchError

HOST = "127.0.0.1"
BASELINE_PATH = "/bench/ping"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
POLL_SECONDS = 0.05
STOP_SECONDS = 10.0
LOG_TAIL_LINES = 30


async def ping(request: Request) -> JSONResponse:
    """The baseline: a bare JSON route, behind the same middleware as every other route."""
    return JSONResponse({"ok": True})


def create_app() -> Starlette:
    """Device Cloud with the baseline route added: the `uvicorn --factory` target."""
    app = create_devicecloud_app()
    app.add_route(BASELINE_PATH, ping, methods=["GET"])
    return app


def free_port() -> int:
    """A loopback port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(
    database_url: str,
    log_path: Path,
    *,
    started: Callable[[int], None] | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Serve `create_app` with one uvicorn process; yield its base URL, stop it on exit.

    The server's output goes to `log_path`; its end is shown if the server fails to start.
    `started`, if given, is called with the server's process ID once it answers. `settings`
    are environment variables for the server (e.g. {"DEVICE_EVENT_RATE": "1000"}).
    """
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "DATABASE_URL": database_url,
        "BASE_URL": base_url,
        **(settings or {}),
    }
    command = [
        sys.executable, "-m", "uvicorn", "bench.server:create_app", "--factory",
        "--host", HOST, "--port", str(port), "--app-dir", str(PROJECT_ROOT),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_healthy(process, base_url, log_path)
            if started is not None:
                started(process.pid)
            yield base_url
        finally:
            _stop(process)


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll GET /healthz until it answers 200, the process exits or the deadline passes."""
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=base_url, trust_env=False, timeout=1.0) as client:
        for _ in range(int(STARTUP_SECONDS / POLL_SECONDS)):
            if process.poll() is not None:
                raise _startup_failure(f"exited with status {process.returncode}", log_path)
            with contextlib.suppress(httpx.TransportError):
                if client.get("/healthz").status_code == 200:
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
    raise _startup_failure(f"did not answer within {STARTUP_SECONDS:.0f} s", log_path)


def _startup_failure(reason: str, log_path: Path) -> BenchError:
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return BenchError(f"the server {reason}. The end of its log:\n" + "\n".join(tail))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the server to stop (SIGTERM), and kill it if it does not in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)
