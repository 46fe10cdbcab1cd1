"""The gateway's rules without a connection: product assignment and session-guarded presence."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import timedelta

import pytest

from api.gateway import BadFrame, parse_frame
from auth import tokens
from core import clock
from fleet import events, gateway
from fleet.gateway import Assignment, Hello
from models.devices import Device, Event, Quarantine
from models.organizations import Organization
from models.products import Product

P, Q, R = 10, 20, 30
NONE, QUARANTINED, DENIED = Quarantine.NONE, Quarantine.QUARANTINED, Quarantine.DENIED


@pytest.mark.parametrize(
    ("product_id", "quarantine", "forced", "reported", "exists", "expected"),
    [
        (P, NONE, False, P, True, Assignment(P, NONE)),
        (P, NONE, True, Q, True, Assignment(P, NONE)),
        (P, NONE, True, None, False, Assignment(P, NONE)),
        (P, NONE, False, Q, True, Assignment(Q, QUARANTINED)),
        (P, NONE, False, Q, False, Assignment(P, NONE)),
        (P, NONE, False, None, False, Assignment(P, NONE)),
        (None, NONE, False, Q, True, Assignment(Q, QUARANTINED)),
        (None, NONE, False, Q, False, Assignment(None, NONE)),
        (None, NONE, False, None, False, Assignment(None, NONE)),
        (Q, QUARANTINED, False, Q, True, Assignment(Q, QUARANTINED)),
        (Q, QUARANTINED, False, R, True, Assignment(R, QUARANTINED)),
        (Q, QUARANTINED, False, None, False, Assignment(Q, QUARANTINED)),
        (Q, DENIED, False, Q, True, None),
        (Q, DENIED, False, R, True, Assignment(R, QUARANTINED)),
        (Q, DENIED, False, None, False, Assignment(None, DENIED)),
    ],
)
def test_product_assignment_table(
    product_id: int | None, quarantine: Quarantine, forced: bool, reported: int | None,
    exists: bool, expected: Assignment | None,
) -> None:
    assert gateway.assign_product(
        product_id=product_id, quarantine=quarantine, import_forced=forced,
        reported=reported, reported_exists=exists,
    ) == expected


@pytest.mark.parametrize(
    ("product_id", "quarantine", "reported", "expected"),
    [
        (R, QUARANTINED, Q, None),  # denied by Q, quarantined in R since: Q still refuses it
        (None, NONE, Q, None),
        (Q, NONE, Q, Assignment(Q, NONE)),  # Q imported it again: its denial is lifted
        (R, QUARANTINED, R, Assignment(R, QUARANTINED)),
    ],
)
def test_a_product_that_denied_a_device_refuses_it_wherever_it_has_been(
    product_id: int | None, quarantine: Quarantine, reported: int,
    expected: Assignment | None,
) -> None:
    assert gateway.assign_product(
        product_id=product_id, quarantine=quarantine, import_forced=False,
        reported=reported, reported_exists=True, denied_by=[Q],
    ) == expected


async def test_a_device_moving_to_another_product_leaves_its_import_flags_behind() -> None:
    now = clock.now()
    organization = await Organization.create(name="Org", slug="org-flags", created_at=now)
    first, second = [
        await Product.create(organization=organization, name=name, slug=f"flags-{name}",
                             platform="Photon", customer_auth="SIMPLE", created_at=now)
        for name in ("first", "second")
    ]
    device_id = secrets.token_hex(12)
    await Device.create(id=device_id, secret_hash=tokens.digest("s"), platform="Photon",
                        provisioned_at=now, product=first, imported_at=now, development=True)
    welcome = await gateway.welcome(device_id, Hello(second.id, "1", "1.0.0", [], []))
    assert welcome.assignment == Assignment(second.id, QUARANTINED)
    device = await Device.get(id=device_id)
    assert (device.product_id, device.imported_at, device.import_forced, device.development) == (
        second.id, None, False, False
    )


async def test_an_older_session_cannot_mark_the_device_offline() -> None:
    device_id = secrets.token_hex(12)
    await Device.create(id=device_id, secret_hash=tokens.digest("s"), platform="Photon",
                        provisioned_at=clock.now())
    hello = Hello(None, "1", "1.0.0", [], [])
    older = await gateway.welcome(device_id, hello)
    newer = await gateway.welcome(device_id, hello)
    assert older.session_id != newer.session_id

    assert await gateway.disconnect(device_id, older.session_id, clock.now()) is False
    device = await Device.get(id=device_id)
    assert (device.online, device.session_id) == (True, newer.session_id)

    assert await gateway.disconnect(device_id, newer.session_id, clock.now()) is True
    device = await Device.get(id=device_id)
    assert (device.online, device.session_id) == (False, None)
    assert await Event.filter(device_id=device_id).order_by("id").values_list("data", flat=True) \
        == ["online", "online", "offline"]


async def held_status_events(
    monkeypatch: pytest.MonkeyPatch, data: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the recording of `spark/status` events with `data` until the test lets it go: the
    first event says it is held, the second lets it through."""
    record, held, release = events.record, asyncio.Event(), asyncio.Event()

    async def holding(batch: Sequence[events.NewEvent]) -> list[events.LiveEvent | None]:
        if batch and batch[0].name == gateway.STATUS_EVENT and batch[0].data == data:
            held.set()
            await release.wait()
        return await record(batch)

    monkeypatch.setattr(events, "record", holding)
    return held, release


async def status_log(device_id: str) -> list[str]:
    return list(await Event.filter(device_id=device_id, name=gateway.STATUS_EVENT)
                .order_by("id").values_list("data", flat=True))


async def test_a_sweep_racing_a_welcome_cannot_leave_the_log_offline(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper (one process) marks the device offline; before its `offline` event is written
    a welcome (another process) marks it online and writes `online`: the sweeper's late
    `offline` is dropped, so the log ends as the device is."""
    device_id = secrets.token_hex(12)
    await Device.create(id=device_id, secret_hash=tokens.digest("s"), platform="Photon",
                        provisioned_at=clock.now(), online=True, session_id="dead-process",
                        last_heard_at=clock.now() - timedelta(hours=1))
    held, release = await held_status_events(monkeypatch, gateway.OFFLINE)
    sweep = asyncio.create_task(gateway.mark_stale_devices_offline(30))
    await held.wait()  # the sweep committed; its event is not written yet
    welcome = await gateway.welcome(device_id, Hello(None, "1", "1.0.0", [], []))
    release.set()
    assert await sweep == 1
    device = await Device.get(id=device_id)
    assert (device.online, device.session_id) == (True, welcome.session_id)
    assert await status_log(device_id) == ["online"]


async def test_a_late_online_event_cannot_follow_the_sessions_end(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The welcome's `online` event is held until its session has ended: it is dropped."""
    device_id = secrets.token_hex(12)
    await Device.create(id=device_id, secret_hash=tokens.digest("s"), platform="Photon",
                        provisioned_at=clock.now())
    held, release = await held_status_events(monkeypatch, gateway.ONLINE)
    welcoming = asyncio.create_task(
        gateway.welcome(device_id, Hello(None, "1", "1.0.0", [], []))
    )
    await held.wait()
    session_id = (await Device.get(id=device_id)).session_id
    assert session_id is not None
    assert await gateway.disconnect(device_id, session_id, clock.now()) is True
    release.set()
    await welcoming
    assert not (await Device.get(id=device_id)).online
    assert await status_log(device_id) == ["offline"]


@pytest.mark.parametrize(
    ("text", "code", "reply_to"),
    [
        ('{"type": "ping", "id": true}', "bad_frame", None),
        ('{"type": "ping", "id": 0}', "bad_frame", None),
        ('{"type": "", "id": 3}', "bad_frame", 3),
        ('{"type": 5, "id": 3}', "bad_frame", 3),
        ("x" * 131073, "frame_too_large", None),
    ],
)
def test_malformed_frames(text: str, code: str, reply_to: int | None) -> None:
    with pytest.raises(BadFrame) as raised:
        parse_frame(text)
    assert (raised.value.code, raised.value.reply_to) == (code, reply_to)


def test_a_well_formed_frame() -> None:
    assert parse_frame('{"type": "ping", "id": 2147483647}') == (
        "ping", 2147483647, {"type": "ping", "id": 2147483647}
    )
