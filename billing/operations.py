"""Data operations: what each thing a device or the cloud does costs, in one pure function.

`data_operations(operation)` is the only place the counting rules live; the gateway and the
event log describe what happened as an `Operation` and ask it. The rules are the billing
document's (`../shared/seeds/004_e6f2350189d275ad.txt`, "Data operations") and SPEC's
"Billing (usage: data operations and devices)", as issue 13 (point 3) states them:

    kind                           data operations
    FUNCTION_CALL                  1 (a function call that reached the device)
    VARIABLE_READ                  1 (a variable read that reached the device)
    DEVICE_PUBLISH                 ceil(size / 1024), at least 1: 0 B → 1, 800 B → 1,
                                   1024 B → 1, 1025 B → 2, 1300 B → 2, 16384 B → 16
    SUBSCRIPTION_DELIVERY          the same, for each delivery to a subscribed device,
                                   a retransmission included
    LOCATION_POINT                 1 for each stored point
    DEVICE_PUBLISH or              0 when the event's name begins with `spark` or
    SUBSCRIPTION_DELIVERY            `particle`, in any case
    DEVICE_PUBLISH or              0 with `duplicate=True`: a device's retransmission of
    LOCATION_POINT                   what is already stored (same `messageId`) counts once
    ACKNOWLEDGEMENT                0
    SESSION_SETUP                  0 (hello, welcome)
    KEEP_ALIVE                     0 (heartbeats)
    SSE_DELIVERY                   0
    GRAPHQL_SUBSCRIPTION_DELIVERY  0
    WEBHOOK_DELIVERY               0
    API_CALL                       0 (GraphQL, REST, OAuth)
    SERVER_PUBLISH                 0 (a server's `publishEvent` itself; its deliveries to
                                     subscribed devices count)

What "bytes" are: the UTF-8 length of the event's data, and only of its data, not its name.
The billing document charges "one Data Operation for each 1024 bytes of data payload" and sizes
that data "in bytes of UTF-8 characters"; SPEC says "1 per 1024 bytes of payload". The name is
not payload, and the 16 KB example (16 operations at the maximum publish size) only holds if the
data alone is measured: the product's event data limit (at most 16384) bounds the data, not the
name. `payload_size(data)` is that measure.

The `spark`/`particle` rule is about events: the document exempts "internal events such as
device vitals (beginning with "particle" or "spark")". A function or variable that happens to
be called `sparkle` costs 1 like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.metering import OperationKind, is_internal_event

BYTES_PER_OPERATION = 1024


# Kinds that carry an event (a name and a size).
EVENT_KINDS = frozenset({OperationKind.DEVICE_PUBLISH, OperationKind.SUBSCRIPTION_DELIVERY})
# Kinds whose retransmission the cloud stores once, so it can be a duplicate.
STORED_KINDS = frozenset({OperationKind.DEVICE_PUBLISH, OperationKind.LOCATION_POINT})
# Kinds that cost one operation each.
UNIT_KINDS = frozenset({
    OperationKind.FUNCTION_CALL, OperationKind.VARIABLE_READ, OperationKind.LOCATION_POINT,
})
_PUBLISH, _DELIVERY = OperationKind.DEVICE_PUBLISH, OperationKind.SUBSCRIPTION_DELIVERY


@dataclass(frozen=True, slots=True)
class Operation:
    """One thing that happened, as the counting rules need to see it.

    `size` is the event's `payload_size` and `name` its name, for the event kinds only;
    `duplicate` marks a device's retransmission the cloud had already stored (same
    `messageId`). A description that cannot happen (a size on a function call, a duplicate
    delivery) is a caller's mistake and raises `ValueError` rather than being counted somehow.
    """

    kind: OperationKind
    size: int = 0
    name: str = ""
    duplicate: bool = False

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"A size is at least 0 bytes, not {self.size}.")
        if self.kind not in EVENT_KINDS and (self.size or self.name):
            raise ValueError(f"A {self.kind} has no event name or size.")
        if self.duplicate and self.kind not in STORED_KINDS:
            raise ValueError(f"A {self.kind} is not stored, so it is never a duplicate.")


def payload_size(data: str) -> int:
    """The size the counting rules charge for an event's data: its UTF-8 length."""
    return len(data.encode("utf-8"))


def data_operations(operation: Operation) -> int:
    """How many data operations `operation` costs, by the table in this module's docstring."""
    if operation.duplicate:
        return 0
    return operations_of(operation.kind, operation.size, operation.name)


def operations_of(kind: OperationKind, size: int = 0, name: str = "") -> int:
    """`data_operations(Operation(kind, size, name))`, without building the `Operation`: the
    ledger prices every stored publish with it. Raises the same `ValueError` for a description
    that cannot happen."""
    if size < 0:
        raise ValueError(f"A size is at least 0 bytes, not {size}.")
    # Identity, not set membership: this runs for every event the cloud stores.
    if kind is _PUBLISH or kind is _DELIVERY:
        if is_internal_event(name):
            return 0
        return -(-size // BYTES_PER_OPERATION) or 1
    if size or name:
        raise ValueError(f"A {kind} has no event name or size.")
    return 1 if kind in UNIT_KINDS else 0
