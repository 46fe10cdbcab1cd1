"""Function-call and variable-read round trips: BENCH_CALLERS (default 50; 0 skips) callers,
each on its own keep-alive HTTP connection, repeat the GraphQL `callFunction` mutation
(`setTemp`) on a simulated device of their own for BENCH_SECONDS, then `device.variable`
(`temperature`): HTTP → GraphQL → the broker → the device's gateway connection → the simulated
device (simulator/, in this process) → back. Beside them, the same callers on the bench's
bare baseline route. Round trips per second, p50/p99 per call, and the ratio to the baseline.

`python -m bench.function_calls` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from bench import BenchError, measured_seconds
from bench.fleet import (
    Fleet,
    Percentiles,
    Simulation,
    count_setting,
    process_cpu_seconds,
    served_fleet,
)
from bench.load import open_clients
from bench.server import BASELINE_PATH

DEFAULT_CALLERS = 50
MAX_CALLERS = 1000
WARMUP_SECONDS = 1.0
CALL = (
    "mutation($input: CallFunctionInput!) { callFunction(input: $input) { returnValue"
    " userErrors { code message } } }"
)
READ = (
    "query($id: String!) { device(deviceId: $id) { variable(name: \"temperature\") { value"
    " userErrors { code message } } } }"
)

# One request of caller `index`: True if the answer was right.
Request = Callable[[httpx.AsyncClient, int], Awaitable[bool]]


@dataclass(frozen=True)
class RoundTrips:
    completed: int
    failed: int
    seconds: float
    client_cpu: float  # this process (callers and simulated devices) over wall time
    server_cpu: float  # the server process over wall time
    latency: Percentiles
    first_failure: str | None

    @property
    def rate(self) -> float:
        return self.completed / self.seconds


@dataclass(frozen=True)
class CallFigure:
    database: str
    callers: int
    calls: RoundTrips
    reads: RoundTrips
    baseline: RoundTrips
    calls_answered: int  # by the simulated devices, warm-ups included
    reads_answered: int
    requests_made: tuple[int, int]  # calls and reads sent, warm-ups included


class _Counter:
    def __init__(self) -> None:
        self.sent = 0


async def _round_trips(
    clients: Sequence[httpx.AsyncClient], request: Request, seconds: float, sent: _Counter,
    server_pid: int,
) -> RoundTrips:
    """Every client repeats `request` for `seconds`: a closed loop, one request at a time."""
    loop = asyncio.get_running_loop()
    completed = failed = 0
    latencies: list[float] = []
    first_failure: str | None = None

    async def worker(client: httpx.AsyncClient, index: int, deadline: float) -> None:
        nonlocal completed, failed, first_failure
        while loop.time() < deadline:
            started = time.perf_counter()
            sent.sent += 1
            try:
                ok = await request(client, index)
            except (httpx.HTTPError, ValueError, LookupError, TypeError) as error:
                ok, first_failure = False, first_failure or repr(error)
            if ok:
                completed += 1
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1

    cpu_started = time.process_time()
    server_started = process_cpu_seconds(server_pid)
    started = loop.time()
    await asyncio.gather(*(worker(client, index, started + seconds)
                           for index, client in enumerate(clients)))
    elapsed = loop.time() - started
    return RoundTrips(
        completed, failed, elapsed, (time.process_time() - cpu_started) / elapsed,
        (process_cpu_seconds(server_pid) - server_started) / elapsed,
        Percentiles.of(latencies), first_failure,
    )


async def _measure(
    fleet: Fleet, clients: Sequence[httpx.AsyncClient], request: Request, seconds: float,
    sent: _Counter | None = None,
) -> RoundTrips:
    counter = sent or _Counter()
    await _round_trips(clients, request, WARMUP_SECONDS, counter, fleet.server_pid)
    return await _round_trips(clients, request, seconds, counter, fleet.server_pid)


def _requests(fleet: Fleet) -> tuple[Request, Request, Request]:
    headers = {"Authorization": f"Bearer {fleet.token}"}
    device_ids = [device_id for device_id, _ in fleet.devices]

    async def call(client: httpx.AsyncClient, index: int) -> bool:
        response = await client.post("/graphql", headers=headers, json={
            "query": CALL,
            "variables": {"input": {"deviceId": device_ids[index], "name": "setTemp",
                                    "argument": f"{20 + index % 10}.5"}},
        })
        return response.status_code == 200 and response.json()["data"]["callFunction"] == {
            "returnValue": 1, "userErrors": []}

    async def read(client: httpx.AsyncClient, index: int) -> bool:
        response = await client.post("/graphql", headers=headers, json={
            "query": READ, "variables": {"id": device_ids[index]}})
        variable = response.json()["data"]["device"]["variable"]
        return response.status_code == 200 and variable == {
            "value": 20.5 + index % 10, "userErrors": []}

    async def baseline(client: httpx.AsyncClient, index: int) -> bool:
        response = await client.get(BASELINE_PATH)
        return response.status_code == 200 and response.json() == {"ok": True}

    return call, read, baseline


async def _run(fleet: Fleet, seconds: float) -> CallFigure:
    call, read, baseline = _requests(fleet)
    calls_sent, reads_sent = _Counter(), _Counter()
    async with (
        Simulation(fleet) as simulation,
        open_clients(fleet.base_url, len(fleet.devices)) as clients,
    ):
        baseline_figure = await _measure(fleet, clients, baseline, seconds)
        calls = await _measure(fleet, clients, call, seconds, calls_sent)
        reads = await _measure(fleet, clients, read, seconds, reads_sent)
    report = simulation.report
    assert report is not None
    return CallFigure(
        database=fleet.database, callers=len(fleet.devices), calls=calls, reads=reads,
        baseline=baseline_figure, calls_answered=report.calls_answered,
        reads_answered=report.reads_answered,
        requests_made=(calls_sent.sent, reads_sent.sent),
    )


def _line(label: str, figure: RoundTrips, baseline: RoundTrips) -> str:
    ratio = figure.rate / baseline.rate if baseline.rate else float("nan")
    failed = f", {figure.failed} failed (first: {figure.first_failure})" if figure.failed else ""
    return (
        f"  {label:<26} {figure.rate:>7,.0f} /s  {figure.latency}  ratio {ratio:.2f};"
        f" CPU: server {figure.server_cpu:.0%}, client {figure.client_cpu:.0%}{failed}"
    )


def section(seconds: float) -> str:
    """The scenario's figures for `python -m bench` (empty if skipped)."""
    callers = count_setting("BENCH_CALLERS", DEFAULT_CALLERS, MAX_CALLERS)
    if not callers:
        return ""
    print(f"  {callers} concurrent callers of simulated devices", file=sys.stderr, flush=True)
    with served_fleet(callers) as f:
        figure = asyncio.run(_run(f, seconds))
    calls_made, reads_made = figure.requests_made
    return (
        f"Function calls and variable reads through GraphQL to simulated devices,"
        f" {figure.callers} concurrent callers, one device each ({figure.database})\n"
        + _line("callFunction(setTemp)", figure.calls, figure.baseline) + "\n"
        + _line("device.variable(temp.)", figure.reads, figure.baseline) + "\n"
        + _line(f"baseline GET {BASELINE_PATH}", figure.baseline, figure.baseline) + "\n"
        + f"  answered by the devices: {figure.calls_answered:,} of {calls_made:,} calls,"
        f" {figure.reads_answered:,} of {reads_made:,} reads (warm-ups included).\n"
        "  ratio = round trips/s over the baseline's requests/s; CPU = CPU time over wall time"
        " (client: the callers and the simulated devices, in one process)"
    )


def main() -> None:
    try:
        text = section(measured_seconds())
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(text or "BENCH_CALLERS=0: nothing measured.")


if __name__ == "__main__":
    main()
