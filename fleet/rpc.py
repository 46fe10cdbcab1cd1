"""Function calls and variable reads: from whoever asks, through the broker, to the process
that holds the device's connection, to the device, and back.

A device's session ID starts with the ID of the process holding its connection
(`<process>.<random>`), so a request goes straight to that process's broker channel. The
gateway there sends the device a `call` or `get` frame and publishes the device's answer to
the asking process's channel. Every outcome is one of: the answer, `DEVICE_OFFLINE`,
`FUNCTION_NOT_FOUND` / `VARIABLE_NOT_FOUND`, `DEVICE_FAILED`, `TIMED_OUT`, or
`DATA_LIMIT_REACHED` (the organization's devices are paused: the device is not asked).

Metering: only an answered request counts. A request the device answered (with a value, or
with a failure of its own) is one `FUNCTION_CALL` or `VARIABLE_READ` of the device's product
(`core.metering`), committed by the asking process before the caller gets the outcome. One the
device did not answer is none: never sent (offline, a name it did not announce, paused), or
sent and unanswered in time (`TIMED_OUT`: the frame was written, so the function may have run
on the device, and it is not counted). If the count cannot be committed (the database is
down), the caller gets `UNAVAILABLE` instead of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auth.principals import AnyPrincipal
from core import clock
from core.broker import PROCESS_ID, Broker, BrokerUnavailable
from core.errors import (
    Conflict,
    InvalidInput,
    LimitReached,
    NotFound,
    TimedOut,
    Unavailable,
    UpstreamFailed,
)
from core.metering import Metered, OperationKind, meter
from fleet import access
from fleet.errors import FleetCode
from fleet.pauses import pause_of
from models.devices import Device

log = logging.getLogger("devicecloud.rpc")

ARGUMENT_MAX = 1024  # characters
Value = bool | int | float | str


class Kind(StrEnum):
    CALL = "call"  # a function: `name(argument)` returns an integer
    GET = "get"  # a variable: `name` has a value


class DeviceOffline(Conflict):
    code = FleetCode.DEVICE_OFFLINE


def process_channel(process_id: str) -> str:
    return f"process:{process_id}"


def new_session_id() -> str:
    """A connection's session ID, naming the process that holds the connection."""
    return f"{PROCESS_ID}.{secrets.token_hex(16)}"


def process_of(session_id: str) -> str:
    return session_id.rpartition(".")[0]


@dataclass(frozen=True)
class Request:
    kind: Kind
    device_id: str
    session_id: str
    name: str
    argument: str = ""


class Failure(StrEnum):
    """Why a device could not answer, as the gateway reports it."""

    OFFLINE = "DEVICE_OFFLINE"
    NOT_FOUND = "NOT_FOUND"
    TIMED_OUT = "TIMED_OUT"
    FAILED = "FAILED"


class DeviceFailed(Exception):
    """The gateway could not get an answer from the device (see `Failure`). `answered`: the
    device itself answered with the failure (the request reached it)."""

    def __init__(self, failure: Failure, message: str = "", *, answered: bool = False):
        super().__init__(message or failure.value)
        self.failure = failure
        self.message = message
        self.answered = answered


# What the gateway does with a request for a device it holds: the device's answer, or
# `DeviceFailed`.
Handler = Callable[[Request, float], Awaitable[Value]]
# What the gateway does when told that a connection was replaced by one in another process.
CloseHandler = Callable[[str, str], Awaitable[None]]


class Router:
    """This process's end of device requests and gateway commands, on its broker channel."""

    def __init__(self, broker: Broker, timeout: float):
        self.broker = broker
        self.timeout = timeout
        self.handler: Handler | None = None
        self.close_handler: CloseHandler | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Router]:
        async with self.broker.subscribed(process_channel(PROCESS_ID), self._on_message):
            try:
                yield self
            finally:
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.wait(list(self._tasks))

    async def request(self, request: Request) -> Value:
        """Ask the device (through whichever process holds it) and wait for its answer."""
        ticket = secrets.token_hex(12)
        answered = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = answered
        message = {
            "op": "request",
            "ticket": ticket,
            "from": PROCESS_ID,
            "kind": request.kind.value,
            "deviceId": request.device_id,
            "sessionId": request.session_id,
            "name": request.name,
            "argument": request.argument,
            "timeout": self.timeout,
        }
        try:
            try:
                receivers = await self.broker.publish(
                    process_channel(process_of(request.session_id)), _encode(message)
                )
            except BrokerUnavailable as error:
                raise DeviceOffline("The device cannot be reached right now.") from error
            if not receivers:  # the process that held the connection is gone
                raise DeviceOffline("The device is offline.", field="deviceId")
            try:
                # A little longer than the gateway's own wait, so its answer wins.
                async with asyncio.timeout(self.timeout + 1):
                    reply = await answered
            except TimeoutError:
                raise TimedOut(
                    f"The device did not answer within {self.timeout:g} seconds."
                ) from None
        finally:
            self._waiting.pop(ticket, None)
        if "failure" in reply:
            raise DeviceFailed(Failure(reply["failure"]), reply.get("message", ""),
                               answered=reply.get("answered", False))
        return reply["value"]

    async def close_elsewhere(self, device_id: str, session_id: str) -> None:
        """Tell the process holding `session_id` that its connection was replaced."""
        if process_of(session_id) == PROCESS_ID:
            return
        message = {"op": "close", "deviceId": device_id, "sessionId": session_id}
        try:
            await self.broker.publish(process_channel(process_of(session_id)), _encode(message))
        except BrokerUnavailable:
            log.warning("could not close a replaced connection", extra={"device": device_id})

    def _on_message(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("unreadable message on the process channel")
            return
        op = message.get("op")
        if op == "reply":
            waiting = self._waiting.get(message.get("ticket", ""))
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
        elif op == "request":
            self._spawn(self._answer(message))
        elif op == "close" and self.close_handler is not None:
            self._spawn(self.close_handler(message["deviceId"], message["sessionId"]))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"op": "reply", "ticket": message["ticket"]}
        request = Request(
            kind=Kind(message["kind"]),
            device_id=message["deviceId"],
            session_id=message["sessionId"],
            name=message["name"],
            argument=message.get("argument", ""),
        )
        try:
            if self.handler is None:
                raise DeviceFailed(Failure.OFFLINE)
            reply["value"] = await self.handler(request, float(message["timeout"]))
        except DeviceFailed as failed:
            reply.update(failure=failed.failure.value, message=failed.message,
                         answered=failed.answered)
        except Exception:
            log.exception("answering a device request failed")
            reply.update(failure=Failure.FAILED.value, message="The cloud failed.")
        try:
            await self.broker.publish(process_channel(message["from"]), _encode(reply))
        except BrokerUnavailable:
            log.warning("could not return a device's answer", extra={"ticket": message["ticket"]})


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


# The routers of the apps running in this process, the latest last (normally just one).
_installed: list[Router] = []


@contextlib.contextmanager
def installed(router: Router) -> Iterator[None]:
    """Make `router` this process's router while the block (the app's lifespan) runs."""
    _installed.append(router)
    try:
        yield
    finally:
        _installed.remove(router)


def router() -> Router:
    if not _installed:
        raise DeviceOffline("The device gateway is not running in this process.")
    return _installed[-1]


async def _count(device: Device, kind: Kind) -> None:
    """Commit the data operation of a request the device answered (none for a device in no
    product); a request that timed out is not counted, though it was sent."""
    if device.product_id is None:
        return
    operation = OperationKind.FUNCTION_CALL if kind is Kind.CALL else OperationKind.VARIABLE_READ
    try:
        await meter().record([Metered(operation, device.product_id, device.id, clock.now())])
    except Exception as error:
        log.exception("recording a device request failed", extra={"device": device.id})
        raise Unavailable("The device answered, but the cloud could not record it (storage "
                          "failed), so its answer is not returned.") from error


async def _ask(device: Device, kind: Kind, name: str, argument: str = "") -> Value:
    missing_code = (
        FleetCode.FUNCTION_NOT_FOUND if kind is Kind.CALL else FleetCode.VARIABLE_NOT_FOUND
    )
    what = "function" if kind is Kind.CALL else "variable"
    pause = pause_of(device.product_id)
    if pause is not None:
        raise LimitReached(pause.message, code=FleetCode.DATA_LIMIT_REACHED)
    if not device.online or device.session_id is None:
        raise DeviceOffline("The device is offline.", field="deviceId")
    exposed = device.functions if kind is Kind.CALL else device.variables
    if name not in (exposed or ()):
        raise NotFound(f"The device has no {what} named {name!r}.", field="name",
                       code=missing_code)
    try:
        value = await router().request(
            Request(kind, device.id, device.session_id, name, argument)
        )
    except DeviceFailed as failed:
        if failed.answered:
            await _count(device, kind)
        if failed.failure is Failure.OFFLINE:
            raise DeviceOffline("The device is offline.", field="deviceId") from None
        if failed.failure is Failure.NOT_FOUND:
            raise NotFound(f"The device has no {what} named {name!r}.", field="name",
                           code=missing_code) from None
        if failed.failure is Failure.TIMED_OUT:
            raise TimedOut(failed.message or "The device did not answer in time.") from None
        raise UpstreamFailed(
            failed.message or f"The device could not answer the {what}.",
            code=FleetCode.DEVICE_FAILED,
        ) from None
    await _count(device, kind)
    # JSON has no NaN or Infinity, yet Python's json reads them from a device's reply (and
    # writes them back, as no JSON client could read them).
    if isinstance(value, float) and not math.isfinite(value):
        raise UpstreamFailed("The device answered with a value that is not a finite number.",
                          code=FleetCode.DEVICE_FAILED)
    return value


async def call_function(
    principal: AnyPrincipal, device_id: str, name: str, argument: str
) -> int:
    """Call the device's function `name` with `argument` (at most 1024 characters) and return
    the integer it returns."""
    if len(argument) > ARGUMENT_MAX:
        raise InvalidInput(
            f"The argument is {len(argument)} characters; the limit is {ARGUMENT_MAX}.",
            field="argument",
            code=FleetCode.ARGUMENT_TOO_LONG,
        )
    device = await access.callable_device(principal, device_id)
    value = await _ask(device, Kind.CALL, name, argument)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UpstreamFailed("The device answered the call with something other than an "
                          "integer.", code=FleetCode.DEVICE_FAILED)
    return value


async def read_variable(principal: AnyPrincipal, device_id: str, name: str) -> Value:
    """Read the device's variable `name`: a boolean, a number or a string."""
    return await read_variable_of(await access.callable_device(principal, device_id), name)


async def read_variable_of(device: Device, name: str) -> Value:
    """`read_variable` of a device already checked (`access.callable_devices`, for a page of
    devices at once)."""
    return await _ask(device, Kind.GET, name)
