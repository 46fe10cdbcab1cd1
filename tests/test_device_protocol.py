"""docs/device-protocol.md is the contract between the cloud and device firmware: its tables of
limits and close codes against the gateway's constants and the simulator's own copies."""

from __future__ import annotations

import re
from pathlib import Path

from api import gateway
from core.settings import Settings
from fleet import locations, subscriptions
from simulator import protocol

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "device-protocol.md"


def table(heading: str) -> list[dict[str, str]]:
    """The rows of the table under the `## heading` of the document, by column name."""
    text = DOCUMENT.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, _, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return [dict(zip(header, row, strict=True)) for row in rows]


def default(setting: str) -> object:
    return Settings.model_fields[setting].default


def test_the_limits_are_the_documents() -> None:
    # Each limit of the table, as the cloud and (where it knows it) the simulator hold it.
    held: dict[str, tuple[object, ...]] = {
        "a frame, in UTF-8 bytes": (gateway.MAX_FRAME_BYTES, protocol.MAX_FRAME_BYTES),
        "the largest frame `id` or `replyTo`": (gateway.MAX_FRAME_ID, protocol.MAX_FRAME_ID),
        "seconds from the upgrade until `auth` and `hello`": (gateway.HANDSHAKE_TIMEOUT,),
        "seconds between heartbeats, the welcome's `keepAlive` (`DEVICE_KEEPALIVE`)": (
            default("device_keepalive"),
        ),
        "names in a hello's `functions`, or in its `variables`": (gateway.MAX_NAMES,),
        "characters of an error report's `message`": (gateway.MAX_ERROR_MESSAGE,),
        "the most points in a `location` frame (at least 1)": (locations.MAX_POINTS,),
        "minutes a point's `time` may be ahead of the cloud's clock": (
            locations.MAX_CLOCK_AHEAD.total_seconds() / 60,
        ),
        "events a second a device may publish, on average (`DEVICE_EVENT_RATE`)": (
            default("device_event_rate"), protocol.DEVICE_EVENT_RATE,
        ),
        "events a device may publish in a burst (`DEVICE_EVENT_BURST`)": (
            default("device_event_burst"), protocol.DEVICE_EVENT_BURST,
        ),
        "error reports a second a device may send, on average (`DEVICE_ERROR_RATE`)": (
            default("device_error_rate"),
        ),
        "error reports a device may send in a burst (`DEVICE_ERROR_BURST`)": (
            default("device_error_burst"),
        ),
        "seconds a caller waits for the reply to a call or read (`FUNCTION_CALL_TIMEOUT`)": (
            default("function_call_timeout"),
        ),
        "subscriptions a device holds at once": (
            subscriptions.MAX_SUBSCRIPTIONS, protocol.MAX_SUBSCRIPTIONS,
        ),
        "seconds before an unacknowledged delivery is sent again, and then dropped "
        "(`DEVICE_DELIVERY_ACK_TIMEOUT`)": (default("device_delivery_ack_timeout"),),
    }
    documented = {row["limit"]: int(row["value"].split()[0]) for row in table("Limits")}
    assert documented.keys() == held.keys()
    assert {limit: set(values) for limit, values in held.items()} == {
        limit: {value} for limit, value in documented.items()
    }


def test_the_close_codes_are_the_documents() -> None:
    documented: dict[str, int] = {}
    for row in table("Errors from the cloud"):
        closed = re.fullmatch(r"closed, (\d+)", row["connection"])
        if closed:
            documented[row["code"].strip("`")] = int(closed[1])
    # The cloud closes with the code named like the error it sends first (CloseCode.DENIED
    # after `denied`); the simulator names each refusal it gives up on by that error.
    assert {code.name.lower(): code.value for code in gateway.CloseCode} == documented
    assert {code.name.lower(): code.value for code in protocol.CloseCode} == documented
    assert {reason: code.value for code, reason in protocol.REFUSED.items()} == {
        reason: documented[reason] for reason in protocol.REFUSED.values()
    }


def test_the_error_frame_codes_are_the_documents() -> None:
    documented = [row["code"].strip("`") for row in table("Errors from the cloud")]
    assert documented == [code.value for code in gateway.FrameCode]
