"""`GET /v1/orgs/{slug}/usage.csv`: the exact bytes of a period's download over a real HTTP
client, its headers, its refusals, and the keyset pages it is read in. Who may download it is
tests/test_usage_permissions.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from api.usage_csv import text_cell
from billing import usage
from billing.ledger import Ledger
from billing.periods import Period
from core.metering import Metered, OperationKind
from fleet import products
from models.devices import Device
from models.products import Product
from tests.support.accounts import Team, access_token
from tests.support.database import recorded_queries
from tests.support.servers import Clock
from tests.support.worlds import device_id, two_organizations

K = OperationKind
CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
D1, D2, D3, KD = (device_id(p) for p in ("d1", "d2", "d3", "k1"))
HEADER = b"date,product_id,product_slug,device_id,kind,data_operations\r\n"


def at(day: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


@dataclass
class World:
    acme: Team
    thermostat: Product
    sprinkler: Product


async def record(*usages: Metered) -> None:
    await Ledger(lambda _product: None).record(list(usages))


@pytest.fixture
async def world(frozen_clock: Clock) -> World:
    """Acme's thermostat (D1, D2) and sprinkler (D3), Globex's kettle (KD), with counters in
    February and March; the clock at NOW."""
    frozen_clock.current = CREATED
    base = await two_organizations()
    sprinkler = await products.create_product(
        base.acme.principals["OWNER"], base.acme.organization.id, name="Sprinkler",
        slug="sprinkler", description="", platform="Photon", customer_auth="SIMPLE")
    for device, product in ((D1, base.thermostat), (D2, base.thermostat), (D3, sprinkler),
                            (KD, base.kettle)):
        await Device.create(id=device, secret_hash="0" * 64, platform="Photon",
                            provisioned_at=CREATED, product=product)
    t, s = base.thermostat.id, sprinkler.id
    await record(
        Metered(K.FUNCTION_CALL, t, D2, at(1)),
        *[Metered(K.FUNCTION_CALL, t, D1, at(1))] * 3,
        Metered(K.DEVICE_PUBLISH, t, D1, at(1), name="temp", size=2000),
        Metered(K.DEVICE_PUBLISH, t, D1, at(1), name="particle/x", size=10),
        *[Metered(K.SUBSCRIPTION_DELIVERY, s, D3, at(2), name="water", size=1)] * 4,
        Metered(K.FUNCTION_CALL, base.kettle.id, KD, at(1)),
        Metered(K.VARIABLE_READ, t, D1, at(28, 2)),
    )
    frozen_clock.current = NOW
    return World(base.acme, base.thermostat, sprinkler)


async def download(http: httpx.AsyncClient, query: str = "", *, role: str = "OWNER",
                   slug: str = "acme") -> httpx.Response:
    token = await access_token(f"{role.lower()}@example.com")
    return await http.get(f"/v1/orgs/{slug}/usage.csv{query}",
                          headers={"Authorization": f"Bearer {token}"})


async def test_the_current_period_row_by_row(http, world: World):
    t, s = world.thermostat.id, world.sprinkler.id
    async with http.stream("GET", "/v1/orgs/acme/usage.csv", headers={
            "Authorization": f"Bearer {await access_token('administrator@example.com')}"},
    ) as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="acme-usage-2026-03.csv"')
    assert response.headers["cache-control"] == "no-store"
    assert body == HEADER + (
        f"2026-03-01,{t},thermostat,{D1},DEVICE_PUBLISH,2\r\n"
        f"2026-03-01,{t},thermostat,{D1},FUNCTION_CALL,3\r\n"
        f"2026-03-01,{t},thermostat,{D2},FUNCTION_CALL,1\r\n"
        f"2026-03-02,{s},sprinkler,{D3},SUBSCRIPTION_DELIVERY,4\r\n"
    ).encode()


async def test_pages_of_one_row_make_the_same_download(http, world: World,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(usage, "CSV_PAGE", 1)
    t, s = world.thermostat.id, world.sprinkler.id
    response = await download(http)
    assert response.content == HEADER + (
        f"2026-03-01,{t},thermostat,{D1},DEVICE_PUBLISH,2\r\n"
        f"2026-03-01,{t},thermostat,{D1},FUNCTION_CALL,3\r\n"
        f"2026-03-01,{t},thermostat,{D2},FUNCTION_CALL,1\r\n"
        f"2026-03-02,{s},sprinkler,{D3},SUBSCRIPTION_DELIVERY,4\r\n"
    ).encode()


async def test_a_past_period(http, world: World):
    response = await download(http, "?period=2026-02")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="acme-usage-2026-02.csv"')
    assert response.content == HEADER + (
        f"2026-02-28,{world.thermostat.id},thermostat,{D1},VARIABLE_READ,1\r\n").encode()


async def test_a_period_without_usage_is_only_the_header(http, world: World):
    response = await download(http, "?period=2026-01")
    assert (response.status_code, response.content) == (200, HEADER)


async def test_a_deleted_product_has_no_slug_left(http, world: World):
    await Device.filter(id=D3).delete()
    await Product.filter(id=world.sprinkler.id).delete()
    response = await download(http)
    assert response.content.endswith(
        f"2026-03-02,{world.sprinkler.id},,{D3},SUBSCRIPTION_DELIVERY,4\r\n".encode())


@pytest.mark.parametrize(("query", "message"), [
    ("?period=2026-04", "2026-04 has not begun: the current period is 2026-03."),
    ("?period=2025-12", "There is no usage for 2025-12: the earliest period is 2026-01 (there "
                        "was nothing to count before)."),
    ("?period=march", "A period is a month written YYYY-MM, such as 2026-12; got 'march'."),
])
async def test_a_bad_period_is_400_with_its_reason(http, world: World, query: str,
                                                   message: str):
    response = await download(http, query)
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message,
                                           "extensions": {"code": "INVALID"}}]}


async def test_refusals(http, world: World):
    missing = {"errors": [{"message": "No such organization.",
                           "extensions": {"code": "NOT_FOUND"}}]}
    for response in (await download(http, slug="nope"), await download(http, role="DEVELOPER"),
                     await download(http, "?period=march", role="VIEWER")):
        assert (response.status_code, response.json()) == (404, missing)
    anonymous = await http.get("/v1/orgs/acme/usage.csv")
    assert (anonymous.status_code, anonymous.headers["www-authenticate"]) == (401, "Bearer")
    assert anonymous.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    bad = await http.get("/v1/orgs/acme/usage.csv", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["extensions"] == {"code": "INVALID_TOKEN"}
    too_long = await download(http, slug="a" * 64)
    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["extensions"] == {"code": "INVALID_SLUG"}


async def test_rows_are_read_in_keyset_pages(world: World, monkeypatch: pytest.MonkeyPatch):
    """A day with more rows than a page, a device counted in two products on one day, and
    pages that end between a device's kinds: read two rows at a time, every row comes once, in
    order."""
    t, s = world.thermostat.id, world.sprinkler.id
    await record(*[Metered(kind, product, device, at(5))
                   for device in (D1, D2, D3) for product in (t, s)
                   for kind in (K.VARIABLE_READ, K.FUNCTION_CALL, K.LOCATION_POINT)])
    scope = usage.Scope(world.acme.organization.id, Period(2026, 3), NOW)
    with recorded_queries(monkeypatch) as seen:
        found = [(r.day.isoformat(), r.device_id, r.kind, r.product_id, r.operations)
                 async for r in usage.counter_rows(scope, page=2)]
    march_5 = [("2026-03-05", device, kind, product, 1) for device in (D1, D2, D3)
               for kind in ("FUNCTION_CALL", "LOCATION_POINT", "VARIABLE_READ")
               for product in sorted((t, s))]
    assert found == [
        ("2026-03-01", D1, "DEVICE_PUBLISH", t, 2), ("2026-03-01", D1, "FUNCTION_CALL", t, 3),
        ("2026-03-01", D2, "FUNCTION_CALL", t, 1),
        ("2026-03-02", D3, "SUBSCRIPTION_DELIVERY", s, 4),
        *march_5,
    ]
    # Per day of March so far, pages of two until one is short: 2 + 1 + 1 + 1 + 10 + 5.
    limited = [sql for sql in seen if "usage_counters" in sql]
    assert len(limited) == 20
    assert all("LIMIT" in sql.upper() for sql in limited)


@pytest.mark.parametrize(("text", "cell"), [
    ("thermostat", "thermostat"), ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+1", "'+1"),
    ("-1", "'-1"), ("@cmd", "'@cmd"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"),
    ("", ""),
])
def test_text_cells_never_start_a_formula(text: str, cell: str):
    assert text_cell(text) == cell
