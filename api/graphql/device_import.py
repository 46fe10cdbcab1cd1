"""GraphQL for getting devices: bulk import into a product, claiming by developers."""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload

from api.errors import ApiCode
from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from api.graphql.products import Product
from core.errors import InvalidInput
from fleet import claims, device_import


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
    product: Product | None = None
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


async def _read_upload(upload: object) -> bytes:
    """The uploaded file's bytes, up to one past the import limit (enough to refuse it; the
    request body limit already bounds what was received)."""
    read = getattr(upload, "read", None)
    if read is None:
        raise InvalidInput("Send the file as a multipart upload.", field="file",
                           code=ApiCode.NOT_AN_UPLOAD)
    return await read(device_import.MAX_FILE_BYTES + 1)


@strawberry.type
class DeviceImportMutations:
    @strawberry.mutation(description="Import devices into a product (developers and up), all "
                                     "or nothing. Importing again changes nothing.")
    async def import_devices(self, info: Info, input: ImportDevicesInput
                             ) -> ImportDevicesPayload:
        async def work() -> dict[str, object]:
            file_bytes = await _read_upload(input.file) if input.file is not None else None
            result = await device_import.import_devices(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                input.device_ids, file_bytes, force=input.force, development=input.development,
            )
            return {
                "product": Product.from_model(result.product),
                "imported_device_ids": result.imported,
                "already_in_product_device_ids": result.already_in_product,
                "invalid_device_ids": result.invalid,
                "protected_device_ids": result.protected,
            }

        return await mutate(ImportDevicesPayload, work)

    @strawberry.mutation(description="Claim an unowned device to your own account.")
    async def claim_device(self, info: Info, input: DeviceClaimInput) -> DeviceClaimPayload:
        async def work() -> dict[str, object]:
            device = await claims.claim_device(info.context.principal, input.device_id)
            return {"device_id": device.id}

        return await mutate(DeviceClaimPayload, work)

    @strawberry.mutation(description="Release a device you claimed.")
    async def release_device(self, info: Info, input: DeviceClaimInput) -> DeviceClaimPayload:
        async def work() -> dict[str, object]:
            device = await claims.release_device(info.context.principal, input.device_id)
            return {"device_id": device.id}

        return await mutate(DeviceClaimPayload, work)
