"""The ledger: priced, summed per counter row and added by upsert, in the caller's transaction."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, date, datetime
from typing import Any

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from billing.ledger import Ledger
from core.metering import Metered, OperationKind
from models.organizations import Organization
from models.products import Product
from models.usage import UsageCounter
from tests.support.polling import WITHIN, eventually

K = OperationKind
T = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
NEXT_DAY = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


async def product() -> Product:
    organization = await Organization.create(name="Acme", slug=secrets.token_hex(6),
                                             created_at=T)
    return await Product.create(organization=organization, name="Thermostat",
                                slug=secrets.token_hex(6), created_at=T,
                                platform="Photon", customer_auth="SIMPLE")


def never_paused(_product_id: int | None) -> None:
    return None


async def counters(organization_id: int) -> list[tuple[str, date, str, str, int]]:
    return list(await UsageCounter.filter(organization_id=organization_id).order_by(
        "day", "device_id", "kind").values_list("period", "day", "device_id", "kind",
                                                "operations"))


async def test_usages_are_priced_summed_and_added_to_their_rows() -> None:
    made = await product()
    ledger = Ledger(never_paused)
    p = made.id
    await ledger.record([
        Metered(K.DEVICE_PUBLISH, p, "a", T, name="temp", size=1025),
        Metered(K.DEVICE_PUBLISH, p, "a", T, name="temp", size=1),
        Metered(K.DEVICE_PUBLISH, p, "a", T, name="spark/status", size=10),
        Metered(K.LOCATION_POINT, p, "b", NEXT_DAY),
    ])
    await ledger.record([Metered(K.DEVICE_PUBLISH, p, "a", T, name="temp", size=16384)])
    assert await counters(made.organization_id) == [
        ("2026-03", date(2026, 3, 31), "a", "DEVICE_PUBLISH", 19),
        ("2026-04", date(2026, 4, 1), "b", "LOCATION_POINT", 1),
    ]


async def test_what_is_recorded_in_a_transaction_rolls_back_with_it() -> None:
    made = await product()
    ledger = Ledger(never_paused)
    try:
        async with in_transaction() as connection:
            await ledger.record([Metered(K.FUNCTION_CALL, made.id, "a", T)], connection)
            raise RuntimeError("the write that made it real failed")
    except RuntimeError:
        pass
    assert await counters(made.organization_id) == []


async def test_a_deleted_product_is_not_counted() -> None:
    made = await product()
    ledger = Ledger(never_paused)
    await made.delete()
    await ledger.record([Metered(K.FUNCTION_CALL, made.id, "a", T)])
    assert await UsageCounter.filter(product_id=made.id).count() == 0


# --- Without a transaction: one queue, one writer ------------------------------------------


async def test_concurrent_callers_are_committed_together_once_each_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = await product()
    ledger = Ledger(never_paused)
    batches: list[int] = []
    add = ledger._add

    async def counting_add(priced: list[tuple[Metered, int]], connection: Any) -> None:
        batches.append(len(priced))
        await add(priced, connection)

    monkeypatch.setattr(ledger, "_add", counting_add)
    await asyncio.gather(*(
        ledger.record([Metered(K.SUBSCRIPTION_DELIVERY, made.id, f"d{n % 3}", T,
                               name="door/open", size=1300)])
        for n in range(30)
    ))
    # Every caller returned after the commit of the one batch they all joined.
    assert batches == [30]
    assert await counters(made.organization_id) == [
        ("2026-03", date(2026, 3, 31), f"d{n}", "SUBSCRIPTION_DELIVERY", 20) for n in range(3)]
    await ledger.record([Metered(K.FUNCTION_CALL, made.id, "d0", T)])
    assert batches == [30, 1]
    await ledger.close()


async def test_free_usages_never_wait_for_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    made = await product()
    ledger = Ledger(never_paused)

    async def unreachable(*_: Any) -> None:
        raise AssertionError("nothing to write")

    monkeypatch.setattr(ledger, "_add", unreachable)
    await ledger.record([Metered(K.SUBSCRIPTION_DELIVERY, made.id, "d", T, name="spark/status")])
    await ledger.close()


async def test_a_failed_batch_fails_only_the_callers_it_cannot_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = await product()
    ledger = Ledger(never_paused)
    add = ledger._add

    async def refusing_add(priced: list[tuple[Metered, int]], connection: Any) -> None:
        if any(usage.device_id == "bad" for usage, _ in priced):
            raise RuntimeError("refused")
        await add(priced, connection)

    monkeypatch.setattr(ledger, "_add", refusing_add)
    outcomes = await asyncio.gather(
        *(ledger.record([Metered(K.FUNCTION_CALL, made.id, device, T)])
          for device in ("a", "bad", "b", "c")),
        return_exceptions=True,
    )
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "NoneType", "RuntimeError", "NoneType", "NoneType"]
    assert [row[2] for row in await counters(made.organization_id)] == ["a", "b", "c"]
    await ledger.close()


async def test_close_writes_what_is_queued_even_for_callers_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = await product()
    ledger = Ledger(never_paused)
    writing, release = asyncio.Event(), asyncio.Event()
    add = ledger._add

    async def held_add(priced: list[tuple[Metered, int]], connection: Any) -> None:
        writing.set()
        await release.wait()
        await add(priced, connection)

    monkeypatch.setattr(ledger, "_add", held_add)
    # The writer is busy with a first caller's batch, so the next caller's usages stay queued.
    first = asyncio.create_task(ledger.record([Metered(K.FUNCTION_CALL, made.id, "a", T)]))
    async with asyncio.timeout(WITHIN):
        await writing.wait()
    caller = asyncio.create_task(ledger.record([Metered(K.VARIABLE_READ, made.id, "a", T)]))

    async def queued() -> bool:
        return ledger._batches.queued > 0

    await eventually(queued)
    caller.cancel()
    release.set()
    await ledger.close()
    await first
    await asyncio.wait([caller])
    assert caller.cancelled()
    assert await counters(made.organization_id) == [
        ("2026-03", date(2026, 3, 31), "a", "FUNCTION_CALL", 1),
        ("2026-03", date(2026, 3, 31), "a", "VARIABLE_READ", 1)]


async def test_counter_pages_leave_room_for_updates_on_postgresql() -> None:
    """Each batch adds to the same rows: on PostgreSQL half of each page is left free, so an
    update stays on its page and writes no index entry (migration 0012)."""
    client = connections.get("default")
    if client.capabilities.dialect != "postgres":
        assert client.capabilities.dialect == "sqlite"  # SQLite has no such storage option
        return
    rows = await client.execute_query_dict(
        "SELECT reloptions FROM pg_class WHERE relname = 'usage_counters'")
    assert rows == [{"reloptions": ["fillfactor=50"]}]
