"""Devices one by one: who sees a device, its settings, leaving a product, quarantine decisions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal, UserPrincipal
from core.errors import Conflict, InvalidInput, NotFound
from fleet import audit
from fleet.device_ids import parse_device_id
from fleet.organizations import Member, as_member
from fleet.permissions import Permission
from models.devices import Device
from models.products import Product

DEVICE_NAME_MAX = 100
DEVICE_NOTES_MAX = 2000


class Quarantine(StrEnum):
    """Where a device stands with the product in `Device.product`."""

    NONE = "NONE"  # the product's device
    QUARANTINED = "QUARANTINED"  # reported the product's ID unannounced; awaits a decision
    DENIED = "DENIED"  # refused by the product's team; the gateway turns it away


def _missing() -> NotFound:
    return NotFound("No such device.", field="deviceId")


async def _device_member(principal: AnyPrincipal, device: Device) -> Member:
    product = await Product.get(id=device.product_id)
    return await as_member(principal, product.organization_id, hidden=_missing())


def _is_claimer(principal: AnyPrincipal, device: Device) -> bool:
    return (
        isinstance(principal, UserPrincipal)
        and device.claimed_by_id is not None
        and device.claimed_by_id == principal.user.id
    )


async def find(device_id: str) -> Device:
    device = await Device.get_or_none(id=parse_device_id(device_id))
    if device is None:
        raise _missing()
    return device


async def get_device(principal: AnyPrincipal, device_id: str) -> Device:
    """A device, for members of the organization owning its product (quarantined and denied
    devices too, so the team can decide), or, for a device in no product, for the user who
    claimed it. Anyone else gets `NotFound`; a malformed ID, `InvalidInput`."""
    device = await find(device_id)
    if device.product_id is None:
        if not _is_claimer(principal, device):
            raise _missing()
        return device
    member = await _device_member(principal, device)
    member.require(Permission.DEVICE_VIEW)
    return device


async def _managed(principal: AnyPrincipal, device_id: str) -> tuple[Device, Member | None]:
    """The device and the member managing it (None: the claimer of a device in no product)."""
    device = await find(device_id)
    if device.product_id is None:
        if not _is_claimer(principal, device):
            raise _missing()
        return device, None
    member = await _device_member(principal, device)
    member.require(Permission.DEVICE_MANAGE)
    return device, member


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


def _clean_text(value: str, limit: int, field: str, what: str) -> str:
    text = value.strip()
    if len(text) > limit:
        raise InvalidInput(
            f"The {what} is {len(text)} characters long; the limit is {limit}.",
            field=field,
            code="TOO_LONG",
        )
    return text


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
        changes["name"] = " ".join(_clean_text(name, DEVICE_NAME_MAX, "name", "name").split())
    if notes is not None:
        changes["notes"] = _clean_text(notes, DEVICE_NOTES_MAX, "notes", "note")
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
    """The device leaves its product (or its quarantine): no product, no quarantine, and the
    import's flags (forced, development) reset. Its ID, secret and claim stay."""
    device, member = await _managed(principal, device_id)
    if device.product_id is None:
        raise Conflict("The device is in no product.", field="deviceId", code="NOT_IN_PRODUCT")
    product_id = device.product_id
    cleared: dict[str, Any] = {
        "product_id": None,
        "quarantine": Quarantine.NONE.value,
        "imported_at": None,
        "import_forced": False,
        "development": False,
    }
    async with in_transaction():
        await Device.filter(id=device.id).update(**cleared)
        device.update_from_dict(cleared)
        await _record(member, "device.remove", device, {"productId": product_id})
    return device


async def _decide(
    principal: AnyPrincipal, device_id: str, decision: Quarantine, action: str
) -> Device:
    device, member = await _managed(principal, device_id)
    if member is None or device.quarantine != Quarantine.QUARANTINED:
        raise _not_quarantined()
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
        "The device is not in the product's quarantine.", field="deviceId", code="NOT_QUARANTINED"
    )


async def approve_quarantined_device(principal: AnyPrincipal, device_id: str) -> Device:
    """Take a quarantined device into the product (developers and up)."""
    return await _decide(principal, device_id, Quarantine.NONE, "device.approve")


async def deny_quarantined_device(principal: AnyPrincipal, device_id: str) -> Device:
    """Refuse a quarantined device: the gateway turns it away whenever it reports this product,
    until the product imports it."""
    return await _decide(principal, device_id, Quarantine.DENIED, "device.deny")
