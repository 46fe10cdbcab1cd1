"""Device queries: a device by ID, and the signed-in customer's devices."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.devices.types import Device
from api.graphql.pagination import DEFAULT_PAGE_SIZE
from core.errors import NotFound
from fleet import devices


@strawberry.type
class DeviceQueries:
    @strawberry.field(description="A device you can see: one of your organization's products' "
                                  "(or in their quarantine), one you claimed, or, with a "
                                  "customer token, one of the customer's devices.")
    async def device(self, info: Info, device_id: str) -> Device | None:
        try:
            return Device.from_model(await devices.get_device(info.context.principal,
                                                              device_id))
        except NotFound:
            return None

    @strawberry.field(description="The signed-in customer's devices (claimed with a claim code "
                                  "or assigned by the team), by device ID; null unless you use "
                                  "a customer token.")
    async def customer_devices(self, info: Info, first: int = DEFAULT_PAGE_SIZE,
                               after: str | None = None) -> relay.Connection[Device] | None:
        try:
            queryset = devices.customer_devices(info.context.principal)
        except NotFound:
            return None
        return await Device.page(queryset, first=first, after=after)
