"""A product's customers: created by the product's apps and server or by its team, listed for
the team with the devices they claimed, deleted with everything they hold.

Who may do what:
- create: the team's developers and up; the product's MOBILE or WEB client, when the product's
  customers sign in with a password (SIMPLE), always giving one; the product's SERVER client.
  Only a SIMPLE product's customers have passwords: the others' sign in with tokens the
  product's server mints (TWO_LEGGED) or with their platform account (LOGIN_WITH_PLATFORM);
- delete: the team's developers and up; the product's SERVER client;
- list and see: every team role; a customer sees themself.
Anyone else gets `NotFound`.

Each MOBILE or WEB client creates at most `CUSTOMERS_PER_APP_PER_HOUR` customers in an hour
(a fixed window from its first creation, counted in the database for every process): an app's
credentials ship inside the app, so anyone could otherwise sign up customers without end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import passwords
from auth.emails import normalize_email
from auth.principals import AnyPrincipal, ClientPrincipal
from core import clock
from core.errors import Conflict, CoreCode, InvalidInput, LimitReached, NotFound
from core.settings import get_settings
from fleet import access, audit
from fleet.errors import FleetCode
from fleet.permissions import Permission
from models.customers import Customer
from models.devices import Device
from models.oauth import ClientType, ThrottleCounter
from models.products import CustomerAuth

SEARCH_MAX = 100
APP_WINDOW = timedelta(hours=1)
_APPS = frozenset({ClientType.MOBILE, ClientType.WEB})
_SERVER = frozenset({ClientType.SERVER})


@dataclass(frozen=True)
class CustomerFilter:
    """Narrow a product's customers; None leaves a criterion out."""

    search: str | None = None  # a part of the email, ignoring case
    active_since: datetime | None = None  # last active at or after this moment
    has_devices: bool | None = None  # claimed at least one of the product's devices, or none


async def create_customer(
    principal: AnyPrincipal, product_id: int, *, email: str, password: str | None
) -> Customer:
    """Register a customer of the product. The email is normalised and unique within the
    product; the password, if any, is hashed with argon2id. A customer made by one of the
    product's apps must have a password: it is how they sign in."""
    member, product = await access.customer_manager(
        principal, product_id, _APPS | _SERVER, NotFound("No such product.", field="productId")
    )
    by_app = member is None and isinstance(principal, ClientPrincipal) and (
        principal.client.kind in _APPS
    )
    simple = product.customer_auth == CustomerAuth.SIMPLE
    if by_app and not simple:
        raise Conflict(f"This product's customers sign in with {product.customer_auth}, not "
                       "with a password: its apps do not create them.", field="productId",
                       code=FleetCode.CUSTOMER_AUTH_MISMATCH)
    address = normalize_email(email)
    if password is None and by_app:
        raise InvalidInput("Customers created by an app sign in with a password: set one.",
                           field="password", code=CoreCode.REQUIRED)
    if password is not None:
        if not simple:
            raise InvalidInput(f"This product's customers sign in with "
                               f"{product.customer_auth}: they have no password.",
                               field="password", code=CoreCode.NOT_ALLOWED)
        passwords.validate(password)
    taken = Conflict("This product already has a customer with this email.", field="email",
                     code=FleetCode.CUSTOMER_EXISTS)
    if await Customer.exists(product_id=product.id, email=address):
        raise taken
    password_hash = await passwords.hash_password(password) if password is not None else None
    counter = _app_counter(principal) if by_app else None
    if counter is not None:
        await _take_app_creation(counter)
    try:
        async with in_transaction():
            customer = await Customer.create(product=product, email=address,
                                             password_hash=password_hash,
                                             created_at=clock.now())
            if member is not None:
                await audit.record(member.principal, product.organization_id,
                                   "customer.create", customer, label=address,
                                   details={"productId": product.id,
                                            "password": password is not None})
    except IntegrityError:
        if counter is not None:
            await ThrottleCounter.filter(key=counter).update(failures=F("failures") - 1)
        raise taken from None  # a concurrent creation with the same email won the race
    return customer


def _app_counter(principal: AnyPrincipal) -> str:
    assert isinstance(principal, ClientPrincipal)
    return f"customers-created:client:{principal.client.id}"


async def _take_app_creation(key: str) -> None:
    """Count one customer creation on the app's counter, or `LimitReached` at the cap. Each
    step is one conditional UPDATE, so concurrent creations in any process never pass it."""
    cap = get_settings().customers_per_app_per_hour
    now = clock.now()
    # Another process may create the row first: it exists then, which is all we need.
    with contextlib.suppress(IntegrityError):
        await ThrottleCounter.get_or_create(
            key=key, defaults={"failures": 0, "window_started_at": now}
        )
    await ThrottleCounter.filter(key=key, window_started_at__lte=now - APP_WINDOW).update(
        failures=0, window_started_at=now
    )
    if not await ThrottleCounter.filter(key=key, failures__lt=cap).update(
        failures=F("failures") + 1
    ):
        raise LimitReached(
            f"This app created {cap} customers within the hour, the most it may; try again "
            "later.", field="productId",
        )


async def delete_customer(principal: AnyPrincipal, customer_id: int) -> Customer:
    """Delete a customer: their devices are unclaimed, and their token families (so every
    token they hold, at once) and claim codes go with them."""
    missing = NotFound("No such customer.", field="customerId")
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise missing
    member, product = await access.customer_manager(principal, customer.product_id, _SERVER,
                                                    missing)
    async with in_transaction():
        # Locked first, so that a device claiming with one of their codes meanwhile waits
        # for this deletion, and then finds no customer to claim for.
        locked = await Customer.filter(id=customer.id).select_for_update().first()
        if locked is None:
            raise missing  # deleted concurrently
        await Device.filter(customer_id=customer.id).update(customer_id=None, claimed_at=None)
        # ON DELETE CASCADE removes their token families with their tokens, and their codes.
        await Customer.filter(id=customer.id).delete()
        if member is not None:
            await audit.record(member.principal, product.organization_id, "customer.delete",
                               customer, label=customer.email,
                               details={"productId": product.id})
    return customer


async def get_customer(principal: AnyPrincipal, customer_id: int) -> Customer:
    """A customer, for their product's team and for themself."""
    return await access.customer(principal, customer_id)


def _search(text: str) -> str:
    text = text.strip().lower()
    if len(text) > SEARCH_MAX:
        raise InvalidInput(f"Search for at most {SEARCH_MAX} characters.", field="search",
                           code=CoreCode.TOO_LONG)
    return text


async def list_customers(
    principal: AnyPrincipal, product_id: int, criteria: CustomerFilter
) -> QuerySet[Customer]:
    """The product's customers matching `criteria`, unordered (every team role)."""
    await access.product_member(principal, product_id, Permission.DEVICE_VIEW)
    customers = Customer.filter(product_id=product_id)
    if criteria.search:
        customers = customers.filter(email__contains=_search(criteria.search))
    if criteria.active_since is not None:
        customers = customers.filter(last_active_at__gte=criteria.active_since)
    if criteria.has_devices is not None:
        claimers = Subquery(
            Device.filter(product_id=product_id, customer_id__not_isnull=True)
            .values("customer_id")
        )
        if criteria.has_devices:
            customers = customers.filter(id__in=claimers)
        else:
            customers = customers.exclude(id__in=claimers)
    return customers


async def devices_of(customers: Sequence[tuple[int, int]]) -> list[list[Device]]:
    """The devices each (customer ID, product ID) claimed among the product's devices, by
    device ID, in one query. For customers the caller was already allowed to see."""
    wanted = dict(customers)
    found: dict[int, list[Device]] = {customer_id: [] for customer_id in wanted}
    for device in await Device.filter(customer_id__in=list(wanted)).order_by("id"):
        assert device.customer_id is not None  # filtered on it
        if device.product_id == wanted[device.customer_id]:
            found[device.customer_id].append(device)
    return [found[customer_id] for customer_id, _product_id in customers]
