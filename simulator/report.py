"""The counts of a simulation, and their display while it runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import TextIO


@dataclass
class SimulationReport:
    """Counts of a simulation: live figures while it runs, final figures at the end.

    `connected`, `welcomed` and `quarantined` count the devices in that state right now;
    `ever_welcomed` those welcomed at least once; `refused` and `replaced` devices stopped;
    `reconnects` counts connection attempts after the first, per device.

    Events: every event `events_published` ends up acknowledged (stored), refused for the rate
    limit (`events_rate_limited`, not sent again), refused for another reason
    (`events_refused`), dropped because the device's outbox was full (`events_dropped`), or
    still waiting in an outbox (`events_pending`, sent again after a reconnect).
    `events_retransmitted` counts the publish frames that sent an event again.
    Location frames: every frame sent (`locations_sent`) is acknowledged, its points stored
    (`locations_acknowledged`, `location_points_acknowledged`), or refused
    (`locations_refused`, not sent again).
    `subscriptions` counts the subscriptions the cloud acknowledged (every connection's),
    `deliveries` the `event` frames delivered to them, all acknowledged (a copy the cloud sent
    again counts again).
    `calls_answered` and `reads_answered` count the cloud's function calls and variable reads
    the devices answered (with a value or `not_found`). `claimed` counts the welcomes that
    said the claim code made the device its customer's."""

    devices: int = 0
    connected: int = 0
    welcomed: int = 0
    quarantined: int = 0
    ever_welcomed: int = 0
    refused: int = 0
    replaced: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    frames_sent: int = 0
    errors_reported: int = 0
    acks: int = 0  # error reports acknowledged
    cloud_errors: int = 0
    events_published: int = 0
    events_acknowledged: int = 0
    events_rate_limited: int = 0
    events_refused: int = 0
    events_dropped: int = 0
    events_pending: int = 0
    events_retransmitted: int = 0
    locations_sent: int = 0
    locations_acknowledged: int = 0
    location_points_acknowledged: int = 0
    locations_refused: int = 0
    subscriptions: int = 0
    deliveries: int = 0
    calls_answered: int = 0
    reads_answered: int = 0
    claimed: int = 0
    elapsed: float = 0.0
    all_welcomed_after: float | None = None  # seconds from start until every device not
    # refused had been welcomed once
    refusals: dict[str, str] = field(default_factory=dict)  # device ID -> reason

    def snapshot(self) -> SimulationReport:
        return replace(self, refusals=dict(self.refusals))

    def summary(self) -> str:
        line = (
            f"{self.devices} devices: {self.connected} connected, {self.welcomed} welcomed,"
            f" {self.quarantined} quarantined, {self.refused} refused,"
            f" {self.reconnects} reconnects"
        )
        if self.replaced:
            line += f", {self.replaced} replaced"
        if self.claimed:
            line += f", {self.claimed} claimed"
        if self.failed_attempts:
            line += f", {self.failed_attempts} failed attempts"
        if self.errors_reported:
            line += f", {self.errors_reported} errors reported"
        if self.events_published:
            line += (
                f"; events: {self.events_published} published,"
                f" {self.events_acknowledged} acknowledged,"
                f" {self.events_rate_limited} rate-limited,"
                f" {self.events_retransmitted} retransmitted"
            )
            for count, what in (
                (self.events_pending, "pending"),
                (self.events_refused, "refused"),
                (self.events_dropped, "dropped"),
            ):
                if count:
                    line += f", {count} {what}"
        if self.locations_sent:
            line += (
                f"; locations: {self.locations_sent} frames sent,"
                f" {self.locations_acknowledged} acknowledged"
                f" ({self.location_points_acknowledged} points)"
            )
            if self.locations_refused:
                line += f", {self.locations_refused} refused"
        if self.subscriptions:
            line += f"; {self.subscriptions} subscriptions, {self.deliveries} deliveries received"
        if self.calls_answered or self.reads_answered:
            line += (
                f"; answered {self.calls_answered} function calls,"
                f" {self.reads_answered} variable reads"
            )
        return line


class ProgressDisplay:
    """Counts on stderr: one line rewritten in place on a terminal, else a plain line each
    time they change (at most about once a second)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = ""

    def __call__(self, report: SimulationReport) -> None:
        line = f"[{report.elapsed:6.0f} s] {report.summary()}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif report.summary() != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last = report.summary()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
