"""Latency of `product.deviceStats` over a product of 100,000 devices, beside the bench's
baseline route: sequential requests over HTTP, one at a time, so each figure is one answer's
time (p50 and p99). The devices are written directly in the bench's database first, with
varied firmware versions, online flags and histories; they never connect.

`python -m bench.device_stats` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from auth import accounts, tokens
from auth.principals import UserPrincipal
from bench import BenchError
from bench.database import create_fixtures, temporary_database
from bench.server import BASELINE_PATH, running_server
from core import clock
from core.settings import get_settings
from fleet import organizations, products
from models import db
from models.devices import Device
from models.oauth import OAuthClient

DEVICE_COUNT = 100_000
CHUNK = 5_000
REQUESTS = 50
WARMUP_REQUESTS = 5
STATS_EMAIL = "stats@devicecloud.example"
STATS_SLUG = "bench-stats"
FIRST_PARTY_CLIENT_ID = "devicecloud"
FIRMWARE = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0")
SYSTEM_FIRMWARE = ("5.6.0", "5.7.0", "6.1.0")
QUERY = (
    f'{{ product(idOrSlug: "{STATS_SLUG}") {{ deviceStats {{ total online offline neverOnline'
    " development quarantined byFirmwareVersion { version devices online }"
    " bySystemFirmwareVersion { version devices online } } } }"
)


@dataclass(frozen=True)
class StatsSetup:
    token: str
    devices: int
    seed_seconds: float


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class StatsFigure:
    devices: int
    requests: int
    stats: Latency
    baseline: Latency
    seed_seconds: float


def _device(index: int, product_id: int) -> Device:
    """Device `index` of the fleet: one in 20 never came online, a third of the others are
    online, one in 10 is a development device, one in 500 sits in the quarantine."""
    now = clock.now()
    never_online = index % 20 == 0
    return Device(
        id=secrets.token_hex(12), secret_hash="0" * 64, platform="Photon",
        provisioned_at=now - timedelta(days=90), product_id=product_id,
        quarantine="QUARANTINED" if index % 500 == 1 else "NONE",
        development=index % 10 == 3,
        firmware_version=None if never_online else FIRMWARE[index % len(FIRMWARE)],
        system_firmware_version=(
            None if never_online else SYSTEM_FIRMWARE[index % len(SYSTEM_FIRMWARE)]
        ),
        online=not never_online and index % 3 == 0,
        last_heard_at=None if never_online else now - timedelta(seconds=index * 7),
        first_online_at=None if never_online else now - timedelta(days=30, seconds=index),
    )


async def seed(database_url: str, count: int = DEVICE_COUNT) -> StatsSetup:
    """An organization of its own (a user belongs to one) with a product of `count` devices,
    written in chunks, and an access token for its owner."""
    await db.connect(database_url)
    try:
        user = await accounts.sign_up(STATS_EMAIL, secrets.token_urlsafe(16), email_verified=True)
        client = await OAuthClient.get(client_id=FIRST_PARTY_CLIENT_ID)
        principal = UserPrincipal(client=client, family_id=0, scope="", user=user)
        organization = await organizations.create_organization(principal, "Bench stats",
                                                               STATS_SLUG)
        product = await products.create_product(
            principal, organization.id, name="Bench stats", slug=STATS_SLUG, description="",
            platform="Photon", customer_auth="SIMPLE",
        )
        started = time.perf_counter()
        for offset in range(0, count, CHUNK):
            await Device.bulk_create(
                [_device(i, product.id) for i in range(offset, min(offset + CHUNK, count))]
            )
        seed_seconds = time.perf_counter() - started
        issued = await tokens.issue(
            client=client, user=user, scope="", grant_type="password",
            access_lifetime=get_settings().access_token_lifetime, refresh_lifetime=None,
        )
    finally:
        await db.disconnect()
    return StatsSetup(issued.access_token, count, seed_seconds)


def _latency(samples: list[float]) -> Latency:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Latency(p50_ms=cuts[49] * 1000, p99_ms=cuts[98] * 1000)


async def _timed(
    client: httpx.AsyncClient,
    send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    check: Callable[[httpx.Response], None],
) -> list[float]:
    for _ in range(WARMUP_REQUESTS):
        check(await send(client))
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = await send(client)
        samples.append(time.perf_counter() - started)
        check(response)
    return samples


def _check_stats(expected_total: int) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        body = response.json() if response.status_code == 200 else {}
        stats = ((body.get("data") or {}).get("product") or {}).get("deviceStats")
        if stats is None or stats["total"] + stats["quarantined"] != expected_total:
            raise BenchError(f"deviceStats failed: {response.status_code} {response.text[:300]}")

    return check


def _check_baseline(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise BenchError(f"the baseline failed: {response.status_code}")


async def run(base_url: str, setup: StatsSetup) -> StatsFigure:
    """Time `deviceStats` and the baseline, each `REQUESTS` times after a short warm-up."""
    headers = {"Authorization": f"Bearer {setup.token}"}
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60.0) as client:
        baseline = await _timed(client, lambda c: c.get(BASELINE_PATH), _check_baseline)
        stats = await _timed(
            client, lambda c: c.post("/graphql", json={"query": QUERY}, headers=headers),
            _check_stats(setup.devices),
        )
    return StatsFigure(setup.devices, REQUESTS, _latency(stats), _latency(baseline),
                       setup.seed_seconds)


def section(figure: StatsFigure) -> str:
    return (
        f"deviceStats over {figure.devices:,} devices, {figure.requests} sequential requests:"
        f" p50 {figure.stats.p50_ms:.1f} ms, p99 {figure.stats.p99_ms:.1f} ms"
        f" (baseline GET {BASELINE_PATH}: p50 {figure.baseline.p50_ms:.1f} ms,"
        f" p99 {figure.baseline.p99_ms:.1f} ms).\n"
        f"  (Writing the devices directly in the database took {figure.seed_seconds:.1f} s;"
        " not part of the figure.)"
    )


def main() -> None:
    try:
        with (
            tempfile.TemporaryDirectory(prefix="devicecloud-bench-") as workdir,
            temporary_database(Path(workdir)) as database,
        ):
            print(f"Database: {database.description}", flush=True)
            asyncio.run(create_fixtures(database.url))
            setup = asyncio.run(seed(database.url))
            with running_server(database.url, Path(workdir) / "server.log") as base_url:
                figure = asyncio.run(run(base_url, setup))
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(section(figure))


if __name__ == "__main__":
    main()
