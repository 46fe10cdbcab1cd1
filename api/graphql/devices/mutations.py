"""Device mutations: settings, leaving a product, quarantine decisions, bulk import, claiming
by developers, claim codes and a device's customer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload

from api.errors import ApiCode
from api.graphql.context import Info
from api.graphql.devices.types import Device
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from auth.principals import AnyPrincipal
from core.errors import InvalidInput
from fleet import claim_codes, claims, device_import, devices, sims
from models.devices import Device as DeviceModel

if TYPE_CHECKING:
    from api.graphql.products.types import Product

_PRODUCTS = "api.graphql.products.types"
_Product: strawberry.LazyType[Any, Any] = strawberry.LazyType("Product", _PRODUCTS)


@strawberry.input
class UpdateDeviceInput:
    device_id: str
    name: str | None = strawberry.field(default=None, description="At most 100 characters; "
                                                                  "empty clears it.")
    notes: str | None = strawberry.field(default=None, description="At most 2000 characters.")
    development: bool | None = None


@strawberry.input
class DeviceInput:
    device_id: str


@strawberry.input
class SetSimActiveInput:
    device_id: str
    active: bool
    iccid: str | None = strawberry.field(
        default=None, description="The SIM's ICCID: 19 or 20 digits starting with 89, the "
                                  "last a Luhn check digit. Required when the device is not "
                                  "cellular yet (it makes it cellular); given afterwards, it "
                                  "replaces the device's ICCID.")


@strawberry.type
class DevicePayload:
    device: Device | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Exactly one of `file` and `deviceIds`.")
class ImportDevicesInput:
    product_id: relay.GlobalID
    file: Upload | None = strawberry.field(
        default=None,
        description="A text file (multipart upload) with one device ID per line: at most "
                    "5 MB and 100,000 IDs. CRLF, a UTF-8 BOM, blank lines, surrounding spaces "
                    "and upper-case hex are fine.")
    device_ids: list[str] | None = strawberry.field(
        default=None, description="Device IDs, at most 100,000.")
    force: bool = strawberry.field(
        default=False, description="Keep the devices in this product whatever product ID "
                                   "their firmware reports (test devices on generic firmware).")
    development: bool = strawberry.field(
        default=False, description="Mark the devices as development (test) devices.")


@strawberry.type(description="What the import did with each distinct device ID. Nothing is "
                             "imported when there are userErrors.")
class ImportDevicesPayload:
    product: Annotated[Product, strawberry.lazy(_PRODUCTS)] | None = None
    imported_device_ids: list[str] = strawberry.field(default_factory=list)
    already_in_product_device_ids: list[str] = strawberry.field(default_factory=list)
    invalid_device_ids: list[str] = strawberry.field(
        default_factory=list, description="Malformed, or unknown to the device registry.")
    protected_device_ids: list[str] = strawberry.field(
        default_factory=list, description="Claimed by someone outside your team, or in "
                                          "another organization's product: left alone.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class DeviceClaimInput:
    device_id: str


@strawberry.type
class DeviceClaimPayload:
    device_id: str | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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


async def _device_change(
    info: Info, change: Callable[[AnyPrincipal], Awaitable[DeviceModel]]
) -> DevicePayload:
    async def work() -> DevicePayload:
        return DevicePayload(device=Device.from_model(await change(info.context.principal)))

    return await mutate(DevicePayload, work)


async def _claim_change(
    info: Info, change: Callable[[AnyPrincipal], Awaitable[DeviceModel]]
) -> DeviceClaimPayload:
    async def work() -> DeviceClaimPayload:
        return DeviceClaimPayload(device_id=(await change(info.context.principal)).id)

    return await mutate(DeviceClaimPayload, work)


async def _read_upload(upload: object) -> bytes:
    """The uploaded file's bytes, up to one past the import limit (enough to refuse it; the
    request body limit already bounds what was received)."""
    read = getattr(upload, "read", None)
    if read is None:
        raise InvalidInput("Send the file as a multipart upload.", field="file",
                           code=ApiCode.NOT_AN_UPLOAD)
    data: bytes = await read(device_import.MAX_FILE_BYTES + 1)
    return data


@strawberry.type
class DeviceMutations:
    @strawberry.mutation(description="Change a device's name, notes or development flag "
                                     "(developers and up).")
    async def update_device(self, info: Info, input: UpdateDeviceInput) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.update_device(
            principal, input.device_id, name=input.name, notes=input.notes,
            development=input.development))

    @strawberry.mutation(description="Take a device out of its product (or its quarantine); "
                                     "its import flags are reset.")
    async def remove_device_from_product(self, info: Info, input: DeviceInput) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.remove_device_from_product(
            principal, input.device_id))

    @strawberry.mutation(description="Make a quarantined device one of the product's devices.")
    async def approve_quarantined_device(self, info: Info, input: DeviceInput) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.approve_quarantined_device(
            principal, input.device_id))

    @strawberry.mutation(description="Activate or deactivate a cellular device's SIM "
                                     "(developers and up), recording when; asking for the "
                                     "state it already has changes nothing. A SIM deactivated "
                                     "for a whole billing period makes the device not "
                                     "billable in it.")
    async def set_sim_active(self, info: Info, input: SetSimActiveInput) -> DevicePayload:
        return await _device_change(info, lambda principal: sims.set_sim_active(
            principal, input.device_id, active=input.active, iccid=input.iccid))

    @strawberry.mutation(description="Refuse a quarantined device: it may not connect again.")
    async def deny_quarantined_device(self, info: Info, input: DeviceInput) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.deny_quarantined_device(
            principal, input.device_id))


@strawberry.type
class DeviceImportMutations:
    @strawberry.mutation(description="Import devices into a product (developers and up), all "
                                     "or nothing. Importing again changes nothing.")
    async def import_devices(self, info: Info, input: ImportDevicesInput
                             ) -> ImportDevicesPayload:
        async def work() -> ImportDevicesPayload:
            file_bytes = await _read_upload(input.file) if input.file is not None else None
            result = await device_import.import_devices(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                input.device_ids, file_bytes, force=input.force, development=input.development,
            )
            return ImportDevicesPayload(
                product=_Product.resolve_type().from_model(result.product),
                imported_device_ids=result.imported,
                already_in_product_device_ids=result.already_in_product,
                invalid_device_ids=result.invalid,
                protected_device_ids=result.protected,
            )

        return await mutate(ImportDevicesPayload, work)

    @strawberry.mutation(description="Claim an unowned device to your own account.")
    async def claim_device(self, info: Info, input: DeviceClaimInput) -> DeviceClaimPayload:
        return await _claim_change(info, lambda principal: claims.claim_device(
            principal, input.device_id))

    @strawberry.mutation(description="Release a device you claimed.")
    async def release_device(self, info: Info, input: DeviceClaimInput) -> DeviceClaimPayload:
        return await _claim_change(info, lambda principal: claims.release_device(
            principal, input.device_id))


@strawberry.type
class ClaimMutations:
    @strawberry.mutation(description="A claim code for the signed-in customer (a customer token "
                                     "of the product): a device presenting it in its hello "
                                     "becomes the customer's, if it is one of the product's "
                                     "own devices.")
    async def create_claim_code(self, info: Info, input: CreateClaimCodeInput
                                ) -> CreateClaimCodePayload:
        async def work() -> CreateClaimCodePayload:
            issued = await claim_codes.create_claim_code(
                info.context.principal, decode_id(input.product_id, "Product", "productId"))
            return CreateClaimCodePayload(claim_code=issued.code, expires_at=issued.expires_at)

        return await mutate(CreateClaimCodePayload, work)

    @strawberry.mutation(description="Make one of the product's own devices a customer's, as if "
                                     "they had claimed it (developers and up).")
    async def assign_device_customer(self, info: Info, input: AssignDeviceCustomerInput
                                     ) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.assign_device_customer(
            principal, input.device_id, decode_id(input.customer_id, "Customer", "customerId")))

    @strawberry.mutation(description="Take a device from its customer (developers and up): "
                                     "their access ends at once.")
    async def remove_device_customer(self, info: Info, input: RemoveDeviceCustomerInput
                                     ) -> DevicePayload:
        return await _device_change(info, lambda principal: devices.remove_device_customer(
            principal, input.device_id))
