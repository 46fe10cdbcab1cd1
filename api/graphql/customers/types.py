"""Customer types: the customer and the filter of a product's customers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.graphql import loaders
from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from fleet import access, customers
from models.customers import Customer as CustomerModel

if TYPE_CHECKING:
    from api.graphql.devices.types import Device

_DEVICES = "api.graphql.devices.types"
_Device: strawberry.LazyType[Any, Any] = strawberry.LazyType("Device", _DEVICES)


@strawberry.type(description="An end customer of a product, who signs in through the "
                             "product's app or server. Seen by the product's team and by the "
                             "customer themself.")
class Customer(relay.Node):
    id: relay.NodeID[int]
    email: str
    created_at: datetime
    last_active_at: datetime | None = strawberry.field(
        description="Last time one of their tokens was issued or used, or one of their devices "
                    "was active; null: never.")
    product_pk: strawberry.Private[int]

    @classmethod
    def from_model(cls, customer: CustomerModel) -> Customer:
        return cls(id=customer.id, email=customer.email, created_at=customer.created_at,
                   last_active_at=customer.last_active_at, product_pk=customer.product_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Customer | None]:
        return await visible_nodes(info, node_ids, access.visible_customers, cls.from_model)

    @strawberry.field(description="The product's devices they claimed, by device ID: empty "
                                  "until they claim one.")
    async def devices(self, info: Info) -> list[Annotated[Device, strawberry.lazy(_DEVICES)]]:
        to_node = _Device.resolve_type().from_model
        found = await loaders.customer_devices(info.context).load((self.id, self.product_pk))
        return [to_node(device) for device in found]


@strawberry.input(description="Narrow a product's customers; absent criteria are left out.")
class CustomerFilter:
    search: str | None = strawberry.field(
        default=None, description="A part of the email, ignoring case.")
    active_since: datetime | None = strawberry.field(
        default=None, description="Only customers last active at or after this moment.")
    has_devices: bool | None = strawberry.field(
        default=None, description="true: customers who claimed at least one of the product's "
                                  "devices; false: those who claimed none.")

    def to_domain(self) -> customers.CustomerFilter:
        return customers.CustomerFilter(search=self.search, active_since=self.active_since,
                                        has_devices=self.has_devices)
