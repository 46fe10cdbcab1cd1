"""Devices one by one: seeing one, its settings, its customer, leaving a product, quarantine
decisions. Who reaches a device is `fleet.access.device_access`'s to say.
"""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal
from auth.scopes import Scope
from core import clock
from core.errors import Conflict, NotFound
from core.text import check_length
from fleet import access, audit
from fleet.access import Member
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models.customers import Customer
from models.devices import Device, Quarantine

DEVICE_NAME_MAX = 100
DEVICE_NOTES_MAX = 2000


async def get_device(principal: AnyPrincipal, device_id: str) -> Device:
    """A device, for whoever may see it (`access.device_access` with `DEVICE_VIEW`;
    third-party apps with `devices:read`). Anyone else gets `NotFound`; a malformed ID,
    `InvalidInput`."""
    device, _member = await access.device(principal, device_id, Permission.DEVICE_VIEW,
                                          Scope.DEVICES_READ)
    return device


def customer_devices(principal: AnyPrincipal) -> QuerySet[Device]:
    """The signed-in customer's devices. Anyone else: `NotFound`."""
    return access.customer_devices(principal)


async def _managed(principal: AnyPrincipal, device_id: str) -> tuple[Device, Member | None]:
    """The device and the member managing it (None: the claimer of a device in no product).
    Customers and third-party apps never manage devices."""
    return await access.device(principal, device_id, Permission.DEVICE_MANAGE, None)


async def _record(
    member: Member | None, action: str, device: Device, details: dict[str, Any]
) -> None:
    if member is not None:
        await audit.record(
            member.principal,
            member.organization_id,
            action,
            device,
            label=device.name or device.id,
            details=details,
        )


async def update_device(
    principal: AnyPrincipal,
    device_id: str,
    *,
    name: str | None = None,
    notes: str | None = None,
    development: bool | None = None,
) -> Device:
    """Rename a device, change its notes or its development flag (developers and up)."""
    device, member = await _managed(principal, device_id)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = " ".join(
            check_length(name.strip(), DEVICE_NAME_MAX, field="name", what="name").split()
        )
    if notes is not None:
        changes["notes"] = check_length(notes.strip(), DEVICE_NOTES_MAX, field="notes",
                                        what="note")
    if development is not None:
        changes["development"] = development
    changes = {field: value for field, value in changes.items() if getattr(device, field) != value}
    if not changes:
        return device
    async with in_transaction():
        before = {field: getattr(device, field) for field in changes}
        await Device.filter(id=device.id).update(**changes)
        device.update_from_dict(changes)
        await _record(
            member,
            "device.update",
            device,
            {field: [before[field], value] for field, value in changes.items()},
        )
    return device


async def remove_device_from_product(principal: AnyPrincipal, device_id: str) -> Device:
    """The device leaves its product (or its quarantine): no product, no quarantine, the
    import's flags (forced, development) reset, and no customer (customers are the product's).
    Its ID, secret and a platform user's claim stay."""
    device, member = await _managed(principal, device_id)
    if device.product_id is None:
        raise _not_in_product()
    product_id = device.product_id
    cleared: dict[str, Any] = {
        "product_id": None,
        "quarantine": Quarantine.NONE.value,
        "imported_at": None,
        "import_forced": False,
        "development": False,
        "customer_id": None,
        "claimed_at": None,
    }
    async with in_transaction():
        await Device.filter(id=device.id).update(**cleared)
        device.update_from_dict(cleared)
        await _record(member, "device.remove", device, {"productId": product_id})
    return device


def _not_in_product() -> Conflict:
    return Conflict("The device is in no product.", field="deviceId", code=FleetCode.NOT_IN_PRODUCT)


async def _customer_email(customer_id: int | None) -> str | None:
    if customer_id is None:
        return None
    # Tortoise types the rows of `values_list(flat=True)` as tuples; they are the values.
    emails: list[str] = await Customer.filter(  # type: ignore[assignment]
        id=customer_id
    ).values_list("email", flat=True)
    return emails[0] if emails else None


async def assign_device_customer(
    principal: AnyPrincipal, device_id: str, customer_id: int
) -> Device:
    """Make one of the product's own devices (not one in its quarantine) a customer's
    (developers and up), as if the customer had claimed it; any previous customer loses it."""
    device, member = await _managed(principal, device_id)
    if member is None:
        raise _not_in_product()
    if device.quarantine != Quarantine.NONE:
        raise Conflict("Only the product's own devices have customers: approve the device "
                       "first.", field="deviceId", code=FleetCode.NOT_PRODUCT_DEVICE)
    customer = await Customer.get_or_none(id=customer_id, product_id=device.product_id)
    if customer is None:
        raise NotFound("No such customer.", field="customerId")
    if device.customer_id == customer.id:
        return device
    previous = await _customer_email(device.customer_id)
    now = clock.now()
    try:
        async with in_transaction():
            # Conditional on the device still being the product's own (the gateway may move
            # it meanwhile).
            changed = await Device.filter(
                id=device.id, product_id=device.product_id, quarantine=Quarantine.NONE.value
            ).update(customer_id=customer.id, claimed_at=now)
            if not changed:
                raise Conflict("The device left the product meanwhile.", field="deviceId",
                               code=FleetCode.NOT_PRODUCT_DEVICE)
            device.customer_id, device.claimed_at = customer.id, now
            await _record(member, "device.customer.assign", device,
                          {"customer": [previous, customer.email]})
    except IntegrityError:  # the customer was deleted meanwhile
        raise NotFound("No such customer.", field="customerId") from None
    return device


async def remove_device_customer(principal: AnyPrincipal, device_id: str) -> Device:
    """The device is no one's any more (developers and up): its customer loses it at once,
    live streams included (they check access again every few seconds)."""
    device, member = await _managed(principal, device_id)
    if member is None:
        raise _not_in_product()
    no_customer = Conflict("The device has no customer.", field="deviceId",
                           code=FleetCode.NO_CUSTOMER)
    if device.customer_id is None:
        raise no_customer
    previous = await _customer_email(device.customer_id)
    async with in_transaction():
        changed = await Device.filter(id=device.id, customer_id=device.customer_id).update(
            customer_id=None, claimed_at=None
        )
        if not changed:
            raise no_customer
        device.customer_id, device.claimed_at = None, None
        await _record(member, "device.customer.remove", device, {"customer": [previous, None]})
    return device


async def _decide(
    principal: AnyPrincipal, device_id: str, decision: Quarantine, action: str
) -> Device:
    device, member = await _managed(principal, device_id)
    if member is None or device.quarantine != Quarantine.QUARANTINED:
        raise _not_quarantined()
    assert device.product_id is not None  # a member manages it: it is in their product
    async with in_transaction():
        # Conditional on the state read above, so two concurrent decisions cannot both win.
        denied_by = list(device.denied_by)
        if decision is Quarantine.DENIED and device.product_id not in denied_by:
            denied_by.append(device.product_id)
        changed = await Device.filter(
            id=device.id, product_id=device.product_id, quarantine=Quarantine.QUARANTINED.value
        ).update(quarantine=decision.value, denied_by=denied_by)
        if not changed:
            raise _not_quarantined()
        device.quarantine = decision.value
        await _record(member, action, device, {"productId": device.product_id})
    return device


def _not_quarantined() -> Conflict:
    return Conflict(
        "The device is not in the product's quarantine.", field="deviceId",
        code=FleetCode.NOT_QUARANTINED,
    )


async def approve_quarantined_device(principal: AnyPrincipal, device_id: str) -> Device:
    """Take a quarantined device into the product (developers and up)."""
    return await _decide(principal, device_id, Quarantine.NONE, "device.approve")


async def deny_quarantined_device(principal: AnyPrincipal, device_id: str) -> Device:
    """Refuse a quarantined device: the gateway turns it away whenever it reports this product,
    until the product imports it."""
    return await _decide(principal, device_id, Quarantine.DENIED, "device.deny")
