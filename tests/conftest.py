"""Test harness: a migrated database per test process (SQLite or PostgreSQL), a movable clock,
and the real app served by uvicorn on a free loopback port, on the test event loop. The fixtures
live in `tests.support.fixtures` (localstripe's in
`tests.support.localstripe`); what tests share, in `tests.support`.

`TEST_DATABASE=sqlite` (default) or `TEST_DATABASE=postgres` (server at `TEST_POSTGRES_URL`)
selects the database; `make test` runs the suite once with each, in parallel (pytest-xdist).
"""

pytest_plugins = ["tests.support.fixtures", "tests.support.localstripe"]
