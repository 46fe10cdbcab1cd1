"""Importing devices into a product from a file of device IDs or a list."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal
from core import clock
from core.device_ids import normalize_device_id
from core.errors import Conflict, CoreCode, InvalidInput
from fleet import access, audit
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models.devices import Device
from models.organizations import Membership
from models.products import Product

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DEVICE_IDS = 100_000
# IDs per statement: each statement binds them as one parameter (see `_Statement`).
CHUNK_SIZE = 10_000


@dataclass
class DeviceImportResult:
    """What an import did with each distinct ID it was given, in the order given."""

    product: Product
    imported: list[str] = field(default_factory=list)
    already_in_product: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # malformed, or unknown to the registry
    protected: list[str] = field(default_factory=list)  # someone else's

    def counts(self) -> dict[str, int]:
        return {"imported": len(self.imported), "alreadyInProduct": len(self.already_in_product),
                "invalid": len(self.invalid), "protected": len(self.protected)}


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK_SIZE):
        yield items[start:start + CHUNK_SIZE]


class _Statement:
    """One SQL statement and its bound values, in the connection's dialect.

    A list of values is bound as a single parameter (an array on PostgreSQL, a JSON array read
    by `json_each` on SQLite), so a statement costs the same to build and send for ten IDs or
    ten thousand; the ORM would render one placeholder per ID."""

    def __init__(self, connection: BaseDBAsyncClient):
        self.connection = connection
        self.postgres = connection.capabilities.dialect == "postgres"
        self.values: list[object] = []

    def _bind(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.postgres else "?"

    def value(self, field_name: str, value: object) -> str:
        """A placeholder for a value of `Device.<field_name>`, converted as the ORM would."""
        return self._bind(Device._meta.fields_map[field_name].to_db_value(value, Device))

    def one_of(self, column: str, values: Collection[object], sql_type: str) -> str:
        """`column` is one of `values` (of SQL type `sql_type` on PostgreSQL)."""
        if self.postgres:
            return f"{column} = ANY({self._bind(list(values))}::{sql_type}[])"
        placeholder = self._bind(json.dumps(list(values)))
        return f"{column} IN (SELECT value FROM json_each({placeholder}))"  # noqa: S608

    async def fetch(self, sql: str) -> list[dict[str, Any]]:
        return await self.connection.execute_query_dict(sql, self.values)

    async def execute(self, sql: str) -> int:
        """Run the statement; the number of rows it changed."""
        changed, _ = await self.connection.execute_query(sql, self.values)
        return changed


def _decode_file(file_bytes: bytes) -> list[str]:
    if len(file_bytes) > MAX_FILE_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; "
                           "split it.", field="file", code=FleetCode.FILE_TOO_LARGE)
    not_text = InvalidInput("The file is binary: upload a .txt file with one device ID per "
                            "line.", field="file", code=FleetCode.BINARY_FILE)
    if b"\0" in file_bytes:
        raise not_text
    try:
        text = file_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise not_text from None
    return text.split("\n")


def _entries(device_ids: Iterable[str] | None, file_bytes: bytes | None) -> list[str]:
    """The non-blank, trimmed entries of the one source given, within the limits."""
    if (device_ids is None) == (file_bytes is None):
        raise InvalidInput("Give either a file or a list of device IDs, not both.",
                           field="file" if file_bytes is not None else "deviceIds",
                           code=FleetCode.FILE_OR_LIST)
    source = "deviceIds" if file_bytes is None else "file"
    lines = _decode_file(file_bytes) if file_bytes is not None else device_ids
    assert lines is not None  # exactly one source was given
    entries = [entry for entry in (line.strip() for line in lines) if entry]
    if len(entries) > MAX_DEVICE_IDS:
        raise InvalidInput(f"At most {MAX_DEVICE_IDS:,} device IDs per import; split the "
                           f"{'file' if source == 'file' else 'list'}.", field=source,
                           code=FleetCode.TOO_MANY_DEVICE_IDS)
    if not entries:
        raise InvalidInput("There are no device IDs to import.", field=source, code=CoreCode.EMPTY)
    return entries


async def import_devices(
    principal: AnyPrincipal,
    product_id: int,
    device_ids: Iterable[str] | None,
    file_bytes: bytes | None,
    *,
    force: bool,
    development: bool,
) -> DeviceImportResult:
    """Add devices to a product (developers and up), all or nothing. Devices in another
    product of the same organization move here; devices claimed by someone outside the team
    or in another organization's product are protected and left alone. Importing again
    changes nothing: the devices are already in the product."""
    member, product = await access.product_member(principal, product_id,
                                                  Permission.DEVICE_MANAGE)
    entries = _entries(device_ids, file_bytes)
    result = DeviceImportResult(product)

    # Each distinct entry, first occurrence first: canonical ID -> True, malformed -> False.
    distinct: dict[str, bool] = {}
    for entry in entries:
        device_id = normalize_device_id(entry)
        distinct.setdefault(entry if device_id is None else device_id, device_id is not None)

    # Tortoise types the rows of `values_list(flat=True)` as tuples; they are the values.
    team: set[int] = set(await Membership.filter(  # type: ignore[arg-type]
        organization_id=member.organization_id
    ).values_list("user_id", flat=True))
    own_products: set[int] = set(await Product.filter(  # type: ignore[arg-type]
        organization_id=member.organization_id
    ).values_list("id", flat=True))
    found: dict[str, tuple[int | None, int | None, str]] = {}
    for chunk in _chunks([key for key, valid in distinct.items() if valid]):
        query = _Statement(Device._meta.db)
        sql = ("SELECT id, claimed_by_id, product_id, quarantine FROM devices WHERE "  # noqa: S608
               + query.one_of("id", chunk, "varchar"))
        for row in await query.fetch(sql):
            found[row["id"]] = (row["claimed_by_id"], row["product_id"], row["quarantine"])

    to_import: list[str] = []
    for device_id in distinct:
        if device_id not in found:
            result.invalid.append(device_id)
            continue
        claimed_by, in_product, quarantine = found[device_id]
        if (claimed_by is not None and claimed_by not in team) or (
            in_product is not None and in_product not in own_products
        ):
            result.protected.append(device_id)
        elif in_product == product.id and quarantine == "NONE":
            result.already_in_product.append(device_id)
        else:
            to_import.append(device_id)

    now = clock.now()
    async with in_transaction() as connection:
        for chunk in _chunks(to_import):
            update = _Statement(connection)
            # A device moving in from another product leaves its customer behind there.
            assignments = ", ".join([
                *(f"{column} = CASE WHEN product_id = {update.value('product_id', product.id)} "
                  f"THEN {column} END" for column in ("customer_id", "claimed_at")),
                *(f"{column} = {update.value(column, value)}" for column, value in (
                    ("product_id", product.id), ("imported_at", now), ("import_forced", force),
                    ("development", development), ("quarantine", "NONE")))])
            # The conditions repeat the checks above, so a device claimed or moved since
            # cannot slip in; if any did, the whole import is undone.
            where = " AND ".join((
                update.one_of("id", chunk, "varchar"),
                f"(claimed_by_id IS NULL OR {update.one_of('claimed_by_id', team, 'bigint')})",
                f"(product_id IS NULL OR {update.one_of('product_id', own_products, 'bigint')})",
            ))
            # Only placeholders and fixed column names are interpolated.
            sql = f"UPDATE devices SET {assignments} WHERE {where}"  # noqa: S608
            if await update.execute(sql) != len(chunk):
                raise Conflict("Some devices changed while they were being imported; "
                               "nothing was imported. Try again.", code=FleetCode.CONCURRENT_CHANGE)
        result.imported = to_import
        await audit.record(member.principal, product.organization_id, "device.import",
                           product, label=product.name,
                           details={**result.counts(), "force": force,
                                    "development": development})
    return result
