"""The command line of the simulator: `devicecloud simulate` (and `python -m simulator`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

from websockets.exceptions import InvalidURI

from simulator.activities import DEFAULT_FIRMWARE_VERSION, DEFAULT_SYSTEM_FIRMWARE_VERSION
from simulator.protocol import DEVICE_EVENT_BURST, DEVICE_EVENT_RATE, MAX_SUBSCRIPTIONS
from simulator.report import ProgressDisplay, SimulationReport
from simulator.runner import (
    CONNECTS_PER_SECOND,
    SimulatorError,
    load_devices_csv,
    raise_open_file_limit,
    simulate,
)

DEFAULT_URL = "ws://127.0.0.1:8000/device/v1"
DEFAULT_ACTIVITY_INTERVAL = 10.0  # seconds between a device's own frames, on average


def _claim_code(text: str) -> str:
    if not 1 <= len(text) <= 64:
        raise argparse.ArgumentTypeError("a claim code is 1 to 64 characters")
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _rate(text: str) -> float:
    if text.strip().lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, nor 'max'") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _location_rate(text: str) -> float:
    value = _rate(text)
    if math.isinf(value):
        raise argparse.ArgumentTypeError("must be a number of frames per second")
    return value


def _burst(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `devicecloud simulate`."""
    parser.description = (
        "Connect simulated thermostats to the device gateway and keep them online. They publish"
        " events (temperature, status/battery, status/rssi), with --location-rate location"
        " points, and now and then report an error,"
        " answer function calls (reboot, setTemp) and variable reads (temperature), and"
        " send again, under the same message ID, every event not acknowledged. The counts are"
        " shown as they change and printed at the end."
    )
    parser.add_argument("--devices", required=True, type=Path, metavar="FILE.csv",
                        help="device_id,secret rows (as `devices provision` writes them)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the device gateway (default: {DEFAULT_URL})")
    parser.add_argument("--product-id", type=int, default=None, metavar="N",
                        help="the product ID the firmware reports (default: none)")
    parser.add_argument("--rate", type=_rate, default=None, metavar="R",
                        help="frames per second the whole fleet sends on its own (events and"
                             " error reports), or 'max': every device publishes its next event"
                             " once the last is acknowledged, within --event-rate (default:"
                             f" one frame per device every {DEFAULT_ACTIVITY_INTERVAL:g} s;"
                             " 0: none)")
    parser.add_argument("--location-rate", type=_location_rate, default=0.0, metavar="L",
                        help="location frames per second the whole fleet sends (1 to 5 points"
                             " each, along a wandering track), within --event-rate (default:"
                             " 0, none)")
    parser.add_argument("--event-rate", type=_positive_float, default=DEVICE_EVENT_RATE,
                        metavar="E",
                        help="events per second each device keeps under, the cloud's"
                             f" DEVICE_EVENT_RATE (default: {DEVICE_EVENT_RATE:g})")
    parser.add_argument("--event-burst", type=_burst, default=DEVICE_EVENT_BURST, metavar="B",
                        help="the bursts of events each device keeps under, the cloud's"
                             f" DEVICE_EVENT_BURST (default: {DEVICE_EVENT_BURST})")
    parser.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                        help="stop after S seconds (default: run until interrupted)")
    parser.add_argument("--firmware-version", default=DEFAULT_FIRMWARE_VERSION)
    parser.add_argument("--system-firmware-version", default=DEFAULT_SYSTEM_FIRMWARE_VERSION)
    parser.add_argument("--connect-rate", type=_positive_float, default=CONNECTS_PER_SECOND,
                        metavar="N", help="new connections per second at most (default: 200)")
    parser.add_argument("--claim-code", type=_claim_code, default=None, metavar="CODE",
                        help="a customer's claim code, presented in every hello: the first"
                             " device of the customer's product to present it becomes the"
                             " customer's (use with a one-device CSV)")
    parser.add_argument("--subscribe", action="append", default=[], metavar="PREFIX",
                        help="an event-name prefix every device subscribes to after each"
                             " welcome, acknowledging the events of its product delivered to"
                             f" it (repeat for up to {MAX_SUBSCRIPTIONS}; '' for every name)")


def run_from_args(args: argparse.Namespace) -> None:
    """`devicecloud simulate`: run until the duration ends or Ctrl-C, then print the counts.
    Exits with status 1 if any device was refused, or none was welcomed."""
    try:
        devices = load_devices_csv(args.devices)
    except SimulatorError as error:
        sys.exit(f"simulate: {error}")
    raise_open_file_limit(len(devices) + 256)
    display = ProgressDisplay()

    async def run() -> SimulationReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        return await simulate(
            args.url,
            devices,
            product_id=args.product_id,
            rate=len(devices) / DEFAULT_ACTIVITY_INTERVAL if args.rate is None else args.rate,
            duration=args.duration,
            firmware_version=args.firmware_version,
            system_firmware_version=args.system_firmware_version,
            progress=display,
            connects_per_second=getattr(args, "connect_rate", CONNECTS_PER_SECOND),
            stop=stop,
            event_rate=args.event_rate,
            event_burst=args.event_burst,
            claim_code=getattr(args, "claim_code", None),
            location_rate=getattr(args, "location_rate", 0.0),
            subscribe=getattr(args, "subscribe", []),
        )

    try:
        report = asyncio.run(run())
    except (SimulatorError, InvalidURI) as error:
        display.finish()
        sys.exit(f"simulate: {error}")
    display.finish()
    print(report.summary())
    for device_id, reason in _first(report.refusals.items(), 20):
        print(f"  {device_id}: {reason}", file=sys.stderr)
    if len(report.refusals) > 20:
        print(f"  … and {len(report.refusals) - 20} more", file=sys.stderr)
    if report.refused:
        sys.exit(1)
    if not report.ever_welcomed:
        sys.exit(f"simulate: no device was welcomed by {args.url}.")


def _first(items: Iterable[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    return [item for _, item in zip(range(count), items, strict=False)]


def main(argv: list[str] | None = None) -> None:
    """`python -m simulator`, the same as `devicecloud simulate`."""
    parser = argparse.ArgumentParser(prog="devicecloud simulate")
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
