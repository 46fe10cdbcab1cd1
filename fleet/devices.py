"""Devices one by one: who may reach a device, its settings, its customer, leaving a product,
quarantine decisions.

Who reaches a device (`device_access`, the one place that decides it):
- the team of the organization owning its product (quarantined and denied devices too, so the
  team can decide), each role as `fleet.permissions` says;
- for a device in no product, the platform user who claimed it;
- the product's customer who claimed it (or to whom the team assigned it), while it is one of
  that product's own devices: seeing it, its events, calling its functions and reading its
  variables (`CUSTOMER_PERMISSIONS`), nothing else;
- a user acting through a third-party app, as the user, within the scopes of the app's token.
Anyone else gets `NotFound`, never a hint that the device exists.
"""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal, CustomerPrincipal, UserPrincipal
from auth.scopes import Scope
from core import clock
from core.errors import Conflict, NotFound
from core.text import check_length
from fleet import audit
from fleet.device_ids import parse_device_id
from fleet.errors import FleetCode
from fleet.organizations import Member, as_member, require_app_scope
from fleet.permissions import Permission
from models.customers import Customer
from models.devices import Device, Quarantine
from models.products import Product

DEVICE_NAME_MAX = 100
DEVICE_NOTES_MAX = 2000

# What a customer may do with their own devices. Everything else (settings, removal,
# quarantine decisions, anything product-wide) is `NotFound` to them.
CUSTOMER_PERMISSIONS = frozenset({Permission.DEVICE_VIEW, Permission.DEVICE_CALL})


def _missing() -> NotFound:
    return NotFound("No such device.", field="deviceId")


async def _device_member(
    principal: AnyPrincipal, device: Device, app_scope: Scope | None
) -> Member:
    product = await Product.get(id=device.product_id)
    return await as_member(principal, product.organization_id, hidden=_missing(),
                           app_scope=app_scope)


def _is_claimer(principal: AnyPrincipal, device: Device) -> bool:
    return (
        isinstance(principal, UserPrincipal)
        and device.claimed_by_id is not None
        and device.claimed_by_id == principal.user.id
    )


def is_customers_device(customer: Customer, device: Device) -> bool:
    """The device is the customer's: claimed by (or assigned to) them, and one of their
    product's own devices (not moved elsewhere, not in a quarantine)."""
    return (
        device.customer_id == customer.id
        and device.product_id == customer.product_id
        and device.quarantine == Quarantine.NONE
    )


async def find(device_id: str) -> Device:
    device = await Device.get_or_none(id=parse_device_id(device_id))
    if device is None:
        raise _missing()
    return device


async def device_access(
    principal: AnyPrincipal, device: Device, permission: Permission, app_scope: Scope | None
) -> Member | None:
    """Check that the principal may do `permission` on the device (see the module docstring);
    through a third-party app, only with `app_scope` in the token (None: never). Returns the
    member acting, or None for the device's customer or claimer. Raises `NotFound` for anyone
    who may not reach the device, `PermissionDenied` for a member whose role (or app) does not
    allow `permission`."""
    if isinstance(principal, CustomerPrincipal):
        if permission in CUSTOMER_PERMISSIONS and is_customers_device(principal.customer, device):
            return None
        raise _missing()
    if device.product_id is None:
        if not _is_claimer(principal, device):
            raise _missing()
        require_app_scope(principal, app_scope)
        return None
    member = await _device_member(principal, device, app_scope)
    member.require(permission)
    return member


async def get_device(principal: AnyPrincipal, device_id: str) -> Device:
    """A device, for whoever may see it (`device_access` with `DEVICE_VIEW`; third-party apps
    with `devices:read`). Anyone else gets `NotFound`; a malformed ID, `InvalidInput`."""
    device = await find(device_id)
    await device_access(principal, device, Permission.DEVICE_VIEW, Scope.DEVICES_READ)
    return device


def customer_devices(principal: AnyPrincipal) -> QuerySet[Device]:
    """The signed-in customer's devices (`is_customers_device`). Anyone else: `NotFound`."""
    if not isinstance(principal, CustomerPrincipal):
        raise NotFound("Only a customer has devices of their own.")
    customer = principal.customer
    return Device.filter(
        customer_id=customer.id, product_id=customer.product_id, quarantine=Quarantine.NONE
    )


async def _managed(principal: AnyPrincipal, device_id: str) -> tuple[Device, Member | None]:
    """The device and the member managing it (None: the claimer of a device in no product).
    Customers and third-party apps never manage devices."""
    device = await find(device_id)
    return device, await device_access(principal, device, Permission.DEVICE_MANAGE, None)


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
