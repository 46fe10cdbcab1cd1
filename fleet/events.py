"""Events: the publishing rules, the durable batched event log, history, live channels and
retention.

Every event (published by a device, by a product's server, or by the cloud itself) is
written by this process's `EventLog`: callers wait until their event is committed, and
concurrent publishes are written together, a batch per statement. The stored events are the
record of a device's publishes: billing counts them from this table after they commit
(`billing.publishes`), so a publish is counted if and only if it is stored, and the writer's
transaction writes the events alone. Once committed, each new event goes to the broker's live
channels of its product and its device, in ID order (see `EventLog._store`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import RawSQL
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal, CustomerPrincipal
from core import clock, periodic
from core.batching import BatchWriter
from core.broker import Broker, BrokerUnavailable, InProcessBroker
from core.errors import InvalidInput, Unavailable
from core.metering import INTERNAL_EVENT_PREFIXES, is_internal_event
from core.settings import Settings
from fleet import access, locations
from fleet.device_ids import parse_device_id
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models import db
from models.devices import Device, Event
from models.products import Product

log = logging.getLogger("devicecloud.events")

NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9_\-/.]{1,64}")
DEFAULT_DATA_LIMIT = 1024
MAX_DATA_LIMIT = 16 * 1024
MESSAGE_ID_MAX = 64
TTL = 60  # seconds: what Particle's streams report for every event
# Events under these names are the platform's own (Particle reserves both): nobody else may
# publish under them.
RESERVED_PREFIXES = INTERNAL_EVENT_PREFIXES
BATCH_SIZE = 1000
PRUNE_BATCH = 10_000


class EventsUnavailable(Unavailable):
    """The event could not be stored (the database failed): it was not published."""


def check_name(name: str, *, field: str = "name") -> str:
    """A publishable event name, or `InvalidInput`."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"An event name is 1 to {NAME_MAX} letters, digits, '_', '-', '/' or '.'.",
            field=field,
            code=FleetCode.INVALID_NAME,
        )
    if is_internal_event(name):
        raise InvalidInput(
            "Event names starting with 'spark' or 'particle' are reserved for the cloud.",
            field=field,
            code=FleetCode.RESERVED_NAME,
        )
    return name


def check_data(data: str, limit: int, *, field: str = "data") -> str:
    """Event data within the product's limit (in UTF-8 bytes), or `InvalidInput`. Text only:
    no NUL character (databases cannot store it) and no lone surrogate (not Unicode)."""
    try:
        size = len(data.encode())
    except UnicodeEncodeError:
        size = -1
    if size < 0 or "\x00" in data:
        raise InvalidInput(
            "Event data is text: no NUL characters and no unpaired surrogates.",
            field=field,
            code=FleetCode.INVALID_DATA,
        )
    if size > limit:
        raise InvalidInput(
            f"The data is {size} bytes; this product's events carry at most {limit}.",
            field=field,
            code=FleetCode.DATA_TOO_LARGE,
        )
    return data


def check_data_limit(limit: int, *, field: str = "eventDataLimit") -> int:
    if not 1 <= limit <= MAX_DATA_LIMIT:
        raise InvalidInput(
            f"The event data limit is from 1 to {MAX_DATA_LIMIT} bytes.", field=field
        )
    return limit


@dataclass(frozen=True, slots=True)
class Presence:
    """The condition of a presence event (`spark/status`): it is stored only if, when the
    event log writes it, the device's session is still `session_id` (None: the device has
    none, it is offline). So an event about a presence another process has changed since is
    dropped, and the log never ends in `offline` while the device is online."""

    session_id: str | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store. Every stored event naming a device and a product is counted as that
    device's publish (`OperationKind.DEVICE_PUBLISH`, from the table: `billing.publishes`); a
    server's `publishEvent` names no device. So an event the cloud stores about a device (one that
    says `device_publish=False`) must carry one of the platform's own names, which cost
    nothing, like `spark/status`; anything else raises `ValueError`. `device_publish` is ignored
    without a device or a product."""

    product_id: int | None
    device_id: str | None
    name: str
    data: str
    published_at: datetime
    private: bool = True
    message_id: str | None = None
    presence: Presence | None = None
    device_publish: bool = True

    def __post_init__(self) -> None:
        if (not self.device_publish and self.device_id is not None
                and self.product_id is not None and not is_internal_event(self.name)):
            raise ValueError(
                f"{self.name!r} would be counted as the device's publish: the cloud's own "
                "events about a device have the platform's names (spark…, particle…).")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A stored event as live streams carry it."""

    id: int
    product_id: int | None
    device_id: str | None
    name: str
    data: str
    published_at: datetime
    private: bool

    def encode(self) -> bytes:
        fields = asdict(self)
        fields["published_at"] = self.published_at.isoformat()
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, message: bytes) -> LiveEvent:
        fields = json.loads(message)
        fields["published_at"] = datetime.fromisoformat(fields["published_at"])
        return cls(**fields)

    @classmethod
    def of(cls, event: Event) -> LiveEvent:
        return cls(
            id=event.id,
            product_id=event.product_id,
            device_id=event.device_id,
            name=event.name,
            data=event.data,
            published_at=event.published_at,
            private=event.private,
        )


def product_channel(product_id: int) -> str:
    return f"events:product:{product_id}"


def device_channel(device_id: str) -> str:
    return f"events:device:{device_id}"


def _not_stored(event: NewEvent, error: Exception) -> EventsUnavailable:
    """What the publisher of an event the database refused is told (logged with its cause)."""
    log.exception("storing an event failed", extra={"event_name": event.name})
    failure = EventsUnavailable("The event could not be stored; publish it again.")
    failure.__cause__ = error
    return failure


class EventLog:
    """This process's writer of events: one task writes whatever has queued up since its last
    write as one batch (at most `BATCH_SIZE` events per statement; `core.batching`), so a burst
    of publishes becomes a few inserts and a lone publish is written at once."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self._batches = BatchWriter(self._store, failed=_not_stored, name="event-writer",
                                    limit=BATCH_SIZE)
        self._sequence: str | None = None

    async def append(self, events: Sequence[NewEvent]) -> list[LiveEvent | None]:
        """Store `events` and return them as stored, once they are committed: None for a
        retransmission (a device's message ID stored before) and for a presence event whose
        `Presence` no longer holds. Raises `EventsUnavailable`."""
        return await self._batches.submit(events)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self._batches.close()

    async def _store(self, batch: list[NewEvent]) -> list[LiveEvent | None]:
        """Insert `batch` in one transaction, commit, then publish the new events live.

        Every process's writer does this under one lock (PostgreSQL: an advisory lock held
        by a connection of its own; SQLite: one writer per process, whose database serializes
        the inserts), taking its IDs inside it. So events are committed in ID order, and
        published in that order once committed: a stream that subscribes, then reads history,
        then resumes after an ID neither misses nor repeats an event."""
        client = connections.get("default")
        if client.capabilities.dialect != "postgres":
            stored = await self._insert(batch, postgres=False)
            await self._publish([event for event in stored if event is not None])
            return stored
        async with client.acquire_connection() as lock_holder, lock_holder.transaction():
            await lock_holder.execute("SELECT pg_advisory_xact_lock(hashtext('events'))")
            stored = await self._insert(batch, postgres=True)
            await self._publish([event for event in stored if event is not None])
        return stored

    async def _insert(self, batch: list[NewEvent], *, postgres: bool) -> list[LiveEvent | None]:
        """Take IDs for `batch` and insert it in one transaction: the stored events, None for
        retransmissions (and presence events whose `Presence` no longer holds)."""
        async with in_transaction() as connection:
            ids = await (self._take_ids_postgres if postgres else self._take_ids_sqlite)(
                connection, len(batch)
            )
            # Under the writers' lock (taken with the IDs): no presence changes unseen between
            # this read and the commit of the events' order.
            current = await _presence_holds(connection, batch)
            kept = [(i, e) for i, e, ok in zip(ids, batch, current, strict=True) if ok]
            inserted = (
                await (self._insert_postgres if postgres else self._insert_sqlite)(
                    connection, [i for i, _ in kept], [e for _, e in kept]
                )
                if kept
                else set()
            )
        return [
            LiveEvent(
                id=event_id,
                product_id=event.product_id,
                device_id=event.device_id,
                name=event.name,
                data=event.data,
                published_at=event.published_at,
                private=event.private,
            )
            if event_id in inserted
            else None
            for event_id, event in zip(ids, batch, strict=True)
        ]

    async def _publish(self, stored: list[LiveEvent]) -> None:
        messages: list[tuple[str, bytes]] = []
        for event in stored:
            encoded = event.encode()
            if event.product_id is not None:
                messages.append((product_channel(event.product_id), encoded))
            if event.device_id is not None:
                messages.append((device_channel(event.device_id), encoded))
        try:
            await self.broker.publish_many(messages)
        except BrokerUnavailable:
            # Stored all the same: live streams miss them and can resume from history.
            log.exception("publishing events live failed", extra={"events": len(stored)})

    async def _take_ids_postgres(self, connection: BaseDBAsyncClient, count: int) -> list[int]:
        if self._sequence is None:
            rows = await connection.execute_query_dict(
                "SELECT pg_get_serial_sequence('events', 'id') AS name"
            )
            self._sequence = rows[0]["name"]
        rows = await connection.execute_query_dict(
            "SELECT nextval($1::text::regclass) AS id FROM generate_series(1, $2)",
            [self._sequence, count],
        )
        return sorted(row["id"] for row in rows)

    async def _take_ids_sqlite(self, connection: BaseDBAsyncClient, count: int) -> list[int]:
        # A write first, so this transaction holds the write lock before it reads the sequence.
        await connection.execute_query(
            "UPDATE sqlite_sequence SET seq = seq WHERE name = 'events'"
        )
        rows = await connection.execute_query_dict(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS seq"
        )
        last = rows[0]["seq"]
        return list(range(last + 1, last + 1 + count))

    async def _insert_postgres(
        self, connection: BaseDBAsyncClient, ids: list[int], batch: list[NewEvent]
    ) -> set[int]:
        rows = await connection.execute_query_dict(
            "INSERT INTO events (id, product_id, device_id, name, data, published_at, private,"
            " message_id) SELECT * FROM unnest($1::bigint[], $2::bigint[],"
            " $3::varchar[], $4::varchar[], $5::text[], $6::timestamptz[], $7::boolean[],"
            " $8::varchar[]) ON CONFLICT (device_id, message_id) DO NOTHING RETURNING id",
            [
                ids,
                [event.product_id for event in batch],
                [event.device_id for event in batch],
                [event.name for event in batch],
                [event.data for event in batch],
                [event.published_at for event in batch],
                [event.private for event in batch],
                [event.message_id for event in batch],
            ],
        )
        return {row["id"] for row in rows}

    async def _insert_sqlite(
        self, connection: BaseDBAsyncClient, ids: list[int], batch: list[NewEvent]
    ) -> set[int]:
        published_at = Event._meta.fields_map["published_at"]
        inserted: set[int] = set()
        # 8 values a row, within SQLite's default limit of 32766 bound values a statement.
        for start in range(0, len(batch), 4000):
            rows = list(zip(ids[start : start + 4000], batch[start : start + 4000], strict=True))
            values: list[object] = []
            for event_id, event in rows:
                values += [
                    event_id,
                    event.product_id,
                    event.device_id,
                    event.name,
                    event.data,
                    published_at.to_db_value(event.published_at, Event),
                    int(event.private),
                    event.message_id,
                ]
            placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            returned = await connection.execute_query_dict(
                "INSERT INTO events (id, product_id, device_id, name, data, published_at,"  # noqa: S608
                f" private, message_id) VALUES {placeholders}"
                " ON CONFLICT (device_id, message_id) DO NOTHING RETURNING id",
                values,
            )
            inserted |= {row["id"] for row in returned}
        return inserted


async def _presence_holds(connection: BaseDBAsyncClient, batch: list[NewEvent]) -> list[bool]:
    """For each event, whether it may be stored: events without a `Presence` always, presence
    events if the device's session is still theirs."""
    device_ids = {e.device_id for e in batch if e.presence is not None and e.device_id}
    if not device_ids:
        return [True] * len(batch)
    sessions = dict(
        await Device.filter(id__in=list(device_ids))
        .using_db(connection)
        .values_list("id", "session_id")
    )
    return [
        e.presence is None or sessions.get(e.device_id or "") == e.presence.session_id
        for e in batch
    ]


# The event logs of the apps running in this process, the latest last (normally just one).
_installed: list[EventLog] = []
_fallback: EventLog | None = None


@contextlib.contextmanager
def installed(log: EventLog) -> Iterator[None]:
    """Make `log` this process's event log while the block (the app's lifespan) runs."""
    _installed.append(log)
    try:
        yield
    finally:
        _installed.remove(log)


def event_log() -> EventLog:
    """This process's event log: the running app's, else an in-process one (scripts, tests)."""
    global _fallback
    if _installed:
        return _installed[-1]
    if _fallback is None:
        _fallback = EventLog(InProcessBroker())
    return _fallback


async def record(events: Sequence[NewEvent]) -> list[LiveEvent | None]:
    """Store events and publish them live; see `EventLog.append`."""
    return await event_log().append(events)


# --- publishing ------------------------------------------------------------------------


async def publish_from_server(
    principal: AnyPrincipal, product_id: int, *, name: str, data: str, private: bool
) -> LiveEvent:
    """Publish an event into a product's log as the product (developers and up, or the
    product's SERVER client). The data limit is the product's."""
    product = await access.product_for_server_or_member(principal, product_id,
                                                        Permission.EVENT_PUBLISH)
    event = NewEvent(
        product_id=product.id,
        device_id=None,
        name=check_name(name),
        data=check_data(data, product.event_data_limit),
        published_at=clock.now(),
        private=private,
    )
    (stored,) = await record([event])
    assert stored is not None  # only device events can be retransmissions
    return stored


# --- history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    prefix: str | None = None
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(queryset: QuerySet[Event], where: EventFilter) -> QuerySet[Event]:
    if where.prefix:
        # Not LIKE: it ignores case on SQLite. The length is an integer, never user text.
        queryset = queryset.annotate(
            name_head=RawSQL(f"substr(name, 1, {len(where.prefix)})")
        ).filter(name_head=where.prefix)
    if where.device_id is not None:
        queryset = queryset.filter(device_id=parse_device_id(where.device_id))
    if where.since is not None:
        queryset = queryset.filter(published_at__gte=where.since)
    if where.until is not None:
        queryset = queryset.filter(published_at__lt=where.until)
    return queryset


def check_prefix(prefix: str | None, *, field: str = "prefix") -> str | None:
    if prefix is not None and (len(prefix) > NAME_MAX or not _NAME.fullmatch(prefix or "x")):
        raise InvalidInput(
            f"A prefix is at most {NAME_MAX} letters, digits, '_', '-', '/' or '.'.",
            field=field,
            code=FleetCode.INVALID_NAME,
        )
    return prefix or None


def _product_history(product_id: int, where: EventFilter) -> QuerySet[Event]:
    """A product's events, for newest-first keyset paging."""
    return _filtered(Event.filter(product_id=product_id), where)


def _watched_device_history(
    principal: AnyPrincipal, device: Device, where: EventFilter
) -> QuerySet[Event]:
    """A device's events as `principal` (who may watch it) sees them (`access.sees_event_of`):
    only those it published in its current product (or in none), and for its customer only
    those since they claimed it."""
    history = _filtered(Event.filter(device_id=device.id), where).filter(
        product_id=device.product_id
    )
    if isinstance(principal, CustomerPrincipal):
        history = history.filter(published_at__gte=device.claimed_at or clock.now())
    return history


async def product_log(
    principal: AnyPrincipal, id_or_slug: int | str, where: EventFilter
) -> tuple[Product, QuerySet[Event]]:
    """A product and its events matching `where`, for whoever may watch it
    (`access.watchable_product`: every team role and the product's SERVER client). Its prefix
    is checked once access is (outsiders learn nothing from a bad one)."""
    product = await access.watchable_product(principal, id_or_slug)
    return product, _product_history(product.id, _checked(where))


async def device_log(
    principal: AnyPrincipal, device_id: str, where: EventFilter
) -> tuple[Device, QuerySet[Event]]:
    """A device and the events of it matching `where` that `principal` sees, for whoever may
    watch it (`access.watchable_device`)."""
    device = await access.watchable_device(principal, device_id)
    return device, _watched_device_history(principal, device, _checked(where))


def watched_device_log(
    principal: AnyPrincipal, device: Device, where: EventFilter
) -> QuerySet[Event]:
    """`device_log` of a device already checked (`access.watchable_devices`, for a page of
    devices at once)."""
    return _watched_device_history(principal, device, _checked(where))


def _checked(where: EventFilter) -> EventFilter:
    return replace(where, prefix=check_prefix(where.prefix))


# --- retention -------------------------------------------------------------------------


async def prune(retention_days: int) -> int:
    """Delete events older than the retention, `PRUNE_BATCH` at a time. Returns how many."""
    return await db.delete_before(Event, "published_at",
                                  clock.now() - timedelta(days=retention_days), PRUNE_BATCH)


def pruner(settings: Settings) -> contextlib.AbstractAsyncContextManager[None]:
    """Prune old events, and location points as old (same retention), at start and every
    `EVENT_PRUNE_INTERVAL` while the block runs."""

    async def prune_and_log() -> None:
        pruned = await prune(settings.event_retention_days)
        if pruned:
            log.info("old events pruned", extra={"events": pruned})
        points = await locations.prune(settings.event_retention_days)
        if points:
            log.info("old location points pruned", extra={"points": points})

    return periodic.every(settings.event_prune_interval, prune_and_log, name="event-pruner",
                          failure="pruning events failed", log=log)

