"""Devices, the errors they report, and the events they (and the cloud) publish."""

from tortoise import fields
from tortoise.models import Model


class Device(Model):
    """A device from the factory: its ID never changes and its secret is stored hashed.

    `product` is the product the device belongs to, or whose quarantine it sits in
    (`quarantine` QUARANTINED), or which refused it (`quarantine` DENIED)."""

    id = fields.CharField(max_length=24, primary_key=True)
    secret_hash = fields.CharField(max_length=64)
    platform = fields.CharField(max_length=40)
    provisioned_at = fields.DatetimeField()
    claimed_by = fields.ForeignKeyField(
        "models.User", related_name="claimed_devices", null=True, on_delete=fields.SET_NULL
    )
    product = fields.ForeignKeyField(
        "models.Product", related_name="devices", null=True, on_delete=fields.SET_NULL
    )
    imported_at = fields.DatetimeField(null=True)
    import_forced = fields.BooleanField(default=False)
    development = fields.BooleanField(default=False)
    quarantine = fields.CharField(max_length=12, default="NONE")
    denied_by = fields.JSONField(default=list, description="IDs of products that denied it")
    name = fields.CharField(max_length=100, default="")
    notes = fields.TextField(default="")
    firmware_version = fields.CharField(max_length=64, null=True)
    system_firmware_version = fields.CharField(max_length=64, null=True)
    functions = fields.JSONField(default=list)
    variables = fields.JSONField(default=list)
    online = fields.BooleanField(default=False)
    session_id = fields.CharField(max_length=64, null=True)
    last_heard_at = fields.DatetimeField(null=True)
    first_online_at = fields.DatetimeField(null=True)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="devices", null=True, on_delete=fields.SET_NULL
    )
    claimed_at = fields.DatetimeField(null=True, description="when its customer claimed it")
    rate_limited_events = fields.IntField(
        default=0, db_default=0, description="publishes refused for going over the rate limit"
    )

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
    device = fields.ForeignKeyField("models.Device", related_name="errors")
    product = fields.ForeignKeyField("models.Product", related_name="device_errors", null=True)
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
    product = fields.ForeignKeyField("models.Product", related_name="events", null=True)
    device = fields.ForeignKeyField("models.Device", related_name="events", null=True)
    name = fields.CharField(max_length=64)
    data = fields.TextField(default="")
    published_at = fields.DatetimeField()
    private = fields.BooleanField(default=True, db_default=True)
    message_id = fields.CharField(max_length=64, null=True)
    data_operations = fields.IntField(default=0)

    class Meta:
        table = "events"
        indexes = [("product_id", "id"), ("device_id", "id"), ("published_at",)]
        unique_together = [("device", "message_id")]
