"""Publish→SSE delivery latency: BENCH_SSE_SUBSCRIBERS (default 100; 0 skips) clients stream a
product's events over SSE (`GET /v1/products/{id}/events`, Particle's format) while one device
publishes an event every 1/PUBLISH_RATE seconds over the gateway. Each latency is from just
before the device sends `publish` to the moment a subscriber has read the event; p50 and p99 of
all (event, subscriber) pairs, beside the device's publish→ack time (the event is stored).

The server runs with a publish limit above the device's pace. The subscribers read raw chunks
and split them on blank lines, so that the client's own parsing adds little.

`python -m bench.live_events` runs this scenario alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench import BenchError, measured_seconds
from bench.fleet import Fleet, Percentiles, count_setting, served_fleet
from bench.ingestion import SERVER_SETTINGS

DEFAULT_SUBSCRIBERS = 100
MAX_SUBSCRIBERS = 2000
PUBLISH_RATE = 20.0  # events a second
WARMUP_EVENTS = 10
EVENT_NAME = "bench/latency"
READY_SECONDS = 60.0
DRAIN_SECONDS = 10.0  # for the last event to reach every subscriber


@dataclass(frozen=True)
class LatencyFigure:
    database: str
    subscribers: int
    events: int  # measured, after the warm-up
    delivery: Percentiles
    ack: Percentiles
    delivered: int  # (event, subscriber) pairs received, warm-up included
    expected: int
    missed_notices: int


class _Subscriber:
    """One SSE client: the latency of each event it reads."""

    def __init__(self, sent_at: dict[int, float], events: int) -> None:
        self.sent_at = sent_at
        self.events = events
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()  # every event read
        self.latencies: dict[int, float] = {}
        self.missed = 0

    async def run(self, client: httpx.AsyncClient, path: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        async with client.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                raise BenchError(f"GET {path}: {response.status_code} {response.text[:200]}")
            buffer = b""
            async for chunk in response.aiter_bytes():
                now = time.perf_counter()
                buffer += chunk
                *messages, buffer = buffer.split(b"\n\n")
                for message in messages:
                    self._read(message, now)

    def _read(self, message: bytes, now: float) -> None:
        if message.startswith(b":ok"):
            self.ready.set()
            return
        name = data = None
        for line in message.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if name == EVENT_NAME and data is not None:
            sequence = int(json.loads(data)["data"])
            self.latencies[sequence] = now - self.sent_at[sequence]
            if len(self.latencies) == self.events:
                self.complete.set()
        elif name is not None and name.startswith("spark/stream/missed"):
            self.missed += 1


async def _device(fleet: Fleet) -> ClientConnection:
    """The fleet's first device, connected and welcomed (the protocol without the simulator,
    to time each publish exactly)."""
    device_id, secret = fleet.devices[0]
    ws = await connect(fleet.device_url, ping_interval=None, compression=None, proxy=None)
    for frame, expected in (
        ({"type": "auth", "id": 1, "deviceId": device_id, "secret": secret}, "ok"),
        ({"type": "hello", "id": 2, "productId": fleet.product_id, "firmwareVersion": "1",
          "systemFirmwareVersion": "5.6.0", "functions": [], "variables": []}, "welcome"),
    ):
        await ws.send(json.dumps(frame))
        reply = json.loads(await ws.recv())
        if reply.get("type") != expected:
            await ws.close()
            raise BenchError(f"the device was not welcomed: {reply}")
    return ws


async def _publish(ws: ClientConnection, count: int, sent_at: dict[int, float]) -> list[float]:
    """Publish `count` events at PUBLISH_RATE; the publish→ack time of each."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    acks = []
    for sequence in range(count):
        await asyncio.sleep(max(0.0, started + sequence / PUBLISH_RATE - loop.time()))
        frame = {"type": "publish", "id": 10 + sequence, "messageId": f"latency-{sequence}",
                 "name": EVENT_NAME, "data": str(sequence)}
        text = json.dumps(frame)
        sent_at[sequence] = time.perf_counter()
        await ws.send(text)
        reply = json.loads(await ws.recv())
        acks.append(time.perf_counter() - sent_at[sequence])
        if reply != {"type": "ack", "replyTo": 10 + sequence}:
            raise BenchError(f"the publish was not acknowledged: {reply}")
    return acks


async def _run(fleet: Fleet, subscribers: int, seconds: float) -> LatencyFigure:
    events = WARMUP_EVENTS + max(2, round(seconds * PUBLISH_RATE))
    sent_at: dict[int, float] = {}
    readers = [_Subscriber(sent_at, events) for _ in range(subscribers)]
    path = f"/v1/products/{fleet.product_id}/events/{EVENT_NAME}"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=fleet.base_url, trust_env=False, limits=limits,
                                 timeout=httpx.Timeout(30.0, read=None)) as client:
        tasks = [asyncio.create_task(reader.run(client, path, fleet.token))
                 for reader in readers]
        try:
            ready = asyncio.gather(*(reader.ready.wait() for reader in readers))
            done, _ = await asyncio.wait({ready, *tasks}, timeout=READY_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                for task in done:
                    task.result()  # raises what ended the subscriber
                raise BenchError(f"the subscribers were not all streaming within"
                                 f" {READY_SECONDS:.0f} s.")
            ws = await _device(fleet)
            try:
                acks = await _publish(ws, events, sent_at)
            finally:
                await ws.close()
            complete = asyncio.gather(*(reader.complete.wait() for reader in readers))
            # On time-out, the section reports fewer pairs delivered than expected.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete, DRAIN_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    measured = [latency for reader in readers
                for sequence, latency in reader.latencies.items() if sequence >= WARMUP_EVENTS]
    return LatencyFigure(
        database=fleet.database,
        subscribers=subscribers,
        events=events - WARMUP_EVENTS,
        delivery=Percentiles.of(measured),
        ack=Percentiles.of(acks[WARMUP_EVENTS:]),
        delivered=sum(len(reader.latencies) for reader in readers),
        expected=events * subscribers,
        missed_notices=sum(reader.missed for reader in readers),
    )


def section(seconds: float) -> str:
    """The scenario's figures for `python -m bench` (empty if skipped)."""
    subscribers = count_setting("BENCH_SSE_SUBSCRIBERS", DEFAULT_SUBSCRIBERS, MAX_SUBSCRIBERS)
    if not subscribers:
        return ""
    print(f"  {subscribers} SSE subscribers, one publishing device", file=sys.stderr,
          flush=True)
    with served_fleet(1, settings=SERVER_SETTINGS) as fleet:
        f = asyncio.run(_run(fleet, subscribers, seconds))
    return (
        f"Publish→SSE delivery, {f.subscribers} subscribers on one product, {f.events} events"
        f" at {PUBLISH_RATE:g}/s from one device ({f.database})\n"
        f"  publish → event read by a subscriber: {f.delivery}"
        f"  ({f.delivery.samples:,} samples)\n"
        f"  publish → ack (stored), for reference: {f.ack}\n"
        f"  delivered {f.delivered:,} of {f.expected:,} (event, subscriber) pairs;"
        f" missed-events notices: {f.missed_notices}"
    )


def main() -> None:
    try:
        text = section(measured_seconds())
    except BenchError as error:
        sys.exit(f"bench: {error}")
    print(text or "BENCH_SSE_SUBSCRIBERS=0: nothing measured.")


if __name__ == "__main__":
    main()
