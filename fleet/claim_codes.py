"""Claim codes: how a product's customer makes a device theirs.

The customer's app asks for a code (`create_claim_code`) and hands it to the device (over
Bluetooth, SoftAP, a QR code…), which presents it in its `hello`. The gateway then calls
`redeem` inside the welcome's transaction. The rules:

- A code is random (256 bits), shown once, stored only as a SHA-256 hash, single use, and
  expires `CLAIM_CODE_LIFETIME` (24 hours) after it was made.
- It claims the device only if the device is, once the hello has assigned its product, one
  of the code's product's own devices: imported into that product (or approved from its
  quarantine). A device in another product, in a quarantine (this product's included: the
  team approves it first), denied, or in no product is not claimed, and the code stays
  unused: the device may present it again once the team has taken it in.
- A device that belongs to another customer is not claimed either (the team removes its
  customer first); presenting a code of the device's own customer uses the code and changes
  nothing else.
- An unknown, expired or used code claims nothing. In every case the device is welcomed as
  usual; the welcome says `"claimed": true` only when the device is the code's customer's.
- A customer holds at most `CLAIM_CODES_PER_CUSTOMER` outstanding (unused, unexpired) codes:
  one more is `LimitReached` until one is used or expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from auth import tokens
from auth.principals import AnyPrincipal, CustomerPrincipal
from core import clock
from core.errors import LimitReached, NotFound, Unauthenticated
from core.settings import get_settings
from models.customers import ClaimCode, Customer
from models.devices import Device, Quarantine

CLAIM_CODE_LIFETIME = timedelta(hours=24)
CODE_PREFIX = "dc_cc_"  # 49 characters in all: within the 64 a hello's `claimCode` may have


@dataclass(frozen=True)
class IssuedClaimCode:
    """A new claim code, in clear: shown only in the response that creates it."""

    code: str
    expires_at: datetime


async def create_claim_code(principal: AnyPrincipal, product_id: int) -> IssuedClaimCode:
    """A claim code for the signed-in customer of the product. Anonymous callers are
    `Unauthenticated`; anyone else (users, clients, customers of other products) `NotFound`."""
    if principal is None:
        raise Unauthenticated("Sign in as a customer of the product to get a claim code.")
    if not (
        isinstance(principal, CustomerPrincipal)
        and principal.customer.product_id == product_id
    ):
        raise NotFound("No such product.", field="productId")
    now = clock.now()
    code = tokens.generate(CODE_PREFIX)
    expires_at = now + CLAIM_CODE_LIFETIME
    cap = get_settings().claim_codes_per_customer
    async with in_transaction():
        # Locked: two requests at once cannot both take the last place under the cap.
        customer = await Customer.filter(id=principal.customer.id).select_for_update().first()
        if customer is None:
            raise Unauthenticated("Sign in as a customer of the product to get a claim code.")
        outstanding = await ClaimCode.filter(
            customer_id=customer.id, used_at=None, expires_at__gt=now
        ).count()
        if outstanding >= cap:
            raise LimitReached(
                f"You hold {cap} unused claim codes, the most at once; use one or wait until "
                "one expires."
            )
        await ClaimCode.create(
            code_hash=tokens.digest(code),
            customer_id=customer.id,
            created_at=now,
            expires_at=expires_at,
        )
    return IssuedClaimCode(code, expires_at)


async def redeem(
    code: str,
    device: Device,
    *,
    product_id: int | None,
    quarantine: Quarantine,
    now: datetime,
) -> int | None:
    """Claim `device` with `code`, as its hello just assigned it (`product_id`, `quarantine`;
    `device.customer_id` is its customer before the claim): the ID of the customer whose
    device it now is, or None when the code claims nothing (see the module docstring). Call
    it inside the transaction that holds the device's row."""
    if product_id is None or quarantine is not Quarantine.NONE:
        return None
    claim = await ClaimCode.get_or_none(code_hash=tokens.digest(code))
    if claim is None or claim.used_at is not None or claim.expires_at <= now:
        return None
    if device.customer_id not in (None, claim.customer_id):
        return None
    # Locked: a concurrent deletion of the customer (which locks the customer, then unclaims
    # their devices) either finishes first, and there is no customer to claim for, or waits.
    customer = await (
        Customer.filter(id=claim.customer_id, product_id=product_id).select_for_update().first()
    )
    if customer is None:
        return None
    # Compare-and-set: of two devices presenting the same code at once, one claims.
    if not await ClaimCode.filter(id=claim.id, used_at=None).update(used_at=now,
                                                                    device_id=device.id):
        return None
    if device.customer_id is None:
        await Device.filter(id=device.id).update(customer_id=claim.customer_id, claimed_at=now)
    return claim.customer_id
