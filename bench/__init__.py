"""Throughput benchmark: the OAuth token and introspection endpoints and an authenticated
GraphQL query, each beside a bare Starlette route served by the same process.

Run it with `make bench` (or `python -m bench`); see `bench.__main__` for the knobs.
"""


class BenchError(Exception):
    """The benchmark cannot run; the message says why."""
