"""Customer mutations: registering and deleting a product's customers."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.customers.types import Customer
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from fleet import customers


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
        async def work() -> CustomerPayload:
            customer = await customers.create_customer(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                email=input.email, password=input.password)
            return CustomerPayload(customer=Customer.from_model(customer))

        return await mutate(CustomerPayload, work)

    @strawberry.mutation(description="Delete a customer (the product's SERVER client, or "
                                     "developers and up): their tokens stop working at once, "
                                     "their claim codes are deleted and their devices "
                                     "unclaimed.")
    async def delete_customer(self, info: Info, input: DeleteCustomerInput) -> CustomerPayload:
        async def work() -> CustomerPayload:
            customer = await customers.delete_customer(
                info.context.principal, decode_id(input.customer_id, "Customer", "customerId"))
            return CustomerPayload(customer=Customer.from_model(customer))

        return await mutate(CustomerPayload, work)
