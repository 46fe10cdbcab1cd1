"""What a simulated device is and does: a thermostat that publishes its temperature and
status, now and then reports an error, and answers the cloud's function calls and variable
reads.

Adding something a device does on its own: an `Activity` in `ACTIVITIES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

# The firmware a simulated device runs, as its `hello` announces it.
DEFAULT_FIRMWARE_VERSION = "1"
DEFAULT_SYSTEM_FIRMWARE_VERSION = "5.6.0"
FUNCTIONS = ["reboot", "setTemp"]
VARIABLES = ["temperature"]

ERROR_SAMPLES = [
    ("OUT_OF_MEMORY", "heap exhausted", "watchdog"),
    ("SENSOR_TIMEOUT", "temperature sensor did not answer within 500 ms", None),
    ("WIFI_DISCONNECTED", "access point lost", None),
    ("BROWNOUT", "supply voltage under 3.0 V", "brownout"),
]


@dataclass
class Thermostat:
    """What a simulated device measures. `setTemp` moves the set point (and, the device being
    simulated, the temperature at once); each `temperature` event drifts around it."""

    set_point: float
    temperature: float
    battery: int  # percent

    @classmethod
    def random(cls, rng: Random) -> Thermostat:
        set_point = 21.0
        return cls(set_point, round(set_point + rng.uniform(-2, 2), 2), rng.randint(40, 100))

    def drift(self, rng: Random) -> float:
        step = 0.3 * (self.set_point - self.temperature) + rng.gauss(0, 0.15)
        self.temperature = round(self.temperature + step, 2)
        return self.temperature


def temperature_event(thermostat: Thermostat, rng: Random) -> dict[str, Any]:
    return {"type": "publish", "name": "temperature", "data": f"{thermostat.drift(rng):.2f}"}


def status_event(thermostat: Thermostat, rng: Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        if thermostat.battery <= 5:
            thermostat.battery = 100  # recharged
        elif rng.random() < 0.2:
            thermostat.battery -= 1
        return {"type": "publish", "name": "status/battery", "data": str(thermostat.battery)}
    return {"type": "publish", "name": "status/rssi", "data": str(rng.randint(-90, -40))}


def error_report(thermostat: Thermostat, rng: Random) -> dict[str, Any]:
    code, message, reset_reason = rng.choice(ERROR_SAMPLES)
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reset_reason:
        frame["resetReason"] = reset_reason
    return frame


@dataclass(frozen=True)
class Activity:
    """Something a device does on its own: `build` makes the frame (a `publish` goes through
    the device's outbox; any other frame is sent as a request of its own)."""

    weight: float
    build: Callable[[Thermostat, Random], dict[str, Any]]
    publishes: bool


# What a device does on its own when the simulation has a rate.
ACTIVITIES: tuple[Activity, ...] = (
    Activity(0.7, temperature_event, publishes=True),
    Activity(0.25, status_event, publishes=True),
    Activity(0.05, error_report, publishes=False),
)


METRES_PER_DEGREE = 111_320  # of latitude


@dataclass
class Position:
    """Where a simulated device is: it wanders a few metres at a time around where it started
    (somewhere in Europe), so that its location points draw a track."""

    lat: float
    lon: float
    heading: float

    @classmethod
    def random(cls, rng: Random) -> Position:
        return cls(rng.uniform(43.0, 55.0), rng.uniform(-4.0, 20.0), rng.uniform(0, 360))


def location_frame(position: Position, rng: Random) -> dict[str, Any]:
    """A `location` frame of 1 to 5 points, a few seconds apart, along the device's track
    (without its `messageId`, which the device gives it)."""
    points = []
    for _ in range(rng.randint(1, 5)):
        position.heading = (position.heading + rng.gauss(0, 20)) % 360
        speed = abs(rng.gauss(1.4, 0.5))  # walking, metres a second
        metres, angle = speed * 5, math.radians(position.heading)
        north, east = metres * math.cos(angle), metres * math.sin(angle)
        position.lat = max(-90.0, min(90.0, position.lat + north / METRES_PER_DEGREE))
        across = METRES_PER_DEGREE * max(0.01, math.cos(math.radians(position.lat)))
        position.lon = (position.lon + east / across + 180) % 360 - 180
        points.append({"lat": round(position.lat, 6), "lon": round(position.lon, 6),
                       "accuracy": round(rng.uniform(3, 15), 1),
                       "heading": round(position.heading, 1), "speed": round(speed, 2)})
    return {"type": "location", "points": points}


def answer_call(thermostat: Thermostat, frame: dict[str, Any]) -> dict[str, Any]:
    """Functions: `reboot` returns 0; `setTemp` takes a number (the new set point) and
    returns 1, or -1 for an argument that is not a number."""
    name, argument = frame.get("name"), frame.get("argument", "")
    if name == "reboot":
        return {"type": "reply", "value": 0}
    if name == "setTemp":
        try:
            value = float(argument) if isinstance(argument, str) else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            return {"type": "reply", "value": -1}
        thermostat.set_point = thermostat.temperature = value
        return {"type": "reply", "value": 1}
    return _not_found("function", name)


def answer_get(thermostat: Thermostat, frame: dict[str, Any]) -> dict[str, Any]:
    """Variables: `temperature`, the current temperature (a float)."""
    name = frame.get("name")
    if name == "temperature":
        return {"type": "reply", "value": float(thermostat.temperature)}
    return _not_found("variable", name)


def _not_found(what: str, name: object) -> dict[str, Any]:
    return {"type": "reply",
            "error": {"code": "not_found", "message": f"no {what} named {str(name)[:64]!r}"}}
