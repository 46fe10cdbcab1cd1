"""Products: an organization's fleets."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.customers import Customer
    from models.devices import Device, DeviceError, Event
    from models.oauth import OAuthClient
    from models.organizations import Organization


class CustomerAuth(StrEnum):
    """How a product's customers sign in (`Product.customer_auth`)."""

    SIMPLE = "SIMPLE"
    TWO_LEGGED = "TWO_LEGGED"
    LOGIN_WITH_PLATFORM = "LOGIN_WITH_PLATFORM"


class Product(Model):
    """A fleet of devices. Its numeric product ID is the primary key, drawn from the table's
    own sequence (identity on PostgreSQL, AUTOINCREMENT on SQLite), so it is never reused."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="products"
    )
    organization_id: int
    name = fields.CharField(max_length=100)
    slug = fields.CharField(max_length=63, unique=True)
    description = fields.TextField(default="")
    platform = fields.CharField(max_length=40)
    customer_auth = fields.CharField(max_length=30)
    created_at = fields.DatetimeField()
    event_data_limit = fields.IntField(
        default=1024, db_default=1024, description="bytes of data an event may carry"
    )

    customers: fields.ReverseRelation[Customer]
    devices: fields.ReverseRelation[Device]
    device_errors: fields.ReverseRelation[DeviceError]
    events: fields.ReverseRelation[Event]
    oauth_clients: fields.ReverseRelation[OAuthClient]

    class Meta:
        table = "products"
        indexes = [("organization_id", "id")]
