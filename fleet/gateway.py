"""The device gateway's rules: who a connecting device is, which product it belongs to, its
presence (online, last heard, first online), the `spark/status` events and the errors it
reports. The WebSocket transport (api/gateway.py) parses frames and calls these functions.

Presence is keyed by a session ID per connection: a connection only ever changes the device's
presence while the device's `session_id` is still its own, so when the same device connects
again (in this process or another) the older connection can no longer mark it offline. The
session ID names the process holding the connection (fleet/rpc.py), so the process of a newer
connection can tell the older one's process to close it.

Every event is written by the event log (fleet/events.py), after the presence change it
reports has committed.

Presence also keeps the UTC days each device was online (`DeviceOnlineDay`, what billable
devices are computed from): the day it connects, in the welcome's transaction, and every later
day of the same connection, written by the heard flush (`record_heard`) and on close
(`disconnect`). A connection open across midnight, or for months, has a row for each day.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Case, F, Q, When
from tortoise.transactions import in_transaction

from auth import tokens
from core import clock, periodic
from core.device_ids import normalize_device_id
from core.errors import PermissionDenied
from core.settings import Settings
from fleet import claim_codes, events
from fleet.errors import FleetCode
from fleet.rpc import new_session_id
from models.customers import Customer
from models.devices import Device, DeviceError, Quarantine
from models.products import Product

log = logging.getLogger("devicecloud.gateway")

STATUS_EVENT = "spark/status"
ONLINE = "online"
OFFLINE = "offline"

# `last_heard_at` is written at most this often per connection (the latest time is kept in
# memory in between and written on close): a write per frame would make every ping a write.
HEARD_FLUSH_INTERVAL = timedelta(seconds=5)
# A connection writes its refused publishes to `rate_limited_events` at once, at most once
# this often; the refusals in between are written by the gateway's flusher within this time.
RATE_LIMITED_FLUSH_INTERVAL = timedelta(seconds=1)
# How much older than twice keepAlive a stored `last_heard_at` must be before the sweeper calls
# the device dead: the flush interval above, plus a margin for a busy process.
STALE_SLACK = HEARD_FLUSH_INTERVAL + timedelta(seconds=5)
SWEEP_BATCH = 1000
_ONLINE_DAY_ROWS = 10000  # 2 values a row, within SQLite's 32766 bound values a statement

# For each connection of this process (by session ID): its device and the last UTC day written
# to `device_online_days` for it, so a connection writes each day once rather than once a
# flush. Set by `welcome`, moved on by `record_heard`, dropped by `disconnect`.
_online_through: dict[str, tuple[str, date]] = {}


class DeviceDenied(PermissionDenied):
    """The device reports the product that denied it: it is refused at connect."""

    code = FleetCode.DEVICE_DENIED


@dataclass(frozen=True)
class Hello:
    """What a device says about the firmware it runs (validated by the transport)."""

    product_id: int | None
    firmware_version: str
    system_firmware_version: str
    functions: Sequence[str]
    variables: Sequence[str]
    claim_code: str | None = None


@dataclass(frozen=True)
class Assignment:
    """The product the cloud treats the device as part of (None: none), and its quarantine
    state there."""

    product_id: int | None
    quarantine: Quarantine

    @property
    def quarantined(self) -> bool:
        return self.quarantine is Quarantine.QUARANTINED


@dataclass(frozen=True)
class Welcome:
    session_id: str
    assignment: Assignment
    replaced_session_id: str | None  # the device's previous connection, if still open
    event_product_id: int | None  # where the device's events go
    event_data_limit: int
    claimed: bool = False  # the hello's claim code made the device its customer's


def assign_product(
    *,
    product_id: int | None,
    quarantine: Quarantine,
    import_forced: bool,
    reported: int | None,
    reported_exists: bool,
    denied_by: Collection[int] = (),
) -> Assignment | None:
    """The product-assignment table of docs/device-protocol.md, for a device currently in
    `product_id` (with `quarantine`) that reports product `reported`. None: refused (denied).
    Rows the table leaves open: a quarantined device that reports no existing product stays in
    its quarantine; a denied device that reports no existing product is in no product (and
    stays denied)."""
    other = reported_exists and reported is not None and reported != product_id
    if reported in denied_by and not (reported == product_id and quarantine is Quarantine.NONE):
        return None  # a product that denied the device refuses it until it imports it again
    if quarantine is Quarantine.DENIED:
        if reported == product_id:
            return None
        if other:
            return Assignment(reported, Quarantine.QUARANTINED)
        return Assignment(None, Quarantine.DENIED)
    if product_id is None:
        if other:
            return Assignment(reported, Quarantine.QUARANTINED)
        return Assignment(None, Quarantine.NONE)
    if quarantine is Quarantine.QUARANTINED:
        return Assignment(reported if other else product_id, Quarantine.QUARANTINED)
    if other and not import_forced:
        return Assignment(reported, Quarantine.QUARANTINED)
    return Assignment(product_id, Quarantine.NONE)


def _event_product(product_id: int | None, quarantine: str) -> int | None:
    """The product a device's events and errors belong to: none once its product denied it."""
    return None if quarantine == Quarantine.DENIED else product_id


async def authenticate(device_id: str, secret: str) -> Device | None:
    """The device with this ID and secret, or None."""
    canonical = normalize_device_id(device_id)
    device = await Device.get_or_none(id=canonical) if canonical else None
    if device is None or not tokens.secret_matches(device.secret_hash, secret):
        return None
    return device


async def welcome(
    device_id: str, hello: Hello, on_session: Callable[[str], None] | None = None
) -> Welcome:
    """Apply a hello: assign the product, record the firmware, claim the device with the
    hello's claim code (`fleet.claim_codes.redeem`), and mark the device online under a new
    session ID (recording a `spark/status` online event; its customer is active now). Raises
    `DeviceDenied`. `on_session` gets the session ID as soon as it is committed, before
    anything else is awaited: the device is online for callers from then on, so the transport
    must know its connection by then."""
    now = clock.now()
    session_id = new_session_id()
    reported_exists = hello.product_id is not None and await Product.exists(id=hello.product_id)
    today = now.astimezone(UTC).date()
    async with in_transaction() as connection:
        device = await Device.filter(id=device_id).select_for_update().get()
        assignment = assign_product(
            product_id=device.product_id,
            quarantine=Quarantine(device.quarantine),
            import_forced=device.import_forced,
            reported=hello.product_id,
            reported_exists=reported_exists,
            denied_by=device.denied_by,
        )
        if assignment is None:
            raise DeviceDenied("The device's product denied it.")
        stored_product = (
            device.product_id if assignment.product_id is None else (assignment.product_id)
        )
        if stored_product != device.product_id:
            # What the previous product's import said (force, development), and its customer,
            # are not the new product's to inherit.
            await Device.filter(id=device_id).update(
                imported_at=None, import_forced=False, development=False, customer_id=None,
                claimed_at=None,
            )
            device.customer_id = None
        await Device.filter(id=device_id).update(
            product_id=stored_product,
            quarantine=assignment.quarantine,
            firmware_version=hello.firmware_version,
            system_firmware_version=hello.system_firmware_version,
            functions=list(hello.functions),
            variables=list(hello.variables),
            online=True,
            session_id=session_id,
            last_heard_at=now,
        )
        await Device.filter(id=device_id, first_online_at=None).update(first_online_at=now)
        await _write_online_days([(device_id, today)], connection)
        claimer = None
        if hello.claim_code is not None:
            claimer = await claim_codes.redeem(
                hello.claim_code, device, product_id=stored_product,
                quarantine=assignment.quarantine, now=now,
            )
    _online_through[session_id] = (device_id, today)
    if on_session is not None:
        on_session(session_id)
    customer_id = claimer or device.customer_id
    if customer_id is not None:
        # A customer is active when their device is: once per connection is enough. After
        # the commit: a customer's deletion locks the customer, then their devices.
        await Customer.filter(id=customer_id).update(last_active_at=now)
    event_product = _event_product(stored_product, assignment.quarantine)
    await _status_events([(device_id, event_product)], ONLINE, now, session_id)
    return Welcome(
        session_id,
        assignment,
        replaced_session_id=device.session_id if device.online else None,
        event_product_id=event_product,
        event_data_limit=await _data_limit(event_product),
        claimed=claimer is not None,
    )


async def _data_limit(product_id: int | None) -> int:
    if product_id is None:
        return events.DEFAULT_DATA_LIMIT
    # Tortoise types the rows of `values_list(flat=True)` as tuples; they are the values.
    limits: list[int] = await Product.filter(  # type: ignore[assignment]
        id=product_id
    ).values_list("event_data_limit", flat=True)
    return limits[0] if limits else events.DEFAULT_DATA_LIMIT


async def event_target(device_id: str) -> tuple[int | None, int]:
    """Where the device's events go now (its product, none once denied) and the data limit
    there: re-read now and then by the connection, as the team may move the device."""
    rows = await Device.filter(id=device_id).values_list("product_id", "quarantine")
    if not rows:
        return None, events.DEFAULT_DATA_LIMIT
    product_id = _event_product(*rows[0])
    return product_id, await _data_limit(product_id)


async def record_rate_limited(counts: Counter[str]) -> None:
    """Add refused publishes to the devices' counters: one UPDATE per distinct count, never a
    read-modify-write per device."""
    by_count: dict[int, list[str]] = {}
    for device_id, count in counts.items():
        by_count.setdefault(count, []).append(device_id)
    for count, device_ids in by_count.items():
        for start in range(0, len(device_ids), 1000):
            await Device.filter(id__in=device_ids[start : start + 1000]).update(
                rate_limited_events=F("rate_limited_events") + count
            )


def _later_heard(heard_at: datetime, where: Q | None = None) -> When:
    """`last_heard_at` becomes `heard_at` (for rows matching `where`) only if that is later:
    the stored time never moves back."""
    condition = Q(last_heard_at__lt=heard_at) | Q(last_heard_at__isnull=True)
    value = Device._meta.fields_map["last_heard_at"].to_db_value(heard_at, Device)
    return When(condition if where is None else where & condition, then=value)


async def record_heard(heard: Mapping[str, datetime]) -> None:
    """Store when the devices of these sessions were last heard (the time of their last
    frame, never moving back): one UPDATE per 500 sessions, so presence costs a few writes per
    flush interval whatever the number of connections. Keyed by session, so a replaced or
    swept connection writes nothing. Then the online days of this process's connections heard
    on a day not written yet (`_online_days_heard`)."""
    items = list(heard.items())
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        await Device.filter(session_id__in=[session_id for session_id, _ in chunk]).update(
            last_heard_at=Case(
                *(_later_heard(at, Q(session_id=session_id)) for session_id, at in chunk),
                default=F("last_heard_at"),
            )
        )
    await _online_days_heard(heard)


def _days_after(written: date, through: date) -> list[date]:
    """The days after `written`, up to and including `through`."""
    return [written + timedelta(days=n) for n in range(1, (through - written).days + 1)]


async def _online_days_heard(heard: Mapping[str, datetime]) -> None:
    """The connections of this process heard on a UTC day after the last one written for them
    were online on every day since (the same connection stayed open): write those days, in
    one statement per batch. Nothing is written for a connection heard again the same day."""
    rows: list[tuple[str, date]] = []
    moved: dict[str, tuple[str, date]] = {}
    for session_id, heard_at in heard.items():
        known = _online_through.get(session_id)
        if known is None:  # closed meanwhile: `disconnect` wrote its days
            continue
        device_id, written = known
        day = heard_at.astimezone(UTC).date()
        if day > written:
            rows += [(device_id, d) for d in _days_after(written, day)]
            moved[session_id] = (device_id, day)
    if not rows:
        return
    await _write_online_days(rows)
    for session_id, through in moved.items():
        if session_id in _online_through:  # not closed while writing
            _online_through[session_id] = through


async def _write_online_days(rows: Sequence[tuple[str, date]],
                             connection: BaseDBAsyncClient | None = None) -> None:
    """Store that these devices were online on these days: `INSERT … ON CONFLICT DO NOTHING`,
    one statement per batch, in key order (two writers of the same rows wait for each other
    rather than deadlock), for the devices that still exist."""
    ordered = sorted(set(rows))
    db = connection or connections.get("default")
    if connections.get("default").capabilities.dialect == "postgres":
        for start in range(0, len(ordered), _ONLINE_DAY_ROWS):
            chunk = ordered[start:start + _ONLINE_DAY_ROWS]
            await db.execute_query(
                "INSERT INTO device_online_days (device_id, day) SELECT d.id, x.day"
                " FROM unnest($1::varchar[], $2::date[]) AS x(device_id, day)"
                " JOIN devices d ON d.id = x.device_id"
                " ON CONFLICT (device_id, day) DO NOTHING",
                [[device_id for device_id, _ in chunk], [day for _, day in chunk]],
            )
        return
    for start in range(0, len(ordered), _ONLINE_DAY_ROWS):
        chunk = ordered[start:start + _ONLINE_DAY_ROWS]
        values: list[object] = []
        for device_id, day in chunk:
            values += [device_id, day.isoformat()]
        placeholders = ", ".join(["(?, ?)"] * len(chunk))
        # `WHERE true`: SQLite reads an `ON` after a join's table as the join's condition.
        await db.execute_query(
            "INSERT INTO device_online_days (device_id, day) SELECT x.column1, x.column2"  # noqa: S608
            f" FROM (VALUES {placeholders}) AS x JOIN devices ON devices.id = x.column1"
            " WHERE true ON CONFLICT (device_id, day) DO NOTHING",
            values,
        )


async def disconnect(device_id: str, session_id: str, heard_at: datetime) -> bool:
    """The connection of `session_id` closed: write the days it was online not written yet
    (through the day it was last heard), and mark the device offline (with a `spark/status`
    offline event) unless a newer connection has taken over. True if it went offline."""
    known = _online_through.pop(session_id, None)
    if known is not None:
        await _write_online_days(
            [(known[0], d) for d in _days_after(known[1], heard_at.astimezone(UTC).date())])
    async with in_transaction():
        device = await Device.get_or_none(id=device_id, session_id=session_id).only(
            "id", "product_id", "quarantine"
        )
        if device is None:
            return False
        updated = await Device.filter(id=device_id, session_id=session_id).update(
            online=False,
            session_id=None,
            last_heard_at=Case(_later_heard(heard_at), default=F("last_heard_at")),
        )
        if not updated:
            return False
    await _status_events(
        [(device_id, _event_product(device.product_id, device.quarantine))], OFFLINE, clock.now(),
        None,
    )
    return True


async def record_error(
    device_id: str, code: str, message: str, reset_reason: str | None
) -> DeviceError:
    """Store an error the device reported, for the device and its product."""
    device = await Device.get(id=device_id).only("id", "product_id", "quarantine")
    return await DeviceError.create(
        device_id=device_id,
        product_id=_event_product(device.product_id, device.quarantine),
        code=code,
        message=message,
        reset_reason=reset_reason or "",
        occurred_at=clock.now(),
    )


def stale_before(keepalive: int) -> datetime:
    """Devices marked online but not heard since this time have lost their connection."""
    return clock.now() - 2 * timedelta(seconds=keepalive) - STALE_SLACK


async def mark_stale_devices_offline(keepalive: int) -> int:
    """Mark offline, with a `spark/status` offline event each, the devices still marked online
    whose connection died with its process (nothing heard for twice keepAlive plus the flush
    slack). Set-based: a few statements per batch of devices. Returns how many."""
    cutoff = stale_before(keepalive)
    total = 0
    while True:
        async with in_transaction():
            stale = await (
                Device.filter(online=True, last_heard_at__lt=cutoff)
                .select_for_update()
                .limit(SWEEP_BATCH)
                .values_list("id", "product_id", "quarantine")
            )
            if not stale:
                return total
            ids = [row[0] for row in stale]
            # Conditional again: a device welcomed since the SELECT keeps its new session.
            await Device.filter(id__in=ids, online=True, last_heard_at__lt=cutoff).update(
                online=False, session_id=None
            )
        await _status_events(
            [
                (device_id, _event_product(product_id, quarantine))
                for device_id, product_id, quarantine in stale
            ],
            OFFLINE,
            clock.now(),
            None,
        )
        total += len(stale)
        if len(stale) < SWEEP_BATCH:
            return total


def presence_sweeper(settings: Settings) -> contextlib.AbstractAsyncContextManager[None]:
    """Run the stale-presence sweeper while the block runs (the app's lifespan): at start (a
    restart after a crash cleans up at once) and then every keepAlive seconds."""

    async def sweep_and_log() -> None:
        swept = await mark_stale_devices_offline(settings.device_keepalive)
        if swept:
            log.info("stale devices marked offline", extra={"devices": swept})

    return periodic.every(settings.device_keepalive, sweep_and_log, name="presence-sweeper",
                          failure="presence sweep failed", log=log)


async def _status_events(
    devices: Sequence[tuple[str, int | None]], data: str, at: datetime, session_id: str | None
) -> None:
    """Record `spark/status` events (the cloud's own: never data operations) for (device,
    product) pairs, through the event log, so they are batched and streamed live. The presence
    change they report is already committed: if they cannot be stored, they are logged and
    the change stands. Each is stored only if the device's session is still `session_id`
    (None: offline) when the log writes it (`events.Presence`): a process that swept the
    device while another welcomed it cannot leave the log ending in `offline`."""
    try:
        await events.record(
            [
                events.NewEvent(
                    product_id=product_id,
                    device_id=device_id,
                    name=STATUS_EVENT,
                    data=data,
                    published_at=at,
                    private=False,
                    presence=events.Presence(session_id),
                    device_publish=False,
                )
                for device_id, product_id in devices
            ]
        )
    except events.EventsUnavailable:
        log.exception("recording spark/status events failed", extra={"events": len(devices)})
