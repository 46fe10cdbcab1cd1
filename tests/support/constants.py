"""Constants of the test run: which database and broker, the built-in client, one password."""

from __future__ import annotations

import os
from datetime import UTC, datetime

# `TEST_DATABASE=sqlite` (default) or `postgres` (a server at TEST_POSTGRES_URL).
TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# pytest-xdist names each worker process ("gw0", "gw1", …); "main" without xdist.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

FIRST_PARTY_CLIENT_ID = "devicecloud"
PASSWORD = "correct horse battery"
# The moment the worlds of the fleet and event tests are set at.
T = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
