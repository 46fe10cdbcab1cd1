"""The simulator (simulator/), the reference device client, against the real gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from auth import tokens
from auth.principals import UserPrincipal
from core import clock
from fleet import events, rpc
from fleet.demo import seed_demo_fleet
from fleet.products import create_product
from models.devices import Device, Event, LocationPoint
from models.products import Product
from simulator.activities import ACTIVITIES, temperature_event
from simulator.cli import add_arguments
from simulator.report import SimulationReport
from simulator.runner import SimulatorError, load_devices_csv, simulate
from tests.support.accounts import access_token, make_user, organization_with_team
from tests.support.graphql import graphql, run_mutation
from tests.support.metering import operations
from tests.support.servers import LiveServer

SECRET = "dc_ds_simulated-secret-"
DEADLINE = 15.0


@dataclass
class Fleet:
    owner: UserPrincipal
    product: Product
    imported: list[tuple[str, str]]  # in the product
    unowned: list[tuple[str, str]]  # in no product


async def _device(index: int, product: Product | None) -> tuple[str, str]:
    device_id, secret = f"{index:024x}", f"{SECRET}{index}"
    await Device.create(
        id=device_id,
        secret_hash=tokens.digest(secret),
        platform="Photon",
        provisioned_at=clock.now(),
        product_id=product.id if product else None,
        imported_at=clock.now() if product else None,
    )
    return device_id, secret


@pytest.fixture
async def fleet() -> Fleet:
    team = await organization_with_team(roles=("OWNER",))
    product = await create_product(
        team.principals["OWNER"], team.organization.id, name="Thermostat", slug=None,
        description="", platform="Photon", customer_auth="SIMPLE",
    )
    imported = [await _device(index, product) for index in range(1, 4)]
    unowned = [await _device(100, None)]
    return Fleet(team.principals["OWNER"], product, imported, unowned)


def device_url(live_server: LiveServer, port: int | None = None) -> str:
    url = live_server.url.replace("http://", "ws://", 1)
    if port is not None:
        url = url.rsplit(":", 1)[0] + f":{port}"
    return url + "/device/v1"


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail after DEADLINE seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {DEADLINE:g} s: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    url: str, devices: list[tuple[str, str]], **options
) -> AsyncIterator[tuple[asyncio.Task[SimulationReport], list[SimulationReport]]]:
    """The simulator in a task until the block ends; the task (for its report) and the
    progress snapshots it gave."""
    stop = asyncio.Event()
    snapshots: list[SimulationReport] = []
    options.setdefault("product_id", None)
    task = asyncio.create_task(
        simulate(url, devices, progress=snapshots.append, stop=stop, **options)
    )
    try:
        yield task, snapshots
    finally:
        stop.set()
        async with asyncio.timeout(DEADLINE):
            with contextlib.suppress(Exception):
                await asyncio.shield(task)


async def online(device_ids: list[str]) -> bool:
    return await Device.filter(id__in=device_ids, online=True).count() == len(device_ids)


async def test_devices_are_welcomed_and_online(live_server: LiveServer, fleet: Fleet) -> None:
    devices = fleet.imported + fleet.unowned
    ids = [device_id for device_id, _ in devices]
    async with running(
        device_url(live_server), devices, product_id=fleet.product.id,
        firmware_version="7", system_firmware_version="5.8.1",
    ) as (task, snapshots):
        await eventually(lambda: online(ids), "every device online")
        await eventually(lambda: _true(len(snapshots) > 0), "a progress snapshot")
        stored = await Device.filter(id__in=ids).order_by("id")
        assert {(d.firmware_version, d.system_firmware_version) for d in stored} == {
            ("7", "5.8.1")
        }
        assert stored[0].functions == ["reboot", "setTemp"]
        assert stored[0].variables == ["temperature"]
        unowned = await Device.get(id=fleet.unowned[0][0])
        assert (unowned.product_id, unowned.quarantine) == (fleet.product.id, "QUARANTINED")
    report = task.result()
    assert (report.devices, report.ever_welcomed, report.refused, report.reconnects) == (4, 4, 0, 0)
    assert report.all_welcomed_after is not None
    assert (report.connected, report.welcomed) == (0, 0)  # all closed at the end
    assert snapshots[-1] == report
    # Closing the connections took the devices offline.
    await eventually(
        lambda: _count(Device.filter(id__in=ids, online=True), 0), "every device offline"
    )


async def test_quarantine_is_reported(live_server: LiveServer, fleet: Fleet) -> None:
    async with running(
        device_url(live_server), fleet.unowned, product_id=fleet.product.id
    ) as (_, snapshots):
        await eventually(lambda: online([fleet.unowned[0][0]]), "the device online")
        await eventually(
            lambda: _true(any(s.quarantined == 1 for s in snapshots)), "quarantine reported"
        )


async def test_wrong_secret_is_refused_and_not_retried(
    live_server: LiveServer, fleet: Fleet
) -> None:
    device_id, _ = fleet.imported[0]
    async with asyncio.timeout(DEADLINE):
        # Every device refused: the simulation ends on its own, with no attempt repeated.
        report = await simulate(
            device_url(live_server), [(device_id, "dc_ds_wrong")], product_id=None,
            backoff_first=0.01,
        )
    assert (report.refused, report.reconnects, report.ever_welcomed) == (1, 0, 0)
    assert report.refusals == {device_id: "unauthorized"}
    assert not (await Device.get(id=device_id)).online


async def test_refused_device_does_not_stop_the_others(
    live_server: LiveServer, fleet: Fleet
) -> None:
    (bad_id, _), good = fleet.imported[0], fleet.imported[1]
    async with running(
        device_url(live_server), [(bad_id, "dc_ds_wrong"), good], product_id=fleet.product.id
    ) as (task, snapshots):
        await eventually(lambda: online([good[0]]), "the good device online")
        await eventually(
            lambda: _true(any(s.refused == 1 and s.welcomed == 1 for s in snapshots)),
            "one refused, one welcomed",
        )
    report = task.result()
    assert report.refusals == {bad_id: "unauthorized"}
    assert report.reconnects == 0


class DroppingProxy:
    """A TCP relay to the live server whose connections the test can cut at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.cut_before: bytes | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_server: bool
        ) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if from_server and self.cut_before is not None and self.cut_before in data:
                        self.cut_before = None
                        self.drop_all()
                        return
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def cut_before_next(self, pattern: bytes) -> None:
        """Drop every connection (as `drop_all`) instead of relaying the next data from the
        server that holds `pattern` (the server's frames are not masked)."""
        self.cut_before = pattern

    def drop_all(self) -> None:
        """Cut every relayed connection without a WebSocket close (as a network failure)."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_dropped_connection_is_retried(live_server: LiveServer, fleet: Fleet) -> None:
    device_id, secret = fleet.imported[0]
    proxy = DroppingProxy(int(live_server.url.rsplit(":", 1)[1]))
    port = await proxy.start()
    try:
        async with running(
            device_url(live_server, port), [(device_id, secret)], product_id=fleet.product.id,
            backoff_first=0.05,
        ) as (task, _):
            await eventually(lambda: online([device_id]), "the device online")
            first_session = (await Device.get(id=device_id)).session_id
            proxy.drop_all()
            await eventually(
                lambda: _reconnected(device_id, first_session), "online again, a new session"
            )
        report = task.result()
    finally:
        await proxy.close()
    assert proxy.accepted >= 2
    assert report.reconnects >= 1
    assert (report.ever_welcomed, report.refused) == (1, 0)


# --- events, function calls and variable reads ----------------------------------------------

PUBLISHING = [activity for activity in ACTIVITIES if activity.publishes]
TEMPERATURE_ONLY = [activity for activity in ACTIVITIES if activity.build is temperature_event]
MESSAGE_ID = re.compile(r"^([0-9a-f]{12})-([1-9][0-9]*)$")
EVENT_DATA = {
    "temperature": re.compile(r"^-?[0-9]+\.[0-9]{2}$"),
    "status/battery": re.compile(r"^(100|[1-9]?[0-9])$"),
    "status/rssi": re.compile(r"^-(4[0-9]|[5-8][0-9]|90)$"),
}


async def stored_events(device_ids: list[str]) -> list[tuple[str, str, str, int | None, bool,
                                                              str]]:
    """The devices' own events (not the cloud's `spark/status`), oldest first."""
    return list(
        await Event.filter(device_id__in=device_ids).exclude(name="spark/status").order_by("id")
        .values_list("device_id", "name", "data", "product_id", "private", "message_id")
    )


def counters(message_ids: list[str]) -> tuple[set[str], list[int]]:
    """The runs and the sorted counters of `<run>-<n>` message IDs."""
    matches = [MESSAGE_ID.match(message_id) for message_id in message_ids]
    assert all(matches), message_ids
    return {m.group(1) for m in matches if m}, sorted(int(m.group(2)) for m in matches if m)


async def at_least(query, count: int) -> bool:
    return await query.count() >= count


async def test_devices_publish_events_that_are_stored(
    live_server: LiveServer, fleet: Fleet
) -> None:
    ids = [device_id for device_id, _ in fleet.imported]
    own_events = Event.filter(device_id__in=ids).exclude(name="spark/status")
    # 2 events a second per device: the first 4 at once (the cloud's burst), then paced.
    async with running(
        device_url(live_server), fleet.imported, product_id=fleet.product.id, rate=6.0,
        activities=PUBLISHING,
    ) as (task, _):
        await eventually(lambda: at_least(own_events, 15), "15 events stored")
    report = task.result()
    stored = await stored_events(ids)
    # What was acknowledged is what is stored; nothing was refused, dropped or sent twice.
    assert len(stored) == report.events_acknowledged
    assert report.events_published == report.events_acknowledged + report.events_pending
    assert (report.events_rate_limited, report.events_refused, report.events_dropped,
            report.events_retransmitted, report.cloud_errors) == (0, 0, 0, 0, 0)
    runs: set[str] = set()
    for device_id in ids:
        mine = [row for row in stored if row[0] == device_id]
        device_runs, numbers = counters([row[5] for row in mine])
        runs |= device_runs
        assert numbers == list(range(1, len(mine) + 1))  # each message ID once, no gap
    assert len(runs) == 1  # one prefix for the run
    for _, name, data, product_id, private, _ in stored:
        assert (name in EVENT_DATA, product_id, private) == (True, fleet.product.id, True)
        assert EVENT_DATA[name].match(data), (name, data)
    assert {row[1] for row in stored} <= set(EVENT_DATA)
    # Each of these small events cost one data operation, counted as it was stored.
    assert [await operations(device_id) for device_id in ids] == [
        sum(row[0] == device_id for row in stored) for device_id in ids]


async def test_devices_subscribe_and_acknowledge_what_is_delivered(
    live_server: LiveServer, fleet: Fleet
) -> None:
    async with running(
        device_url(live_server), fleet.imported, product_id=fleet.product.id, rate=0.0,
        subscribe=["door/", "alarm"],
    ) as (task, snapshots):
        await eventually(lambda: _true(bool(snapshots) and snapshots[-1].subscriptions == 6),
                         "every device subscribed to both prefixes")
        for name in ("door/open", "alarm", "humidity"):
            await events.publish_from_server(fleet.owner, fleet.product.id, name=name,
                                             data="1", private=True)
        # Two of the three match, for each of the three devices; each delivery is
        # acknowledged, so none comes twice.
        await eventually(lambda: _true(snapshots[-1].deliveries == 6), "6 deliveries")
    report = task.result()
    assert (report.subscriptions, report.deliveries, report.cloud_errors) == (6, 6, 0)
    assert report.summary().endswith("; 6 subscriptions, 6 deliveries received")


async def test_at_most_four_good_prefixes_are_subscribed(fleet: Fleet) -> None:
    for prefixes in (["a", "b", "c", "d", "e"], ["temp erature"], ["x" * 65]):
        with pytest.raises(SimulatorError, match="at most 4 prefixes"):
            await simulate("ws://127.0.0.1:1/device/v1", fleet.imported, product_id=None,
                           subscribe=prefixes)


async def test_function_calls_and_variable_reads_are_answered(
    live_server: LiveServer, fleet: Fleet
) -> None:
    device_id, secret = fleet.imported[0]
    owner = fleet.owner
    async with (
        running(device_url(live_server), [(device_id, secret)], product_id=fleet.product.id)
        as (task, _),
        live_server.client() as http,
    ):
        await eventually(lambda: online([device_id]), "the device online")
        assert await rpc.call_function(owner, device_id, "setTemp", "23.5") == 1
        assert await rpc.read_variable(owner, device_id, "temperature") == 23.5
        assert await rpc.call_function(owner, device_id, "setTemp", "warm") == -1
        assert await rpc.call_function(owner, device_id, "reboot", "") == 0
        assert await rpc.read_variable(owner, device_id, "temperature") == 23.5
        # Names the device does not have reach it only past the cloud's own check.
        session_id = (await Device.get(id=device_id)).session_id
        assert session_id is not None
        for kind, name, message in (
            (rpc.Kind.CALL, "selfDestruct", "no function named 'selfDestruct'"),
            (rpc.Kind.GET, "humidity", "no variable named 'humidity'"),
        ):
            with pytest.raises(rpc.DeviceFailed) as raised:
                await rpc.router().request(rpc.Request(kind, device_id, session_id, name))
            assert (raised.value.failure, raised.value.message) == (
                rpc.Failure.NOT_FOUND, message)
        # The same through the GraphQL API.
        token = await access_token(fleet.owner.user.email)
        payload = await run_mutation(
            http, "callFunction", "CallFunctionInput",
            {"deviceId": device_id, "name": "setTemp", "argument": "19.25"}, "returnValue",
            token=token,
        )
        assert payload == {"returnValue": 1, "userErrors": []}
        body = await graphql(
            http, "query($id: String!) { device(deviceId: $id) { variable(name: \"temperature\")"
            " { name value userErrors { code } } } }", {"id": device_id}, token=token,
        )
        assert body["data"] == {"device": {"variable": {
            "name": "temperature", "value": 19.25, "userErrors": []}}}
    report = task.result()
    assert (report.calls_answered, report.reads_answered) == (5, 4)
    assert report.events_published == 0


async def test_an_event_whose_ack_was_lost_is_sent_again_and_stored_once(
    live_server: LiveServer, fleet: Fleet
) -> None:
    device_id, secret = fleet.imported[0]
    proxy = DroppingProxy(int(live_server.url.rsplit(":", 1)[1]))
    port = await proxy.start()
    try:
        async with running(
            device_url(live_server, port), [(device_id, secret)], product_id=fleet.product.id,
            rate=2.0, activities=TEMPERATURE_ONLY, backoff_first=0.05,
        ) as (task, snapshots):
            await eventually(lambda: online([device_id]), "the device online")
            # The next event is stored, but its ack never reaches the device.
            proxy.cut_before_next(b'"type":"ack"')
            await eventually(
                lambda: _true(any(s.events_retransmitted == 1 and s.events_acknowledged >= 3
                                  for s in snapshots)),
                "an event sent again, and acknowledged events after it",
            )
        report = task.result()
    finally:
        await proxy.close()
    assert proxy.cut_before is None  # the cut happened
    assert (report.reconnects, report.events_retransmitted) == (1, 1)
    stored = await stored_events([device_id])
    # Every event acknowledged once, the one sent twice included, and stored once.
    assert len(stored) == report.events_acknowledged
    assert report.events_published == report.events_acknowledged + report.events_pending
    _, numbers = counters([row[5] for row in stored])
    assert numbers == list(range(1, len(stored) + 1))
    assert {row[1] for row in stored} == {"temperature"}


async def test_an_event_the_cloud_could_not_store_is_sent_again(
    live_server: LiveServer, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    device_id, secret = fleet.imported[0]
    record = events.record
    failures: list[str] = []

    async def fail_once(new_events: Sequence[events.NewEvent]) -> list[events.LiveEvent | None]:
        message_id = new_events[0].message_id
        if not failures and message_id is not None:  # the device's first event
            failures.append(message_id)
            raise events.EventsUnavailable("The event could not be stored; publish it again.")
        return await record(new_events)

    monkeypatch.setattr(events, "record", fail_once)
    async with running(
        device_url(live_server), [(device_id, secret)], product_id=fleet.product.id,
        rate=2.0, activities=TEMPERATURE_ONLY,
    ) as (task, snapshots):
        await eventually(
            lambda: _true(any(s.events_retransmitted == 1 and s.events_acknowledged >= 2
                              for s in snapshots)),
            "the refused event sent again and acknowledged",
        )
    report = task.result()
    stored = await stored_events([device_id])
    assert (report.events_retransmitted, report.reconnects, report.cloud_errors) == (1, 0, 1)
    assert len(stored) == report.events_acknowledged
    assert report.events_published == report.events_acknowledged + report.events_pending
    # The first event was refused, then stored under the same message ID, once.
    assert failures == [stored[0][5]]
    _, numbers = counters([row[5] for row in stored])
    assert numbers == list(range(1, len(stored) + 1))


async def test_rate_limited_events_are_counted_and_not_sent_again(
    live_server: LiveServer, fleet: Fleet
) -> None:
    device_id, secret = fleet.imported[0]
    # 20 events a second, not paced: beyond the cloud's 1 a second with bursts of 4.
    async with running(
        device_url(live_server), [(device_id, secret)], product_id=fleet.product.id,
        rate=20.0, activities=TEMPERATURE_ONLY, event_rate=None,
    ) as (task, snapshots):
        await eventually(
            lambda: _true(any(s.events_rate_limited >= 5 for s in snapshots)),
            "events refused for the rate limit",
        )
    report = task.result()
    stored = await stored_events([device_id])
    assert len(stored) == report.events_acknowledged >= 4
    assert report.events_published == (
        report.events_acknowledged + report.events_rate_limited + report.events_pending)
    assert report.events_retransmitted == 0
    assert report.cloud_errors == report.events_rate_limited
    # The cloud counted the same refusals on the device.
    await eventually(
        lambda: _count(Device.filter(id=device_id,
                                     rate_limited_events=report.events_rate_limited), 1),
        "the refusals counted on the device",
    )


def test_simulate_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--devices", "d.csv"])
    assert (args.rate, args.event_rate, args.event_burst) == (None, 1.0, 4)
    args = parser.parse_args(["--devices", "d.csv", "--rate", "max", "--event-rate", "50",
                              "--event-burst", "10"])
    assert (args.rate, args.event_rate, args.event_burst) == (math.inf, 50.0, 10)
    assert parser.parse_args(["--devices", "d.csv", "--rate", "2.5"]).rate == 2.5
    for bad in (["--rate", "-1"], ["--rate", "fast"], ["--event-burst", "0"],
                ["--event-rate", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--devices", "d.csv", *bad])


def test_the_summary_counts_events_and_requests() -> None:
    report = SimulationReport(
        devices=2, connected=2, welcomed=2, events_published=9, events_acknowledged=6,
        events_rate_limited=1, events_retransmitted=1, events_pending=2, calls_answered=3,
        reads_answered=1,
    )
    assert report.summary() == (
        "2 devices: 2 connected, 2 welcomed, 0 quarantined, 0 refused, 0 reconnects;"
        " events: 9 published, 6 acknowledged, 1 rate-limited, 1 retransmitted, 2 pending;"
        " answered 3 function calls, 1 variable reads"
    )


async def _reconnected(device_id: str, first_session: str | None) -> bool:
    device = await Device.get(id=device_id)
    return device.online and device.session_id not in (None, first_session)


async def _true(value: bool) -> bool:
    return value


async def _count(query, expected: int) -> bool:
    return await query.count() == expected


async def test_demo_fleet_goes_online(live_server: LiveServer, tmp_path: Path) -> None:
    await make_user("demo@devicecloud.example")
    csv_path = tmp_path / "data" / "demo-devices.csv"
    demo = await seed_demo_fleet("demo@devicecloud.example", csv_path, count=3)
    assert demo.provisioned
    assert csv_path.stat().st_mode & 0o777 == 0o600
    assert (demo.organization.name, demo.product.name) == ("Demo Org", "Demo Thermostat")
    assert (demo.product.platform, demo.product.customer_auth) == ("Photon", "SIMPLE")
    devices = load_devices_csv(csv_path)
    assert devices == demo.devices
    ids = [device_id for device_id, _ in devices]
    assert await Device.filter(id__in=ids, product_id=demo.product.id).count() == 3
    async with running(device_url(live_server), devices, product_id=demo.product.id):
        await eventually(lambda: online(ids), "the demo devices online")
    # Seeding again reuses the organization, the product and the devices in the file.
    again = await seed_demo_fleet("demo@devicecloud.example", csv_path, count=3)
    assert not again.provisioned
    assert (again.organization.id, again.product.id, again.devices) == (
        demo.organization.id, demo.product.id, demo.devices
    )


# --- the devices file ---------------------------------------------------------------------


def test_devices_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_bytes(
        b"\xef\xbb\xbfdevice_id,secret\r\n"
        b"0123456789ABCDEF01234567,dc_ds_one\r\n"
        b"\r\n"
        b" 00000000000000000000000a , dc_ds_two\r\n"
    )
    assert load_devices_csv(path) == [
        ("0123456789abcdef01234567", "dc_ds_one"),
        ("00000000000000000000000a", "dc_ds_two"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the first line must be the header 'device_id,secret'"),
        ("0123456789abcdef01234567,s\n", "the first line must be the header"),
        ("device_id,secret\n", "lists no devices"),
        ("device_id,secret\n0123456789abcdef0123456,s\n", "line 2: '0123456789abcdef0123456'"
         " is not a device ID"),
        ("device_id,secret\n0123456789abcdef0123456g,s\n", "is not a device ID"),
        ("device_id,secret\n0123456789abcdef01234567\n", "line 2: expected 2 columns"),
        ("device_id,secret\n0123456789abcdef01234567,s,x\n", "expected 2 columns"),
        ("device_id,secret\n0123456789abcdef01234567,\n", "line 2: the secret is empty"),
        ("device_id,secret\n0123456789abcdef01234567,a\n0123456789ABCDEF01234567,b\n",
         "line 3: device 0123456789abcdef01234567 is listed twice"),
    ],
)
def test_malformed_devices_csv_is_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(content)
    with pytest.raises(SimulatorError) as raised:
        load_devices_csv(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_unreadable_devices_file(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="cannot read"):
        load_devices_csv(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SimulatorError, match="not a UTF-8 text file"):
        load_devices_csv(binary)


async def test_devices_send_location_points_that_are_stored(
    live_server: LiveServer, fleet: Fleet
) -> None:
    ids = [device_id for device_id, _ in fleet.imported]
    frames = LocationPoint.filter(device_id__in=ids).distinct().values_list(
        "device_id", "message_id")
    # No other activity: only pings and location frames, 6 a second across the fleet.
    async with running(
        device_url(live_server), fleet.imported, product_id=fleet.product.id, rate=0.0,
        location_rate=6.0,
    ) as (task, snapshots):
        async def enough() -> bool:
            return len(await frames) >= 8

        await eventually(enough, "8 location frames stored")
    report = task.result()
    assert report.locations_acknowledged >= 8
    assert (report.locations_refused, report.cloud_errors, report.events_published) == (0, 0, 0)
    stored = await frames
    # What was acknowledged is stored; a frame in flight when the run stopped may be stored
    # without its ack having been counted (at most one per device).
    assert report.locations_acknowledged <= len(stored) <= report.locations_acknowledged + len(ids)
    assert len(stored) <= report.locations_sent <= report.locations_acknowledged + len(ids)
    points = await LocationPoint.filter(device_id__in=ids).values_list("product_id", "position")
    assert {product_id for product_id, _ in points} == {fleet.product.id}
    assert max(position for _, position in points) <= 4  # 1 to 5 points a frame
    assert report.location_points_acknowledged <= len(points)
    assert "locations: " in snapshots[-1].summary()
    message_ids = {message_id for _, message_id in stored}
    assert all(re.fullmatch(r"[0-9a-f]{12}-loc-\d+", message_id) for message_id in message_ids)
