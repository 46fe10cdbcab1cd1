"""The rules of events: names, the data limit and what an event costs in data operations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from fleet import events

NAME_ALPHABET = "abcXYZ019_-/."


@pytest.mark.parametrize(
    "name",
    ["a", "temperature", "A-b_c/d.e", "0", "x" * 64, "parti", "sparse", "my/particle", "my/spark"],
)
def test_valid_names(name: str) -> None:
    assert events.check_name(name) == name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "INVALID_NAME"),
        ("x" * 65, "INVALID_NAME"),
        ("has space", "INVALID_NAME"),
        ("émoji", "INVALID_NAME"),
        ("a:b", "INVALID_NAME"),
        ("line\n", "INVALID_NAME"),
        ("spark", "RESERVED_NAME"),
        ("spark/status", "RESERVED_NAME"),
        ("SPARK/status", "RESERVED_NAME"),
        ("SpArKle", "RESERVED_NAME"),
        ("particle", "RESERVED_NAME"),
        ("particle/device/updates", "RESERVED_NAME"),
        ("PARTICLE", "RESERVED_NAME"),
        ("PaRtIcLeS", "RESERVED_NAME"),
    ],
)
def test_invalid_names(name: str, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        events.check_name(name)
    assert (raised.value.field, raised.value.code) == ("name", code)


def test_the_data_limit_counts_utf8_bytes() -> None:
    assert events.check_data("x" * 1024, 1024) == "x" * 1024
    assert events.check_data("é" * 512, 1024) == "é" * 512  # 2 bytes each: 1024 bytes
    assert events.check_data("", 1) == ""
    for data in ("x" * 1025, "é" * 512 + "x", "€" * 342):  # 1025, 1025 and 1026 bytes
        with pytest.raises(InvalidInput) as raised:
            events.check_data(data, 1024)
        assert (raised.value.field, raised.value.code) == ("data", "DATA_TOO_LARGE")
        assert raised.value.message == (
            f"The data is {len(data.encode())} bytes; this product's events carry at most 1024."
        )


@pytest.mark.parametrize("limit", [1, 1024, 16384])
def test_data_limits_from_1_byte_to_16_kb(limit: int) -> None:
    assert events.check_data_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, -1, 16385])
def test_data_limits_outside_1_byte_to_16_kb(limit: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        events.check_data_limit(limit)
    assert raised.value.field == "eventDataLimit"


@pytest.mark.parametrize(
    ("name", "size", "operations"),
    [
        ("t", 0, 1),
        ("t", 800, 1),
        ("t", 1024, 1),
        ("t", 1025, 2),
        ("t", 1300, 2),
        ("t", 2048, 2),
        ("t", 2049, 3),
        ("t", 16 * 1024, 16),
        ("spark/status", 7, 0),
        ("Spark/x", 2000, 0),
        ("particle/device/updates", 3000, 0),
        ("PARTICLE", 0, 0),
        ("sparticle", 10, 1),
    ],
)
def test_data_operations(name: str, size: int, operations: int) -> None:
    assert events.data_operations(name, "x" * size) == operations


def test_data_operations_count_utf8_bytes() -> None:
    assert events.data_operations("t", "é" * 512) == 1  # 1024 bytes
    assert events.data_operations("t", "é" * 513) == 2  # 1026 bytes


def reference_operations(name: str, data: str) -> int:
    """Particle's rule, spelled out: platform events are free; others cost one operation per
    started kilobyte of data, and at least one."""
    lowered = name.lower()
    if lowered.startswith("spark") or lowered.startswith("particle"):
        return 0
    size = len(data.encode("utf-8"))
    operations = size // 1024
    if size % 1024:
        operations += 1
    return max(operations, 1)


@settings(max_examples=300, deadline=None)
@given(
    name=st.one_of(
        st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=64),
        st.builds(lambda p, rest: p + rest,
                  st.sampled_from(["spark", "Spark/", "SPARK", "particle", "Particle/", "part"]),
                  st.text(alphabet=NAME_ALPHABET, max_size=20)),
    ),
    data=st.one_of(
        st.text(max_size=40),
        st.builds(lambda n, c: c * n, st.integers(min_value=0, max_value=17_000),
                  st.sampled_from(["x", "é", "€", "😀"])),
    ),
)
def test_data_operations_match_the_reference(name: str, data: str) -> None:
    assert events.data_operations(name, data) == reference_operations(name, data)
