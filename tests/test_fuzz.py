"""Fuzzing `/graphql`: queries and mutations schemathesis generates from `schema.graphql`, sent
with a team token and a customer token, get no 5xx and no masked internal error.

Bounded for CI: a fixed number of examples per token (under a minute on the whole). The
generator runs in a worker thread, so the live server keeps running on the event loop."""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.case import Case

from api.graphql.schema import SCHEMA_FILE
from tests.support.customers import customer_token, make_customer
from tests.support.servers import LiveServer
from tests.support.worlds import Fleet

EXAMPLES_PER_TOKEN = 250


def fuzz(url: str, token: str) -> int:
    """Send generated operations to `url` with `token`; fail on the first 5xx or masked error.
    Returns how many operations were answered."""
    answered = 0
    strategy = schemathesis.graphql.from_path(SCHEMA_FILE).as_strategy()
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:

        @settings(max_examples=EXAMPLES_PER_TOKEN, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def operation_is_answered(case: Case) -> None:
            nonlocal answered
            response = client.post("/graphql", json={"query": case.body})
            assert response.status_code < 500, (case.body, response.text)
            assert "Internal server error" not in response.text, (case.body, response.text)
            answered += 1

        operation_is_answered()
    return answered


async def test_generated_operations_get_no_server_error(live_server: LiveServer, fleet: Fleet):
    team = await fleet.token("OWNER")
    customer = await customer_token(await make_customer(fleet.product, "kim@customer.example"))
    for token in (team, customer):
        assert await asyncio.to_thread(fuzz, live_server.url, token) >= EXAMPLES_PER_TOKEN // 2
