"""`python -m bench`: requests per second of token issuance, introspection and a small
authenticated GraphQL query, each beside a bare JSON route on the same server; then the
time to import a file of 100,000 device IDs (bench.device_import), the connected devices one
process holds (bench.connections), sustained event ingestion with usage metering off and on,
beside plain batched inserts (bench.ingestion), publish→SSE delivery latency
(bench.live_events) and function-call round trips (bench.function_calls).

BENCH_SECONDS sets the measured time per scenario (default 5); BENCH_DATABASE_URL, a
PostgreSQL server to use instead of a temporary SQLite file. BENCH_CONNECTIONS, the numbers
of simulated devices one server process holds (default "1000,10000"; see bench.connections).
BENCH_EVENT_DEVICES (default 1000), BENCH_SSE_SUBSCRIBERS (default 100) and BENCH_CALLERS
(default 50) size the event scenarios; 0 skips one. `python -m bench.<scenario>` runs one
scenario alone.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import (
    BenchError,
    connections,
    device_import,
    device_stats,
    function_calls,
    ingestion,
    live_events,
    measured_seconds,
)
from bench.database import Credentials, Fixtures, create_fixtures, temporary_database
from bench.load import Measurement, Probe, measure, open_clients
from bench.server import BASELINE_PATH, running_server

CONCURRENCY = 16
WARMUP_SECONDS = 1.0
ME_QUERY = "{ me { id email } }"
PUBLIC_CLIENT_ID = "devicecloud"

BASELINE = Probe(
    "GET", BASELINE_PATH, accept=lambda r: r.status_code == 200 and r.json()["ok"] is True
)


@dataclass(frozen=True)
class Row:
    """A scenario and the baseline measured just before it."""

    name: str
    figure: Measurement
    baseline: Measurement


def _basic(credentials: Credentials) -> dict[str, str]:
    pair = f"{credentials.client_id}:{credentials.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _scenarios(fixtures: Fixtures, access_token: str) -> dict[str, Probe]:
    return {
        "client_credentials token": Probe(
            "POST",
            "/oauth/token",
            accept=lambda r: r.status_code == 200 and "access_token" in r.json(),
            headers=_basic(fixtures.service),
            data={"grant_type": "client_credentials"},
        ),
        "token introspection": Probe(
            "POST",
            "/oauth/introspect",
            accept=lambda r: r.status_code == 200 and r.json()["active"] is True,
            headers=_basic(fixtures.first_party),
            data={"token": access_token, "token_type_hint": "access_token"},
        ),
        f"GraphQL {ME_QUERY}": Probe(
            "POST",
            "/graphql",
            accept=lambda r: (
                r.status_code == 200 and r.json()["data"]["me"]["email"] == fixtures.email
            ),
            headers={"Authorization": f"Bearer {access_token}"},
            json={"query": ME_QUERY},
        ),
    }


async def _sign_in(client: httpx.AsyncClient, fixtures: Fixtures) -> str:
    """An access token for the bench user from the password grant of the public client."""
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": PUBLIC_CLIENT_ID,
            "username": fixtures.email,
            "password": fixtures.password,
        },
    )
    if response.status_code != 200:
        raise BenchError(f"the password grant failed: {response.status_code} {response.text}")
    return response.json()["access_token"]


async def _measure_all(base_url: str, fixtures: Fixtures, seconds: float) -> list[Row]:
    """Each scenario right after a baseline run, so both see the same machine load."""
    async with open_clients(base_url, CONCURRENCY) as clients:
        scenarios = _scenarios(fixtures, await _sign_in(clients[0], fixtures))
        rows = []
        for name, probe in scenarios.items():
            print(f"  measuring {name} and its baseline", file=sys.stderr, flush=True)
            baseline = await measure(clients, BASELINE, seconds=seconds, warmup=WARMUP_SECONDS)
            figure = await measure(clients, probe, seconds=seconds, warmup=WARMUP_SECONDS)
            rows.append(Row(name, figure, baseline))
    return rows


def _table(rows: list[Row]) -> str:
    width = max(len("scenario"), *(len(row.name) for row in rows))
    header = (
        f"{'scenario':<{width}}  {'requests':>8}  {'failed':>6}  {'req/s':>8}"
        f"  {'baseline req/s':>14}  {'ratio':>5}  {'client CPU':>10}  {'(baseline)':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        figure, baseline = row.figure, row.baseline
        ratio = f"{figure.rate / baseline.rate:.2f}" if baseline.rate else "n/a"
        lines.append(
            f"{row.name:<{width}}  {figure.completed:>8}  {figure.failed:>6}"
            f"  {figure.rate:>8.1f}  {baseline.rate:>14.1f}  {ratio:>5}"
            f"  {figure.client_cpu:>10.0%}  {baseline.client_cpu:>10.0%}"
        )
    return "\n".join(lines)


def main() -> None:
    try:
        seconds = measured_seconds()
        with (
            tempfile.TemporaryDirectory(prefix="devicecloud-bench-") as workdir,
            temporary_database(Path(workdir)) as database,
        ):
            print(f"Database: {database.description}")
            print(
                f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
                " before the run",
                flush=True,
            )
            fixtures = asyncio.run(create_fixtures(database.url))
            stats_setup = asyncio.run(device_stats.seed(database.url))
            import_setup = asyncio.run(device_import.seed(database.url))
            with running_server(database.url, Path(workdir) / "server.log") as base_url:
                print(
                    f"Server: one uvicorn process at {base_url}. Load: {CONCURRENCY} concurrent"
                    f" clients, {WARMUP_SECONDS:g} s warm-up, then {seconds:g} s per run",
                    flush=True,
                )
                rows = asyncio.run(_measure_all(base_url, fixtures, seconds))
                stats_figure = asyncio.run(device_stats.run(base_url, stats_setup))
                import_figure = asyncio.run(device_import.run(
                    base_url, import_setup.token, import_setup.product_global_id,
                    import_setup.device_ids, import_setup.provision_seconds))
    except BenchError as error:
        sys.exit(f"bench: {error}")
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; the server is stopped and the database removed.")
    print()
    print(_table(rows))
    print(
        f'\nbaseline = GET {BASELINE_PATH} ({{"ok": true}}) on the same server, measured just'
        " before each scenario.\nratio = req/s / baseline req/s.\nclient CPU = the load"
        " generator's CPU time over wall time (for the scenario, and for its baseline);\n"
        "near 100%, the client rather than the server limits the figure."
    )
    print()
    print(device_stats.section(stats_figure))
    print()
    print(device_import.section(import_figure))
    failures = [
        (label, result.first_failure)
        for row in rows
        for label, result in ((row.name, row.figure), (f"baseline before {row.name}", row.baseline))
        if result.failed
    ]
    for label, failure in failures:
        print(f"{label}: requests failed; the first: {failure}", file=sys.stderr)
    # Each of these runs on a fresh database and server of its own.
    for scenario in (connections.section, lambda: ingestion.section(seconds),
                     lambda: live_events.section(seconds),
                     lambda: function_calls.section(seconds)):
        try:
            text = scenario()
        except BenchError as error:
            sys.exit(f"bench: {error}")
        except KeyboardInterrupt:
            sys.exit("bench: interrupted; the server is stopped and the database removed.")
        if text:
            print("\n" + text, flush=True)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
