"""Claiming: a platform user takes an unowned device onto their own account, and lets it go.

(Customers claim with claim codes when their devices connect; that is the customers' part.)
"""

from __future__ import annotations

from auth.principals import AnyPrincipal, require_user
from core.errors import Conflict, NotFound
from fleet.device_ids import parse_device_id
from fleet.errors import FleetCode
from models.devices import Device
from models.organizations import Membership
from models.products import Product


def _unknown() -> NotFound:
    return NotFound("No such device.", field="deviceId")


def _already_claimed() -> Conflict:
    return Conflict("This device belongs to someone else.", field="deviceId",
                    code=FleetCode.ALREADY_CLAIMED)


async def _in_foreign_product(device: Device, user_id: int) -> bool:
    """Whether the device sits in a product of an organization the user is not a member of."""
    if device.product_id is None:
        return False
    product = await Product.get(id=device.product_id)
    return not await Membership.exists(user_id=user_id, organization_id=product.organization_id)


async def claim_device(principal: AnyPrincipal, raw_device_id: str) -> Device:
    """Claim an unowned device to the signed-in user. A device that someone else claimed, or
    that is in another organization's product, is `ALREADY_CLAIMED`. Claiming twice is fine.

    The device must be online: knowing a device ID (printed on labels, shown in streams) is not
    enough to take a device nobody has connected, and so to block its maker's import."""
    user = require_user(principal).user
    device = await Device.get_or_none(id=parse_device_id(raw_device_id))
    if device is None:
        raise _unknown()
    if device.claimed_by_id == user.id:
        return device
    if device.claimed_by_id is not None or await _in_foreign_product(device, user.id):
        raise _already_claimed()
    if not device.online:
        raise Conflict("The device must be online to be claimed: power it up, let it connect, "
                       "then claim it.", field="deviceId", code=FleetCode.DEVICE_OFFLINE)
    # Compare-and-set: a concurrent claim or import between the read and this write wins.
    updated = await Device.filter(id=device.id, claimed_by_id=None, online=True,
                                  product_id=device.product_id).update(claimed_by_id=user.id)
    if not updated:
        raise _already_claimed()
    device.claimed_by_id = user.id
    return device


async def release_device(principal: AnyPrincipal, raw_device_id: str) -> Device:
    """Give up a device the signed-in user claimed."""
    user = require_user(principal).user
    device_id = parse_device_id(raw_device_id)
    if not await Device.exists(id=device_id):
        raise _unknown()
    updated = await Device.filter(id=device_id, claimed_by_id=user.id).update(claimed_by_id=None)
    if not updated:
        raise Conflict("You have not claimed this device.", field="deviceId",
                       code=FleetCode.NOT_CLAIMED)
    return await Device.get(id=device_id)
