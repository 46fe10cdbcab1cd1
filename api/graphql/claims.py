"""GraphQL for customers' devices: claim codes, and the team assigning or removing a device's
customer."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.devices import Device, DevicePayload
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from fleet import claim_codes, devices


@strawberry.input
class CreateClaimCodeInput:
    product_id: relay.GlobalID = strawberry.field(description="The product you are a customer "
                                                              "of.")


@strawberry.type
class CreateClaimCodePayload:
    claim_code: str | None = strawberry.field(
        default=None, description="Give it to the device, which presents it when it connects. "
                                  "Shown only in this response; single use.")
    expires_at: datetime | None = strawberry.field(
        default=None, description="24 hours from now: unused by then, it claims nothing.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AssignDeviceCustomerInput:
    device_id: str
    customer_id: relay.GlobalID = strawberry.field(description="A customer of the device's "
                                                               "product.")


@strawberry.input
class RemoveDeviceCustomerInput:
    device_id: str


@strawberry.type
class ClaimMutations:
    @strawberry.mutation(description="A claim code for the signed-in customer (a customer token "
                                     "of the product): a device presenting it in its hello "
                                     "becomes the customer's, if it is one of the product's "
                                     "own devices.")
    async def create_claim_code(self, info: Info, input: CreateClaimCodeInput
                                ) -> CreateClaimCodePayload:
        async def work() -> dict[str, object]:
            issued = await claim_codes.create_claim_code(
                info.context.principal, decode_id(input.product_id, "Product", "productId"))
            return {"claim_code": issued.code, "expires_at": issued.expires_at}

        return await mutate(CreateClaimCodePayload, work)

    @strawberry.mutation(description="Make one of the product's own devices a customer's, as if "
                                     "they had claimed it (developers and up).")
    async def assign_device_customer(self, info: Info, input: AssignDeviceCustomerInput
                                     ) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.assign_device_customer(
                info.context.principal, input.device_id,
                decode_id(input.customer_id, "Customer", "customerId"))
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)

    @strawberry.mutation(description="Take a device from its customer (developers and up): "
                                     "their access ends at once.")
    async def remove_device_customer(self, info: Info, input: RemoveDeviceCustomerInput
                                     ) -> DevicePayload:
        async def work() -> dict[str, object]:
            device = await devices.remove_device_customer(info.context.principal,
                                                          input.device_id)
            return {"device": Device.from_model(device)}

        return await mutate(DevicePayload, work)
