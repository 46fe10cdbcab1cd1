"""Metering: how the fleet reports what its devices did that usage billing counts, and learns
whether an organization's devices are paused.

`fleet` (the gateway, location points, subscriptions, function calls) describes each thing as
a `Metered` and hands it to `meter()`; `billing` implements the `Meter` (its ledger and its
pauses) and the app installs it for its lifespan (`installed`). So neither domain imports the
other. A device's publishes are the exception: the events table is their record, and billing
counts them from the stored events after they commit (`billing.publishes`), so the event
writer's transaction writes nothing else; readers of the counters `settle` first. With no meter
installed (a tool, a test of the fleet alone, or `USAGE_METERING=false`) nothing is counted
and nothing is paused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient


class OperationKind(StrEnum):
    """What happened, as the counting rules (`billing.operations`) tell them apart."""

    FUNCTION_CALL = "FUNCTION_CALL"
    VARIABLE_READ = "VARIABLE_READ"
    DEVICE_PUBLISH = "DEVICE_PUBLISH"
    SUBSCRIPTION_DELIVERY = "SUBSCRIPTION_DELIVERY"
    LOCATION_POINT = "LOCATION_POINT"
    ACKNOWLEDGEMENT = "ACKNOWLEDGEMENT"
    SESSION_SETUP = "SESSION_SETUP"
    KEEP_ALIVE = "KEEP_ALIVE"
    SSE_DELIVERY = "SSE_DELIVERY"
    GRAPHQL_SUBSCRIPTION_DELIVERY = "GRAPHQL_SUBSCRIPTION_DELIVERY"
    WEBHOOK_DELIVERY = "WEBHOOK_DELIVERY"
    API_CALL = "API_CALL"
    SERVER_PUBLISH = "SERVER_PUBLISH"


# Events under these names are the platform's own (Particle reserves both): nobody else may
# publish under them, and their publishes and deliveries cost nothing.
INTERNAL_EVENT_PREFIXES = ("spark", "particle")


def is_internal_event(name: str) -> bool:
    """Whether `name` is one of the platform's own events (`spark…`, `particle…`, any case)."""
    return name.lower().startswith(INTERNAL_EVENT_PREFIXES)


class Metered(NamedTuple):
    """One thing a device of a product did (or had done to it) at `at`: a stored location
    point, a delivery sent, a function call or variable read the device answered. `name` and
    `size` (`billing.operations.payload_size` of the data) are an event's, for the event kinds
    only. Devices in no product belong to no organization and are never metered. A named tuple:
    cheap to build for every delivery."""

    kind: OperationKind
    product_id: int
    device_id: str
    at: datetime
    name: str = ""
    size: int = 0


def event_size(data: str) -> int:
    """The size of an event's data as the counting rules charge it (`Metered.size`,
    `billing.operations.payload_size`): its UTF-8 length in bytes."""
    return len(data.encode("utf-8"))


def pause_message(until: datetime) -> str:
    """What a device or a caller is told while the organization's devices are paused."""
    return (
        "The organization's free data operations for this month are used up: its devices' "
        f"publishes, location points, deliveries, function calls and variable reads are "
        f"paused until {iso_utc(until)}, when they resume by themselves."
    )


def iso_utc(moment: datetime) -> str:
    """`moment` in ISO 8601, UTC, to the second: 2027-01-01T00:00:00Z."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Meter(Protocol):
    async def record(
        self, usages: Sequence[Metered], connection: BaseDBAsyncClient | None = None
    ) -> None:
        """Count `usages`. With `connection`, inside its transaction (the one that stores what
        they count, so both commit or neither does); without, committed before it returns."""

    def paused_until(self, product_id: int | None) -> datetime | None:
        """When the pause of the devices of the product's organization ends (its data-operation
        limit reached and its grace over), or None if they are not paused. While paused, their
        publishes, location points, deliveries, function calls and variable reads are refused.
        Answered from memory: it is asked for every frame."""

    async def settle(self) -> None:
        """Count what is stored but not yet counted (the device publishes committed since the
        last count): readers of the counters call it first."""

    async def close(self) -> None:
        """Commit what waits to be recorded (the app's lifespan ends)."""


class Unmetered:
    """Counts nothing, pauses nothing."""

    async def record(
        self, usages: Sequence[Metered], connection: BaseDBAsyncClient | None = None
    ) -> None:
        return None

    def paused_until(self, product_id: int | None) -> datetime | None:
        return None

    async def settle(self) -> None:
        return None

    async def close(self) -> None:
        return None


UNMETERED = Unmetered()
_installed: list[Meter] = []


@contextlib.contextmanager
def installed(meter: Meter) -> Iterator[None]:
    """Make `meter` this process's meter while the block (the app's lifespan) runs."""
    _installed.append(meter)
    try:
        yield
    finally:
        _installed.remove(meter)


def meter() -> Meter:
    """The meter installed last, or `UNMETERED`."""
    return _installed[-1] if _installed else UNMETERED
