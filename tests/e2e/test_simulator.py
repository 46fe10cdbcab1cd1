"""The simulator (api/simulator.py), the reference device client, against the real gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.simulator import SimulationReport, SimulatorError, load_devices_csv, simulate
from auth import tokens
from core import clock
from fleet.demo import seed_demo_fleet
from fleet.products import create_product
from models.devices import Device
from models.products import Product
from tests.conftest import LiveServer
from tests.helpers import make_user, organization_with_team

SECRET = "dc_ds_simulated-secret-"
DEADLINE = 15.0


@dataclass
class Fleet:
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
    return Fleet(product, imported, unowned)


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

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

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
