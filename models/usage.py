"""Usage and its billing: the data-operation ledger, the days devices were online, SIM changes,
each organization's plan, the thresholds it crossed, its notifications.

The ledger's rows outlive what they count: a counter names its product and device by ID, with
no foreign key, so deleting a product or a device never changes a period's usage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.accounts import User
    from models.devices import Device
    from models.organizations import Organization


class Metric(StrEnum):
    """What a limit limits (`UsageThreshold.metric`)."""

    DATA_OPERATIONS = "DATA_OPERATIONS"
    DEVICES = "DEVICES"


class UsageCounter(Model):
    """The data operations of one kind (`core.metering.OperationKind`) that one device of one
    product cost on one UTC day, in its organization's period (`YYYY-MM`). Written only by
    adding to it (`INSERT … ON CONFLICT DO UPDATE SET operations = operations + …`): in the
    transaction of what it counts, or, for device publishes, in the one that moves the
    `LedgerPosition` over the stored events it counts."""

    id = fields.BigIntField(primary_key=True)
    organization_id = fields.BigIntField()
    period = fields.CharField(max_length=7)
    day = fields.DateField()
    product_id = fields.BigIntField()
    device_id = fields.CharField(max_length=24)
    kind = fields.CharField(max_length=32)
    operations = fields.BigIntField(default=0)

    class Meta:
        table = "usage_counters"
        unique_together = [("organization_id", "day", "product_id", "device_id", "kind")]
        indexes = [("organization_id", "period", "product_id"), ("period", "organization_id")]
        table_description = "Data operations per organization, period, product, device, day, kind."


class LedgerPosition(Model):
    """How far a record the ledger counts from has been counted: for `source='events'`, every
    event with an ID up to `event_id` is in the counters (`billing.publishes`). Moved in the
    transaction that adds what it counted, so each event is counted once."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=32, unique=True)
    event_id = fields.BigIntField()

    class Meta:
        table = "ledger_positions"


class DeviceOnlineDay(Model):
    """A UTC day on which the device was online (connected, or heard from while connected):
    written with its presence, so which periods it came online in is never recomputed from
    events."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="online_days"
    )
    device_id: str
    day = fields.DateField()

    class Meta:
        table = "device_online_days"
        unique_together = [("device", "day")]


class SimChange(Model):
    """A cellular device's SIM activated or deactivated (`setSimActive`), and when."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="sim_changes"
    )
    device_id: str
    active = fields.BooleanField()
    changed_at = fields.DatetimeField()
    changed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sim_changes", null=True, on_delete=fields.SET_NULL
    )
    changed_by_id: int | None

    class Meta:
        table = "sim_changes"
        indexes = [("device_id", "changed_at")]


class BillingAccount(Model):
    """An organization's plan (`billing.plans.PlanKind`), its blocks, an ENTERPRISE contract's
    limits and grace, and its pause. An organization without one is on FREE, one block."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.OneToOneRelation[Organization] = fields.OneToOneField(
        "models.Organization", related_name="billing_account"
    )
    organization_id: int
    plan = fields.CharField(max_length=16, default="FREE")
    blocks = fields.IntField(default=1)
    contract_devices = fields.IntField(null=True)
    contract_data_operations = fields.BigIntField(null=True)
    manufacturing_grace = fields.BooleanField(default=False)
    paused_from = fields.DatetimeField(null=True)
    paused_until = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "billing_accounts"


class PlanChange(Model):
    """A change of an organization's plan or blocks (an ENTERPRISE contract's limits and grace
    with it): when it took effect on the limits, and the first period it is billed in. The
    latest change before a period's end is the plan that period is seen against."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="plan_changes"
    )
    organization_id: int
    plan = fields.CharField(max_length=16)
    blocks = fields.IntField()
    contract_devices = fields.IntField(null=True)
    contract_data_operations = fields.BigIntField(null=True)
    manufacturing_grace = fields.BooleanField(null=True)
    changed_at = fields.DatetimeField()
    billed_from = fields.CharField(max_length=7)
    changed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="plan_changes", null=True, on_delete=fields.SET_NULL
    )
    changed_by_id: int | None

    class Meta:
        table = "plan_changes"
        indexes = [("organization_id", "changed_at")]


class UsagePause(Model):
    """A pause of a FREE organization's devices in a period (`YYYY-MM`), kept after it ends:
    written by the scheduler as it pauses, `lifted_at` set when a plan change lifts it before
    `paused_until`. The account's `paused_from`/`paused_until` are the active pause only."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="usage_pauses"
    )
    organization_id: int
    period = fields.CharField(max_length=7)
    paused_from = fields.DatetimeField()
    paused_until = fields.DatetimeField()
    lifted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "usage_pauses"
        unique_together = [("organization", "period", "paused_from")]


class UsageThreshold(Model):
    """A warning threshold (70, 90, 100 percent) an organization's usage of a limit crossed in a
    period: stored once, so each is announced once."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="usage_thresholds"
    )
    organization_id: int
    period = fields.CharField(max_length=7)
    metric = fields.CharField(max_length=20)
    threshold = fields.SmallIntField()
    used = fields.BigIntField()
    limit = fields.BigIntField()
    crossed_at = fields.DatetimeField()

    class Meta:
        table = "usage_thresholds"
        unique_together = [("organization", "period", "metric", "threshold")]


class Notification(Model):
    """Something the organization's owner and administrators are told in the app. `key` makes
    each notification once (a scheduler that runs twice writes it once)."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="notifications"
    )
    organization_id: int
    kind = fields.CharField(max_length=32)
    key = fields.CharField(max_length=100)
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    created_at = fields.DatetimeField()

    reads: fields.ReverseRelation[NotificationRead]

    class Meta:
        table = "notifications"
        unique_together = [("organization", "key")]
        indexes = [("organization_id", "created_at", "id")]


class NotificationRead(Model):
    """A user marked a notification read."""

    id = fields.BigIntField(primary_key=True)
    notification: fields.ForeignKeyRelation[Notification] = fields.ForeignKeyField(
        "models.Notification", related_name="reads"
    )
    notification_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="notification_reads"
    )
    user_id: int
    read_at = fields.DatetimeField()

    class Meta:
        table = "notification_reads"
        unique_together = [("notification", "user")]
