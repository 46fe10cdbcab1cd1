"""The rules of events: names and the data limit. What an event costs is `billing.operations`'s
(tests/test_billing_operations.py)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from fleet import events


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
