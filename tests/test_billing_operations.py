"""The counting rules (billing/operations.py) against the reference table of issue 13, point 3,
and against a reference written differently, over random operations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.operations import (
    Operation,
    OperationKind,
    data_operations,
    is_internal_event,
    operations_of,
    payload_size,
)

K = OperationKind


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (Operation(K.FUNCTION_CALL), 1),
        (Operation(K.VARIABLE_READ), 1),
        (Operation(K.DEVICE_PUBLISH, size=0, name="t"), 1),
        (Operation(K.DEVICE_PUBLISH, size=1, name="t"), 1),
        (Operation(K.DEVICE_PUBLISH, size=800, name="t"), 1),
        (Operation(K.DEVICE_PUBLISH, size=1024, name="t"), 1),
        (Operation(K.DEVICE_PUBLISH, size=1025, name="t"), 2),
        (Operation(K.DEVICE_PUBLISH, size=1300, name="t"), 2),
        (Operation(K.DEVICE_PUBLISH, size=2048, name="t"), 2),
        (Operation(K.DEVICE_PUBLISH, size=2049, name="t"), 3),
        (Operation(K.DEVICE_PUBLISH, size=16 * 1024, name="t"), 16),
        (Operation(K.SUBSCRIPTION_DELIVERY, size=800, name="t"), 1),
        (Operation(K.SUBSCRIPTION_DELIVERY, size=1300, name="t"), 2),
        (Operation(K.SUBSCRIPTION_DELIVERY, size=16 * 1024, name="t"), 16),
        (Operation(K.LOCATION_POINT), 1),
        (Operation(K.DEVICE_PUBLISH, size=7, name="spark/status"), 0),
        (Operation(K.DEVICE_PUBLISH, size=2000, name="Spark/x"), 0),
        (Operation(K.DEVICE_PUBLISH, size=3000, name="particle/device/updates"), 0),
        (Operation(K.DEVICE_PUBLISH, size=0, name="PARTICLE"), 0),
        (Operation(K.SUBSCRIPTION_DELIVERY, size=5000, name="sPaRk"), 0),
        (Operation(K.DEVICE_PUBLISH, size=10, name="sparticle"), 1),
        (Operation(K.DEVICE_PUBLISH, size=10, name="my/spark"), 1),
        (Operation(K.DEVICE_PUBLISH, size=1300, name="t", duplicate=True), 0),
        (Operation(K.LOCATION_POINT, duplicate=True), 0),
        (Operation(K.ACKNOWLEDGEMENT), 0),
        (Operation(K.SESSION_SETUP), 0),
        (Operation(K.KEEP_ALIVE), 0),
        (Operation(K.SSE_DELIVERY), 0),
        (Operation(K.GRAPHQL_SUBSCRIPTION_DELIVERY), 0),
        (Operation(K.WEBHOOK_DELIVERY), 0),
        (Operation(K.API_CALL), 0),
        (Operation(K.SERVER_PUBLISH), 0),
    ],
)
def test_the_reference_table(operation: Operation, expected: int) -> None:
    assert data_operations(operation) == expected


def test_a_retransmitted_delivery_counts_again() -> None:
    delivery = Operation(K.SUBSCRIPTION_DELIVERY, size=1300, name="t")
    assert sum(data_operations(d) for d in [delivery, delivery]) == 4


def test_a_retransmitted_publish_stored_once_counts_once() -> None:
    first = Operation(K.DEVICE_PUBLISH, size=1300, name="t")
    again = Operation(K.DEVICE_PUBLISH, size=1300, name="t", duplicate=True)
    assert data_operations(first) + data_operations(again) == 2


def test_functions_and_variables_named_like_internal_events_still_count() -> None:
    assert data_operations(Operation(K.FUNCTION_CALL)) == 1
    with pytest.raises(ValueError, match="no event name"):
        Operation(K.FUNCTION_CALL, name="sparkle")


@pytest.mark.parametrize(("data", "size"), [
    ("", 0), ("x" * 800, 800), ("é" * 512, 1024), ("é" * 513, 1026), ("€", 3), ("😀", 4),
])
def test_the_payload_is_the_data_in_utf8_bytes(data: str, size: int) -> None:
    assert payload_size(data) == size


def test_a_payload_of_1024_bytes_in_two_byte_characters_is_one_operation() -> None:
    assert data_operations(Operation(K.DEVICE_PUBLISH, size=payload_size("é" * 512),
                                     name="t")) == 1
    assert data_operations(Operation(K.DEVICE_PUBLISH, size=payload_size("é" * 513),
                                     name="t")) == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": K.DEVICE_PUBLISH, "size": -1, "name": "t"}, "at least 0"),
    ({"kind": K.LOCATION_POINT, "size": 10}, "no event name or size"),
    ({"kind": K.API_CALL, "name": "x"}, "no event name or size"),
    ({"kind": K.SUBSCRIPTION_DELIVERY, "size": 1, "name": "t", "duplicate": True},
     "never a duplicate"),
    ({"kind": K.FUNCTION_CALL, "duplicate": True}, "never a duplicate"),
])
def test_impossible_operations_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Operation(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "internal"), [
    ("spark", True), ("SPARK/status", True), ("particle", True), ("Particle/x", True),
    ("spar", False), ("partic", False), ("xspark", False), ("", False),
])
def test_internal_event_names(name: str, internal: bool) -> None:
    assert is_internal_event(name) is internal


# The reference: the same rules spelled out case by case, counting kilobytes by repeated
# subtraction rather than by division.
FREE_KINDS = {"ACKNOWLEDGEMENT", "SESSION_SETUP", "KEEP_ALIVE", "SSE_DELIVERY",
              "GRAPHQL_SUBSCRIPTION_DELIVERY", "WEBHOOK_DELIVERY", "API_CALL", "SERVER_PUBLISH"}


def reference(kind: str, size: int, name: str, duplicate: bool) -> int:
    if kind in FREE_KINDS:
        return 0
    if kind in ("FUNCTION_CALL", "VARIABLE_READ"):
        return 1
    if kind == "LOCATION_POINT":
        return 0 if duplicate else 1
    if kind == "DEVICE_PUBLISH" and duplicate:
        return 0
    lowered = name.lower()
    if lowered[:5] == "spark" or lowered[:8] == "particle":
        return 0
    operations, left = 1, size
    while left > 1024:
        left -= 1024
        operations += 1
    return operations


@st.composite
def operations(draw: st.DrawFn) -> Operation:
    kind = draw(st.sampled_from(list(OperationKind)))
    if kind in (K.DEVICE_PUBLISH, K.SUBSCRIPTION_DELIVERY):
        name = draw(st.one_of(
            st.text(max_size=20),
            st.builds(str.__add__, st.sampled_from(["spark", "Spark/", "PARTICLE", "part",
                                                    "spar", "particl"]),
                      st.text(max_size=10)),
        ))
        size = draw(st.integers(min_value=0, max_value=40_000))
        duplicate = kind is K.DEVICE_PUBLISH and draw(st.booleans())
        return Operation(kind, size=size, name=name, duplicate=duplicate)
    return Operation(kind, duplicate=kind is K.LOCATION_POINT and draw(st.booleans()))


@settings(max_examples=500, deadline=None)
@given(operations())
def test_the_counting_matches_the_reference(operation: Operation) -> None:
    assert data_operations(operation) == reference(
        operation.kind.value, operation.size, operation.name, operation.duplicate)


@settings(max_examples=500, deadline=None)
@given(operations())
def test_the_ledgers_pricing_is_the_counting_rule(operation: Operation) -> None:
    if not operation.duplicate:  # a usage the ledger prices is never a duplicate
        assert operations_of(operation.kind, operation.size, operation.name) == (
            data_operations(operation))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": K.DEVICE_PUBLISH, "size": -1, "name": "t"}, "at least 0"),
    ({"kind": K.LOCATION_POINT, "size": 10}, "no event name or size"),
    ({"kind": K.API_CALL, "name": "x"}, "no event name or size"),
])
def test_the_ledgers_pricing_refuses_what_cannot_happen(kwargs: dict[str, object],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        operations_of(**kwargs)  # type: ignore[arg-type]
