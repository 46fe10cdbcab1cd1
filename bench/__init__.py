"""Throughput benchmark: the OAuth token and introspection endpoints and an authenticated
GraphQL query, each beside a bare Starlette route served by the same process.

Run it with `make bench` (or `python -m bench`); see `bench.__main__` for the knobs.
"""

import os

DEFAULT_SECONDS = 5.0


class BenchError(Exception):
    """The benchmark cannot run; the message says why."""


def measured_seconds() -> float:
    """The measured time per scenario: BENCH_SECONDS, default 5."""
    raw = os.environ.get("BENCH_SECONDS", "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise BenchError(f"BENCH_SECONDS must be a number of seconds (0 to 3600), not {raw!r}.")
    return seconds
