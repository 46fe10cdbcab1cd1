"""Devices, the errors they report, and the events they (and the cloud) publish."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.accounts import User
    from models.customers import ClaimCode, Customer
    from models.products import Product


class Quarantine(StrEnum):
    """Where a device stands with the product in `Device.product` (`Device.quarantine`)."""

    NONE = "NONE"  # the product's device
    QUARANTINED = "QUARANTINED"  # reported the product's ID unannounced; awaits a decision
    DENIED = "DENIED"  # refused by the product's team; the gateway turns it away


class Device(Model):
    """A device from the factory: its ID never changes and its secret is stored hashed.

    `product` is the product the device belongs to, or whose quarantine it sits in
    (`quarantine` QUARANTINED), or which refused it (`quarantine` DENIED)."""

    id = fields.CharField(max_length=24, primary_key=True)
    secret_hash = fields.CharField(max_length=64)
    platform = fields.CharField(max_length=40)
    provisioned_at = fields.DatetimeField()
    claimed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="claimed_devices", null=True, on_delete=fields.SET_NULL
    )
    claimed_by_id: int | None
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="devices", null=True, on_delete=fields.SET_NULL
    )
    product_id: int | None
    imported_at = fields.DatetimeField(null=True)
    import_forced = fields.BooleanField(default=False)
    development = fields.BooleanField(default=False)
    iccid = fields.CharField(max_length=22, null=True,
                             description="a cellular device's SIM (its changes: sim_changes)")
    quarantine = fields.CharField(max_length=12, default="NONE")
    denied_by: fields.JSONField[list[int]] = fields.JSONField(
        default=list, description="IDs of products that denied it"
    )
    name = fields.CharField(max_length=100, default="")
    notes = fields.TextField(default="")
    firmware_version = fields.CharField(max_length=64, null=True)
    system_firmware_version = fields.CharField(max_length=64, null=True)
    functions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    variables: fields.JSONField[list[str]] = fields.JSONField(default=list)
    online = fields.BooleanField(default=False)
    session_id = fields.CharField(max_length=64, null=True)
    last_heard_at = fields.DatetimeField(null=True)
    first_online_at = fields.DatetimeField(null=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="devices", null=True, on_delete=fields.SET_NULL
    )
    customer_id: int | None
    claimed_at = fields.DatetimeField(null=True, description="when its customer claimed it")
    rate_limited_events = fields.IntField(
        default=0, db_default=0, description="publishes refused for going over the rate limit"
    )

    errors: fields.ReverseRelation[DeviceError]
    events: fields.ReverseRelation[Event]
    claim_codes: fields.ReverseRelation[ClaimCode]

    class Meta:
        table = "devices"
        indexes = [
            ("product_id", "quarantine", "online"),
            ("product_id", "firmware_version"),
            ("product_id", "system_firmware_version"),
            ("product_id", "last_heard_at"),
            ("product_id", "first_online_at"),
            ("online", "last_heard_at"),
            ("session_id",),
            ("customer_id",),
        ]


class DeviceError(Model):
    """An error a device reported (code, message, optional reset reason)."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="errors"
    )
    device_id: str
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="device_errors", null=True
    )
    product_id: int | None
    code = fields.CharField(max_length=64)
    message = fields.TextField(default="")
    reset_reason = fields.CharField(max_length=64, default="")
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "device_errors"
        indexes = [("product_id", "occurred_at"), ("product_id", "code"), ("device_id", "id")]


class Event(Model):
    """An event published by a device, by a product's server or by the cloud (`spark/status`).

    IDs grow in the order events are stored, which is the order live streams deliver them in:
    a stream resumes after an event ID without gaps or duplicates. `message_id` is the
    device's own ID for the publish, so that a retransmission is stored once."""

    id = fields.BigIntField(primary_key=True)
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="events", null=True
    )
    product_id: int | None
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="events", null=True
    )
    device_id: str | None
    name = fields.CharField(max_length=64)
    data = fields.TextField(default="")
    published_at = fields.DatetimeField()
    private = fields.BooleanField(default=True, db_default=True)
    message_id = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "events"
        indexes = [("product_id", "id"), ("device_id", "id"), ("published_at",)]
        unique_together = [("device", "message_id")]


class LocationPoint(Model):
    """A position a device reported in a `location` frame.

    `product` is the product the device belonged to when the point was stored, so that a team
    never sees where a device was before it joined their product. `received_at` is the cloud's
    clock (what paging, visibility since a claim and retention go by: a device's own clock may
    be wrong); `device_time` is the device's, when it gave one. `message_id` and `position`
    (the point's index in its frame) make a retransmitted frame store its points once."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="location_points"
    )
    device_id: str
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name="location_points", null=True
    )
    product_id: int | None
    lat = fields.FloatField()
    lon = fields.FloatField()
    alt = fields.FloatField(null=True, description="metres")
    accuracy = fields.FloatField(null=True, description="metres")
    heading = fields.FloatField(null=True, description="degrees from north")
    speed = fields.FloatField(null=True, description="metres a second")
    device_time = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField()
    message_id = fields.CharField(max_length=64)
    position = fields.SmallIntField()

    class Meta:
        table = "location_points"
        indexes = [("device_id", "received_at", "id"), ("received_at",)]
        unique_together = [("device", "message_id", "position")]
