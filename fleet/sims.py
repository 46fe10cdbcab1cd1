"""Cellular devices and their SIMs.

A device is cellular once it has an ICCID (`Device.iccid`), its SIM card's number. Its SIM is
active until a `SimChange` says otherwise: `set_sim_active` (developers and up) records each
activation and deactivation with its time and who made it, and the SIM's state is the latest
change's. What billing makes of them (a SIM deactivated for a whole period) is
`billing.billable`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.principals import AnyPrincipal
from core import clock
from core.errors import Conflict, InvalidInput
from fleet import access, audit
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models.devices import Device
from models.usage import SimChange

ICCID_PREFIX = "89"  # the telecommunications industry's major industry identifier
ICCID_LENGTHS = (19, 20)


def luhn_valid(digits: str) -> bool:
    """Whether the last digit of `digits` is the Luhn check digit of the others."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def check_iccid(text: str, *, field: str = "iccid") -> str:
    """The ICCID `text` names (spaces around it are dropped), or `InvalidInput` naming
    `field` and saying what is wrong: 19 or 20 digits, starting with 89, the last one the Luhn
    check digit of the others."""
    iccid = text.strip()

    def invalid(message: str) -> InvalidInput:
        return InvalidInput(message, field=field, code=FleetCode.INVALID_ICCID)

    if not (iccid.isascii() and iccid.isdigit()):
        raise invalid("An ICCID is made of digits only (19 or 20 of them).")
    if len(iccid) not in ICCID_LENGTHS:
        raise invalid(f"An ICCID is 19 or 20 digits long; this one has {len(iccid)}.")
    if not iccid.startswith(ICCID_PREFIX):
        raise invalid(f"An ICCID starts with {ICCID_PREFIX}; this one starts with {iccid[:2]}.")
    if not luhn_valid(iccid):
        raise invalid("The ICCID's last digit is not its check digit (Luhn): look for a "
                      "mistyped digit.")
    return iccid


async def sim_states(device_ids: Sequence[str]) -> dict[str, bool]:
    """Whether the SIM of each of these devices is active, for those with a recorded change
    (a cellular device without one is active): one query."""
    states: dict[str, bool] = {}
    for device_id, active in await SimChange.filter(device_id__in=list(device_ids)).order_by(
        "device_id", "changed_at", "id"
    ).values_list("device_id", "active"):
        states[device_id] = active
    return states


def sim_changes(device_id: str) -> QuerySet[SimChange]:
    """The SIM changes of a device the caller was allowed to see, with who made them."""
    return SimChange.filter(device_id=device_id).select_related("changed_by")


async def set_sim_active(
    principal: AnyPrincipal, device_id: str, *, active: bool, iccid: str | None = None
) -> Device:
    """Activate or deactivate the device's SIM (developers and up; through third-party apps,
    never, as other device management), recording a `SimChange` with an audit entry. `iccid`
    is required when the device is not cellular yet (it makes it cellular) and replaces its
    ICCID when given afterwards. Asking for the state the SIM already has, with no new ICCID,
    changes nothing."""
    device, member = await access.device(principal, device_id, Permission.DEVICE_MANAGE, None)
    if member is None:
        raise Conflict("Only the devices of a product have SIMs managed here.",
                       field="deviceId", code=FleetCode.NOT_IN_PRODUCT)
    new_iccid = check_iccid(iccid) if iccid is not None else None
    async with in_transaction():
        # Locked: two changes of one device's SIM are recorded one after the other.
        locked = await Device.filter(id=device.id).select_for_update().get()
        if locked.iccid is None and new_iccid is None:
            raise InvalidInput("The device is not cellular yet: give its SIM's ICCID "
                               "(`iccid`).", field="iccid", code=FleetCode.ICCID_REQUIRED)
        was_cellular = locked.iccid is not None
        before = (await sim_states([locked.id])).get(locked.id, True) if was_cellular else None
        details: dict[str, Any] = {}
        if new_iccid is not None and new_iccid != locked.iccid:
            details["iccid"] = [locked.iccid, new_iccid]
            await Device.filter(id=locked.id).update(iccid=new_iccid)
            locked.iccid = new_iccid
        if before is not active:
            details["simActive"] = [before, active]
            await SimChange.create(device_id=locked.id, active=active, changed_at=clock.now(),
                                   changed_by=member.principal.user)
        if details:
            await audit.record(member.principal, member.organization_id, "device.sim", locked,
                               label=locked.name or locked.id, details=details)
    return locked
