"""GraphQL for a product's customers: the customers page, creating and deleting customers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.errors import ApiCode
from api.graphql.context import Info
from api.graphql.devices import Device
from api.graphql.errors import UserError, client_error, mutate
from api.graphql.ids import decode_id
from api.graphql.pagination import paginate
from core.errors import NotFound
from core.text import parse_key
from fleet import customers
from models.customers import Customer as CustomerModel


def _devices_loader(info: Info) -> DataLoader[tuple[int, int], list[Any]]:
    """The request's loader of customers' devices: one query for every customer shown."""
    loaders = info.context.loaders
    if "customer_devices" not in loaders:
        loaders["customer_devices"] = DataLoader(load_fn=customers.devices_of)
    return loaders["customer_devices"]


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
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False
                            ) -> list[Customer | None]:
        results: list[Customer | None] = []
        for node_id in node_ids:
            key = parse_key(node_id)
            customer = None
            if key is not None:
                with contextlib.suppress(NotFound):
                    customer = await customers.get_customer(info.context.principal, key)
            results.append(None if customer is None else cls.from_model(customer))
        return results

    @strawberry.field(description="The product's devices they claimed, by device ID: empty "
                                  "until they claim one.")
    async def devices(self, info: Info) -> list[Device]:
        found = await _devices_loader(info).load((self.id, self.product_pk))
        return [Device.from_model(device) for device in found]


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


def _created_cursor(values: list[Any]) -> list[Any]:
    created, customer_id = values
    if isinstance(created, str) and type(customer_id) is int and -(2**63) <= customer_id < 2**63:
        try:
            return [datetime.fromisoformat(created), customer_id]
        except ValueError:
            pass
    raise client_error("The `after` cursor is not one this API gave out.", ApiCode.INVALID_CURSOR)


async def product_customers(info: Info, product_id: int, first: int, after: str | None,
                            criteria: CustomerFilter | None) -> relay.Connection[Customer]:
    """`Product.customers`: newest first."""
    queryset = await customers.list_customers(
        info.context.principal, product_id, (criteria or CustomerFilter()).to_domain())
    return await paginate(queryset, order=("-created_at", "-id"), first=first, after=after,
                          to_node=Customer.from_model, parse=_created_cursor)


@strawberry.input
class CreateCustomerInput:
    product_id: relay.GlobalID
    email: str
    password: str | None = strawberry.field(
        default=None, description="At least 8 characters. Required when one of the product's "
                                  "apps (a MOBILE or WEB client) creates the customer, who "
                                  "signs in with it (simple auth); the SERVER client and the "
                                  "team may leave it out (two-legged auth).")


@strawberry.input
class DeleteCustomerInput:
    customer_id: relay.GlobalID


@strawberry.type
class CustomerPayload:
    customer: Customer | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(description="Register a customer of a product: with a client "
                                     "credentials token of the product's MOBILE, WEB or SERVER "
                                     "client, or as a team member (developers and up).")
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> CustomerPayload:
        async def work() -> dict[str, object]:
            customer = await customers.create_customer(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                email=input.email, password=input.password)
            return {"customer": Customer.from_model(customer)}

        return await mutate(CustomerPayload, work)

    @strawberry.mutation(description="Delete a customer (the product's SERVER client, or "
                                     "developers and up): their tokens stop working at once, "
                                     "their claim codes are deleted and their devices "
                                     "unclaimed.")
    async def delete_customer(self, info: Info, input: DeleteCustomerInput) -> CustomerPayload:
        async def work() -> dict[str, object]:
            customer = await customers.delete_customer(
                info.context.principal, decode_id(input.customer_id, "Customer", "customerId"))
            return {"customer": Customer.from_model(customer)}

        return await mutate(CustomerPayload, work)
