"""Billable devices (billing/devices.py): scenarios over months, and the rule against a
reference over random activity histories."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.devices import DeviceActivity, is_billable
from billing.periods import Period

START = Period(2026, 1)


def billed(history: str, *, grace: bool, sim_off: str = "") -> str:
    """Runs the rule over a history written one letter a month from January 2026: `o` the
    device came online, `.` it did not; `sim_off` marks with `x` the months its SIM was
    deactivated for the whole month. The answer is one letter a month: `B` billable, `-` not."""
    first = next((START.shift(i) for i, c in enumerate(history) if c == "o"), None)
    return "".join(
        "B" if is_billable(DeviceActivity(START.shift(i), c == "o",
                                          sim_off[i:i + 1] == "x"),
                           first, manufacturing_grace=grace) else "-"
        for i, c in enumerate(history)
    )


@pytest.mark.parametrize("grace", [False, True])
def test_never_online_is_never_billable(grace: bool) -> None:
    assert billed("........", grace=grace) == "--------"


def test_online_once_then_silent_is_billable_every_month_after() -> None:
    assert billed("..o.....", grace=False) == "--BBBBBB"


def test_with_grace_silent_months_among_the_first_six_do_not_count() -> None:
    # First online in March: March to August are its first six billing months.
    assert billed("..o.....", grace=True) == "--B-----"
    assert billed("..o.o...", grace=True) == "--B-B---"
    assert billed("..o..........", grace=True) == "--B-----BBBBB"


def test_from_the_seventh_month_on_it_counts_regardless() -> None:
    # January is the first month; July, the seventh, counts though the device stays silent.
    assert billed("o.......", grace=True) == "B-----BB"
    assert billed("oooooooo", grace=True) == "BBBBBBBB"


def test_a_sim_deactivated_for_the_whole_month_is_not_billed() -> None:
    assert billed("o.......", grace=False, sim_off="..xx....") == "BB--BBBB"
    # The SIM rule holds after the grace too.
    assert billed("o.......", grace=True, sim_off="......x.") == "B------B"


def test_a_sim_deactivated_for_part_of_a_month_changes_nothing() -> None:
    # Part of a month is an ordinary month: no proration.
    assert billed("o.o.....", grace=False, sim_off="........") == "BBBBBBBB"


@pytest.mark.parametrize("grace", [False, True])
def test_the_month_of_the_first_online_always_counts(grace: bool) -> None:
    assert billed(".o", grace=grace) == "-B"


def test_activity_contradicting_the_first_online_is_refused() -> None:
    with pytest.raises(ValueError, match="before its first online"):
        is_billable(DeviceActivity(Period(2026, 1), came_online=True), Period(2026, 2),
                    manufacturing_grace=False)
    with pytest.raises(ValueError, match="before its first online"):
        is_billable(DeviceActivity(Period(2026, 1), came_online=True), None,
                    manufacturing_grace=False)
    with pytest.raises(ValueError, match="so it came online in it"):
        is_billable(DeviceActivity(Period(2026, 2), came_online=False), Period(2026, 2),
                    manufacturing_grace=True)


def reference(months: list[tuple[bool, bool]], grace: bool) -> list[bool]:
    """The rule as a walk through the months: a device's age is counted from its first
    online, and each month is decided by what it did and how old it is."""
    answers = []
    age = None
    for online, sim_off in months:
        if age is None and online:
            age = 0
        elif age is not None:
            age += 1
        if age is None or sim_off:
            answers.append(False)
        elif grace and age <= 5:
            answers.append(online)
        else:
            answers.append(True)
    return answers


histories = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=8, max_size=24)


@settings(max_examples=500, deadline=None)
@given(months=histories, grace=st.booleans(),
       start=st.builds(Period, st.integers(min_value=1990, max_value=2100),
                       st.integers(min_value=1, max_value=12)))
def test_the_rule_matches_the_reference(months: list[tuple[bool, bool]], grace: bool,
                                        start: Period) -> None:
    periods = [start.shift(i) for i in range(len(months))]
    first = next((p for p, (online, _) in zip(periods, months, strict=True) if online), None)
    got = [is_billable(DeviceActivity(p, online, sim_off), first, manufacturing_grace=grace)
           for p, (online, sim_off) in zip(periods, months, strict=True)]
    assert got == reference(months, grace)


@settings(max_examples=300, deadline=None)
@given(months=histories)
def test_grace_only_ever_removes_months(months: list[tuple[bool, bool]]) -> None:
    periods = [START.shift(i) for i in range(len(months))]
    first = next((p for p, (online, _) in zip(periods, months, strict=True) if online), None)
    for p, (online, sim_off) in zip(periods, months, strict=True):
        activity = DeviceActivity(p, online, sim_off)
        with_grace = is_billable(activity, first, manufacturing_grace=True)
        without = is_billable(activity, first, manufacturing_grace=False)
        assert with_grace <= without
        if first is not None and p.months_since(first) >= 6:
            assert with_grace == without


def test_the_manuals_worked_examples() -> None:
    """docs/usage.md's table of billable months is what the rule answers."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    table = text[text.index("Worked examples"):]
    rows = re.findall(r"^\| [^|]+ \| `([o.x]+)` \| `([B-]+)` \| `([B-]+)` \|$", table, re.M)
    assert len(rows) == 7
    for months, without, with_grace in rows:
        history = months.replace("x", ".")
        sim_off = "".join("x" if c == "x" else "." for c in months)
        assert billed(history, grace=False, sim_off=sim_off) == without, months
        assert billed(history, grace=True, sim_off=sim_off) == with_grace, months
