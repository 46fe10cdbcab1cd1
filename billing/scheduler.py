"""The usage scheduler: warnings at 70, 90 and 100 %, the free plan's grace and pause, and the
resumption at the next period, for every organization, one `tick` at a time.

A tick is safe to run twice, and concurrently: each thing it announces is guarded by a unique
row or a conditional update written first in the transaction that announces it, so a second
tick finds it done and writes nothing. One organization's failure is logged and leaves the
others to be done.

- **Warnings.** For the current period (and, during the first day of a period, the one just
  ended, so a threshold reached in its last minutes is still told): the data operations used
  (the sum of its `UsageCounter` rows) and the billable devices so far
  (`billable.billable_devices(…, until=now)`, asked only of organizations with enough devices
  online, `billable.online_by_organization`), each against the plan's limit. Every threshold
  (`plans.THRESHOLDS`) at or under the usage that the period has no `UsageThreshold` row for
  is crossed now: its row, a notification and an email to the owner and administrators, in one
  transaction. A jump from 69 % to 95 % crosses 70 and 90 in one tick. Each threshold is told
  once per period, even if the limit changes within the period.
- **Pause (FREE only).** 100 % of the data operations crossed at T (`crossed_at`) leaves a
  grace of `plans.GRACE`; the first tick at or after its end (`plans.grace_end`) pauses the
  organization from then until the period's end (`BillingAccount.paused_from`,
  `paused_until`, and a `UsagePause` row that keeps it once over), with a notification and an
  email; paused again in the period (lifted by a plan change, then back on FREE), from that
  tick. A grace that would end after the period does not pause. BASIC and ENTERPRISE are
  warned, never paused.
- **Resumption.** A pause ends by itself at `paused_until` (`billing.pauses` compares it with
  the clock); the first tick after that clears it, with a notification and an email.

Whenever a tick sets or clears a pause it calls `pauses.changed(broker)` after commit, and
whenever it queued emails, `Outbox.wake()`.

**One leader.** Every app process runs the scheduler (`running`), but on PostgreSQL only the one
holding the advisory lock `LOCK_KEY` ticks (`Leader`): taken with `pg_try_advisory_lock` on a
connection of its own, kept while the process lives and the connection does, and tried again
at every pass by the others. SQLite serves one process: it always leads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from billing import pauses
from billing.accounts import subscriptions_of
from billing.billable import billable_devices, count, online_by_organization
from billing.notifications import Message, Outbox, tell
from billing.periods import Period
from billing.plans import GRACE, PlanKind, Subscription, grace_end, grace_text, thresholds_crossed
from core import clock, periodic
from core.broker import Broker
from core.metering import meter
from core.settings import get_settings
from models.organizations import Organization
from models.usage import BillingAccount, Metric, UsageCounter, UsagePause, UsageThreshold

log = logging.getLogger("devicecloud.scheduler")

# How long into a period the one before it is still checked for thresholds.
CATCH_UP = timedelta(days=1)
# The advisory lock of the scheduler's leader ("usage" in ASCII).
LOCK_KEY = 0x7573616765


@dataclass(frozen=True, slots=True)
class Done:
    """One thing a tick did, as an operator reads it."""

    organization: str  # the organization's slug
    what: str

    def __str__(self) -> str:
        return f"{self.organization}: {self.what}"


async def tick(now: datetime, *, broker: Broker, outbox: Outbox) -> list[Done]:
    """Run every step once for every organization, as of `now`; what was done, in order. The
    device publishes stored so far are counted first (`Meter.settle`), so the sums are whole."""
    await meter().settle()
    done: list[Done] = []
    current = Period.of(now)
    periods = [current.previous(), current] if now < current.start + CATCH_UP else [current]
    paused_or_resumed = False
    for step in (_resume, _pause):
        found = await step(now, outbox)
        paused_or_resumed |= bool(found)
        done += found
    for period in periods:
        done += await _warn(period, now, outbox)
    if paused_or_resumed:
        await pauses.changed(broker)
    if done:  # each thing done was emailed
        outbox.wake()
    return done


@contextlib.contextmanager
def _alone(organization_id: int) -> Iterator[None]:
    """One organization's failure is logged, and the tick goes on with the others (the next
    tick tries it again)."""
    try:
        yield
    except Exception:  # whatever it is, it must not hold up every other organization
        log.exception("the usage scheduler failed for an organization",
                      extra={"organization_id": organization_id})


# --- Warnings --------------------------------------------------------------------------------


async def _warn(period: Period, now: datetime, outbox: Outbox) -> list[Done]:
    until = min(now, period.end)
    used = {org: int(total) for org, total in await UsageCounter.filter(period=str(period))
            .annotate(total=Sum("operations")).group_by("organization_id")
            .values_list("organization_id", "total") if total}
    online = await online_by_organization(until)
    candidates = set(used) | set(online)
    if not candidates:
        return []
    told: dict[int, set[tuple[str, int]]] = {org: set() for org in candidates}
    for org, metric, threshold in await UsageThreshold.filter(
            period=str(period), organization_id__in=list(candidates)
    ).values_list("organization_id", "metric", "threshold"):
        told[org].add((metric, threshold))
    subscriptions = await subscriptions_of(candidates)
    done = []
    for org in sorted(candidates):
        with _alone(org):
            subscription = subscriptions[org]
            limits = subscription.limits
            metrics = [(Metric.DATA_OPERATIONS, used.get(org, 0), limits.data_operations)]
            if any((Metric.DEVICES.value, t) not in told[org]
                   for t in thresholds_crossed(0, online.get(org, 0), limits.devices)):
                billable = await billable_devices(
                    org, period, manufacturing_grace=subscription.manufacturing_grace, until=until)
                metrics.append((Metric.DEVICES, count(billable), limits.devices))
            for metric, usage, limit in metrics:
                for threshold in thresholds_crossed(0, usage, limit):
                    if (metric.value, threshold) in told[org]:
                        continue
                    crossed = await _cross(org, period, metric, threshold, usage, limit,
                                           subscription, now, outbox)
                    if crossed is not None:
                        done.append(crossed)
    return done


async def _cross(organization_id: int, period: Period, metric: Metric, threshold: int,
                 used: int, limit: int, subscription: Subscription, now: datetime,
                 outbox: Outbox) -> Done | None:
    organization = await Organization.get(id=organization_id)
    try:
        async with in_transaction():
            await UsageThreshold.create(
                organization_id=organization_id, period=str(period), metric=metric.value,
                threshold=threshold, used=used, limit=limit, crossed_at=now)
            await tell(organization_id, _warning(organization, period, metric, threshold,
                                                 used, limit, subscription, now), outbox)
    except IntegrityError:  # another tick crossed it first
        return None
    return Done(organization.slug, f"crossed {threshold} % of its {_METRIC[metric]} in "
                                   f"{period} ({used:,} of {limit:,})")


_METRIC = {Metric.DATA_OPERATIONS: "data operations", Metric.DEVICES: "devices"}


def _warning(organization: Organization, period: Period, metric: Metric, threshold: int,
             used: int, limit: int, subscription: Subscription, now: datetime) -> Message:
    what = _METRIC[metric]
    if metric is Metric.DATA_OPERATIONS:
        body = f"{organization.name} has used {used:,} of its {limit:,} data operations in " \
               f"{period}."
    else:
        body = f"{organization.name} has {used:,} billable devices in {period}; its plan " \
               f"allows {limit:,}."
    if threshold == 100:
        body += " " + _at_limit(metric, subscription, period, now)
    return Message("USAGE_WARNING", f"threshold:{period}:{metric.value}:{threshold}",
                   f"{organization.name}: {threshold} % of the {what} limit reached", body)


def _at_limit(metric: Metric, subscription: Subscription, period: Period,
              now: datetime) -> str:
    if subscription.plan is PlanKind.FREE and metric is Metric.DATA_OPERATIONS:
        ends = grace_end(now, period)
        if ends is not None:
            return (f"On the free plan, its devices keep working for a {grace_text()} grace; "
                    f"from {_moment(ends)} their data operations are paused until "
                    f"{_moment(period.end)}, when they resume by themselves. Upgrading ends "
                    "the pause.")
        return f"On the free plan, the period ends at {_moment(period.end)}, before the grace."
    if subscription.plan is PlanKind.BASIC:
        return "Add a block to raise the limits (addBlock): it applies at once."
    if subscription.plan is PlanKind.ENTERPRISE:
        return "The contract's limit is reached; devices keep working."
    return "Upgrading raises the limits."


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- Pauses and resumptions ------------------------------------------------------------------


async def _pause(now: datetime, outbox: Outbox) -> list[Done]:
    period = Period.of(now)
    due = await UsageThreshold.filter(
        period=str(period), metric=Metric.DATA_OPERATIONS.value, threshold=100,
        crossed_at__lte=now - GRACE,
    ).values_list("organization_id", "crossed_at")
    if not due:
        return []
    subscriptions = await subscriptions_of(org for org, _ in due)
    done = []
    for org, crossed_at in sorted(due):
        with _alone(org):
            paused_from = grace_end(crossed_at, period)
            if subscriptions[org].plan is not PlanKind.FREE or paused_from is None:
                continue
            paused_until = period.end
            if await UsagePause.filter(organization_id=org, period=str(period),
                                       paused_from__gte=paused_from).exists():
                paused_from = now  # lifted by a plan change since, and back on FREE: from now
            await _account(org, now)
            organization = await Organization.get(id=org)
            async with in_transaction():
                if not await BillingAccount.filter(
                        organization_id=org, plan=PlanKind.FREE.value, paused_from=None
                ).update(paused_from=paused_from, paused_until=paused_until, updated_at=now):
                    continue  # paused already (by another tick), or its plan changed meanwhile
                await UsagePause.create(organization_id=org, period=str(period),
                                        paused_from=paused_from, paused_until=paused_until)
                await tell(org, Message(
                    # Keyed by the tick: a pause lifted by an upgrade may come again in the period
                    # (back on FREE), and is told again; the update above makes each one told once.
                    "DEVICES_PAUSED", f"paused:{period}:{now.isoformat()}",
                    f"{organization.name}: devices paused",
                    f"{organization.name} used all its free data operations for {period} and the "
                    f"{grace_text()} grace is over: from {_moment(paused_from)} its devices' "
                    "publishes, location points, deliveries, function calls and variable reads are "
                    f"paused until {_moment(paused_until)}, when they resume by themselves. "
                    "Devices stay connected and nothing stored is lost. Upgrading ends the "
                    "pause."), outbox)
            done.append(Done(organization.slug,
                             f"paused from {_moment(paused_from)} until {_moment(paused_until)}"))
    return done


async def _account(organization_id: int, now: datetime) -> None:
    """Store the organization's account if it has none yet (FREE, one block)."""
    with contextlib.suppress(IntegrityError):  # another tick stored it first
        await BillingAccount.get_or_create(organization_id=organization_id,
                                           defaults={"updated_at": now})


async def _resume(now: datetime, outbox: Outbox) -> list[Done]:
    ended = await BillingAccount.filter(
        paused_from__isnull=False, paused_until__lte=now).values_list(
        "organization_id", "paused_from", "paused_until")
    done = []
    for org, paused_from, paused_until in sorted(ended):
        with _alone(org):
            organization = await Organization.get(id=org)
            period = Period.of(paused_from)
            async with in_transaction():
                if not await BillingAccount.filter(
                        organization_id=org, paused_until=paused_until
                ).update(paused_from=None, paused_until=None, updated_at=now):
                    continue  # resumed already by another tick
                await tell(org, Message(
                    "DEVICES_RESUMED", f"resumed:{period}", f"{organization.name}: devices resumed",
                    f"A new period has begun: {organization.name}'s devices work again since "
                    f"{_moment(paused_until)}."), outbox)
            done.append(Done(organization.slug, f"resumed at {_moment(paused_until)}"))
    return done


# --- The leader and the app's loop -----------------------------------------------------------


# Query parameters of DATABASE_URL that are Tortoise's (its pool, its schema), not asyncpg's.
_POOL_PARAMETERS = frozenset({"minsize", "maxsize", "min_size", "max_size", "max_queries",
                              "max_inactive_connection_lifetime", "connection_class", "schema",
                              "fetch_inserted"})


def asyncpg_dsn(database_url: str) -> str:
    """DATABASE_URL as asyncpg connects with it: every connection option kept (SSL included),
    the pool's own parameters dropped, and Tortoise's scheme names made PostgreSQL's."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in _POOL_PARAMETERS]
    return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))


class Leader:
    """Whether this process leads the scheduler: on PostgreSQL, while it holds the advisory lock
    on a connection of its own (see the module docstring); on SQLite, always."""

    def __init__(self) -> None:
        self._connection: Any = None  # asyncpg's Connection, holding the lock

    async def leads(self) -> bool:
        client = connections.get("default")
        if client.capabilities.dialect != "postgres":
            return True
        if self._connection is not None:
            try:
                await self._connection.fetchval("SELECT 1")
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self.release()  # the connection broke, and the lock with it
        connection = await asyncpg.connect(asyncpg_dsn(get_settings().database_url))
        if await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            self._connection = connection
            log.info("leading the usage scheduler")
            return True
        await connection.close()
        return False

    async def release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await connection.close()


class Scheduler:
    """This process's scheduler: it ticks when its `Leader` leads."""

    def __init__(self, *, broker: Broker, outbox: Outbox) -> None:
        self.broker = broker
        self.outbox = outbox
        self.leader = Leader()

    async def run_once(self) -> list[Done] | None:
        """A tick as of now if this process leads (what it did); None if another leads."""
        if not await self.leader.leads():
            return None
        return await tick(clock.now(), broker=self.broker, outbox=self.outbox)

    async def close(self) -> None:
        await self.leader.release()


@contextlib.asynccontextmanager
async def running(interval: int, *, broker: Broker, outbox: Outbox) -> AsyncIterator[None]:
    """Run a `Scheduler` every `interval` seconds (and at once) while the block runs;
    `interval` 0 runs none in this process."""
    if interval == 0:
        yield
        return
    scheduler = Scheduler(broker=broker, outbox=outbox)

    async def run_and_log() -> None:
        for done in await scheduler.run_once() or []:
            log.info("usage scheduler", extra={"done": str(done)})

    try:
        async with periodic.every(interval, run_and_log, name="usage-scheduler",
                                  failure="the usage scheduler's tick failed", log=log):
            yield
    finally:
        await scheduler.close()
