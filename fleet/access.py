"""Who may reach what: the one place that answers "may this principal reach this thing".

- A **team member** (a platform user on the organization's team) reaches the organization,
  its team, invitations, audit log, products, OAuth clients, devices (those in a product's
  quarantine too), customers and events, each role as `fleet.permissions` says.
- A **third-party app** acting for a member reaches only devices, within the scopes of its
  token (`app_scope`); nothing else a member may do is any app's to do for them.
- A **customer** reaches themself and their own devices (`is_customers_device`): seeing them,
  their events since the claim, calling functions and reading variables
  (`CUSTOMER_PERMISSIONS`), nothing else.
- A **product client** acting for itself: the product's SERVER client watches and publishes
  the product's events and calls its devices; its apps and its server manage its customers.
- The **claimer** of a device in no product reaches that device.

Anyone else gets `NotFound`, never a hint that the thing exists. A member whose role (or app)
does not allow what they ask gets `PermissionDenied`.

The `visible_*` functions answer Relay node lookups: the things among `ids` the principal may
see, by ID, leaving out the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from tortoise.queryset import QuerySet

from auth import accounts, scopes
from auth.principals import (
    AnyPrincipal,
    ClientPrincipal,
    CustomerPrincipal,
    UserPrincipal,
    is_third_party_app,
    require_user,
)
from auth.scopes import Scope
from core.errors import CoreCode, DomainError, InvalidInput, NotFound, PermissionDenied
from core.text import SLUG_MAX, parse_key
from fleet.device_ids import parse_device_id
from fleet.permissions import Permission, require
from models.accounts import User
from models.customers import Customer
from models.devices import Device, Event, Quarantine
from models.oauth import ClientType, OAuthClient, TokenFamily
from models.organizations import AuditEntry, Invitation, Membership, Organization, Role
from models.products import Product

# What a customer may do with their own devices. Everything else (settings, removal,
# quarantine decisions, anything product-wide) is `NotFound` to them.
CUSTOMER_PERMISSIONS = frozenset({Permission.DEVICE_VIEW, Permission.DEVICE_CALL})


@dataclass(frozen=True)
class Member:
    """A signed-in user acting inside their organization, with their role."""

    principal: UserPrincipal
    membership: Membership

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    @property
    def organization_id(self) -> int:
        return self.membership.organization_id

    def require(self, permission: Permission) -> None:
        require(self.role, permission)


# --- team members and third-party apps ---------------------------------------------------


def require_app_scope(principal: AnyPrincipal, scope: Scope | None) -> None:
    """Raise `PermissionDenied` when the principal acts through a third-party app whose token
    does not hold `scope` (None: something no app's token may do). Anyone else passes."""
    if not isinstance(principal, UserPrincipal) or not is_third_party_app(principal):
        return
    granted = scopes.parse(principal.scope) or set()
    if scope is None or scope not in granted:
        raise PermissionDenied("This app's token does not allow this.")


def account_holder(principal: AnyPrincipal) -> User | None:
    """The signed-in user acting for themself: not through a third-party app, whose token
    never reaches account matters (sessions, invitations)."""
    if not isinstance(principal, UserPrincipal) or is_third_party_app(principal):
        return None
    return principal.user


async def as_member(
    principal: AnyPrincipal,
    organization_id: int,
    *,
    hidden: NotFound | None = None,
    app_scope: Scope | None = None,
) -> Member:
    """The caller as a member of the organization. Anyone else (anonymous, clients, customers,
    members of other organizations) gets `NotFound` (`hidden`, when the caller asked about
    something inside the organization), never a hint that it exists.

    A member acting through a third-party app gets `PermissionDenied` unless the app's token
    holds `app_scope`. Only the device-level paths name one (`device_access`): whatever else a
    member may do (the organization, its team, products and their settings, OAuth clients,
    imports, publishing, managing devices, product-wide lists and logs, leaving the team) no
    third-party app may do for them."""
    if isinstance(principal, UserPrincipal):
        membership = await Membership.get_or_none(
            user_id=principal.user.id, organization_id=organization_id
        )
        if membership is not None:
            require_app_scope(principal, app_scope)
            return Member(principal, membership)
    raise hidden or NotFound("No such organization.", field="organizationId")


async def organization_member(
    principal: AnyPrincipal, organization_id: int, permission: Permission
) -> Member:
    """The caller as a member of the organization whose role allows `permission`."""
    member = await as_member(principal, organization_id)
    member.require(permission)
    return member


async def teammate(principal: AnyPrincipal, membership_id: int) -> tuple[Member, Membership]:
    """The acting member and the teammate they act on (same organization, or NotFound)."""
    missing = NotFound("No such team member.", field="memberId")
    target = await Membership.get_or_none(id=membership_id).select_related("user")
    if target is None:
        raise missing
    member = await as_member(principal, target.organization_id, hidden=missing)
    return member, target


async def own_invitation(principal: AnyPrincipal, invitation_id: int
                         ) -> tuple[UserPrincipal, Invitation]:
    """An invitation addressed to the signed-in user acting for themself."""
    actor = require_user(principal)
    invitation = await Invitation.get_or_none(id=invitation_id, email=actor.user.email)
    if invitation is None:
        raise NotFound("No such invitation.", field="invitationId")
    return actor, invitation


async def managed_invitation(principal: AnyPrincipal, invitation_id: int
                             ) -> tuple[Member, Invitation]:
    """An invitation of the caller's organization, for a member who manages the team."""
    missing = NotFound("No such invitation.", field="invitationId")
    invitation = await Invitation.get_or_none(id=invitation_id)
    if invitation is None:
        raise missing
    member = await as_member(principal, invitation.organization_id, hidden=missing)
    member.require(Permission.TEAM_MANAGE)
    return member, invitation


# --- products and their clients ------------------------------------------------------------


def _no_product() -> NotFound:
    return NotFound("No such product.", field="productId")


async def product_member(principal: AnyPrincipal, product_id: int, permission: Permission
                         ) -> tuple[Member, Product]:
    """The product and the member of its organization whose role allows `permission`."""
    missing = _no_product()
    product = await Product.get_or_none(id=product_id)
    if product is None:
        raise missing
    member = await as_member(principal, product.organization_id, hidden=missing)
    member.require(permission)
    return member, product


def looked_up_slug(value: str, field: str) -> str:
    """A slug to look up, refused before any query if no slug could be that long (the
    database would refuse the comparison)."""
    if len(value) > SLUG_MAX:
        raise InvalidInput(f"A slug is at most {SLUG_MAX} characters.", field=field,
                           code=CoreCode.INVALID_SLUG)
    return value


async def product_by_id_or_slug(principal: AnyPrincipal, id_or_slug: str) -> Product:
    """A product by numeric ID or slug, for members of its organization."""
    key = parse_key(looked_up_slug(id_or_slug, "idOrSlug"))
    product = await (
        Product.get_or_none(id=key) if key is not None else Product.get_or_none(slug=id_or_slug)
    )
    if product is None:
        raise NotFound("No such product.", field="idOrSlug")
    _member, product = await product_member(principal, product.id, Permission.PRODUCT_VIEW)
    return product


async def product_clients_viewer(principal: AnyPrincipal, products: Sequence[Product]) -> None:
    """Check that the caller may see the OAuth clients of every product in `products`, once
    per organization."""
    for organization_id in {p.organization_id for p in products}:
        member = await as_member(principal, organization_id, hidden=_no_product())
        member.require(Permission.OAUTH_CLIENT_VIEW)


async def product_client(principal: AnyPrincipal, client_id: str
                         ) -> tuple[Member, OAuthClient, Product]:
    """A product's live OAuth client, for a member who manages its clients."""
    client = await OAuthClient.get_or_none(client_id=client_id, deleted_at=None,
                                          product_id__not_isnull=True)
    missing = NotFound("No such OAuth client.", field="clientId")
    if client is None:
        raise missing
    product = await Product.get(id=client.product_id)
    member = await as_member(principal, product.organization_id, hidden=missing)
    member.require(Permission.OAUTH_CLIENT_MANAGE)
    return member, client, product


def is_server_of(principal: AnyPrincipal, product_id: int | None) -> bool:
    """The principal is the product's own SERVER client."""
    return (
        isinstance(principal, ClientPrincipal)
        and product_id is not None
        and principal.client.product_id == product_id
        and principal.client.kind == ClientType.SERVER
    )


async def _product(id_or_slug: int | str) -> Product:
    key = id_or_slug if isinstance(id_or_slug, int) else parse_key(id_or_slug)
    product = await Product.get_or_none(id=key) if key is not None else None
    if product is None and isinstance(id_or_slug, str):
        product = await Product.get_or_none(slug=looked_up_slug(id_or_slug, "idOrSlug"))
    if product is None:
        raise _no_product()
    return product


async def product_for_server_or_member(
    principal: AnyPrincipal, id_or_slug: int | str, permission: Permission
) -> Product:
    """The product, if the principal is its SERVER client or a member with `permission`."""
    product = await _product(id_or_slug)
    if not is_server_of(principal, product.id):
        member = await as_member(principal, product.organization_id, hidden=_no_product())
        member.require(permission)
    return product


async def watchable_product(principal: AnyPrincipal, id_or_slug: int | str) -> Product:
    """A product whose events the principal may see (every team role, and the product's
    SERVER client); anyone else gets `NotFound` (customers too: a product's log is not
    theirs), and a third-party app's token `PermissionDenied` (product-wide)."""
    return await product_for_server_or_member(principal, id_or_slug, Permission.DEVICE_VIEW)


async def customer_manager(
    principal: AnyPrincipal, product_id: int, clients: frozenset[ClientType], hidden: NotFound
) -> tuple[Member | None, Product]:
    """The caller managing the product's customers: one of the product's own clients of the
    kinds in `clients` (member None), or a team member allowed to manage devices."""
    product = await Product.get_or_none(id=product_id)
    if product is None:
        raise hidden
    if isinstance(principal, ClientPrincipal):
        client = principal.client
        if client.product_id == product.id and client.kind in clients:
            return None, product
    member = await as_member(principal, product.organization_id, hidden=hidden)
    member.require(Permission.DEVICE_MANAGE)
    return member, product


# --- customers ---------------------------------------------------------------------------


async def customer(principal: AnyPrincipal, customer_id: int) -> Customer:
    """A customer, for their product's team and for themself."""
    missing = NotFound("No such customer.", field="customerId")
    if isinstance(principal, CustomerPrincipal):
        if principal.customer.id != customer_id:
            raise missing
        return await Customer.get(id=customer_id)
    found = await Customer.get_or_none(id=customer_id).select_related("product")
    if found is None:
        raise missing
    member = await as_member(principal, found.product.organization_id, hidden=missing)
    member.require(Permission.DEVICE_VIEW)
    return found


# --- devices -----------------------------------------------------------------------------


def _no_device() -> NotFound:
    return NotFound("No such device.", field="deviceId")


def is_customers_device(customer: Customer, device: Device) -> bool:
    """The device is the customer's: claimed by (or assigned to) them, and one of their
    product's own devices (not moved elsewhere, not in a quarantine)."""
    return (
        device.customer_id == customer.id
        and device.product_id == customer.product_id
        and device.quarantine == Quarantine.NONE
    )


def customer_devices(principal: AnyPrincipal) -> QuerySet[Device]:
    """The signed-in customer's devices (`is_customers_device`). Anyone else: `NotFound`."""
    if not isinstance(principal, CustomerPrincipal):
        raise NotFound("Only a customer has devices of their own.")
    customer = principal.customer
    return Device.filter(
        customer_id=customer.id, product_id=customer.product_id, quarantine=Quarantine.NONE
    )


def _is_claimer(principal: AnyPrincipal, device: Device) -> bool:
    return (
        isinstance(principal, UserPrincipal)
        and device.claimed_by_id is not None
        and device.claimed_by_id == principal.user.id
    )


async def _find_device(device_id: str) -> Device:
    device = await Device.get_or_none(id=parse_device_id(device_id))
    if device is None:
        raise _no_device()
    return device


async def device_access(
    principal: AnyPrincipal, device: Device, permission: Permission, app_scope: Scope | None
) -> Member | None:
    """Check that the principal may do `permission` on the device: its product's team (each
    role as `fleet.permissions` says), its customer (`CUSTOMER_PERMISSIONS`), the claimer of
    a device in no product; through a third-party app, only with `app_scope` in the token
    (None: never). Returns the member acting, or None for the device's customer or claimer.
    Raises `NotFound` for anyone who may not reach the device, `PermissionDenied` for a member
    whose role (or app) does not allow `permission`."""
    if isinstance(principal, CustomerPrincipal):
        if permission in CUSTOMER_PERMISSIONS and is_customers_device(principal.customer, device):
            return None
        raise _no_device()
    if device.product_id is None:
        if not _is_claimer(principal, device):
            raise _no_device()
        require_app_scope(principal, app_scope)
        return None
    product = await Product.get(id=device.product_id)
    member = await as_member(principal, product.organization_id, hidden=_no_device(),
                             app_scope=app_scope)
    member.require(permission)
    return member


async def device(
    principal: AnyPrincipal, device_id: str, permission: Permission, app_scope: Scope | None
) -> tuple[Device, Member | None]:
    """The device and the member acting on it, if the principal may do `permission` on it
    (`device_access`); a malformed ID is `InvalidInput`."""
    found = await _find_device(device_id)
    return found, await device_access(principal, found, permission, app_scope)


async def watchable_device(principal: AnyPrincipal, device_id: str) -> Device:
    """A device whose events the principal may see: whoever may see it (`device_access`; a
    third-party app's token with `events:read`), and the SERVER client of its product."""
    found = await _find_device(device_id)
    if not is_server_of(principal, found.product_id):
        await device_access(principal, found, Permission.DEVICE_VIEW, Scope.EVENTS_READ)
    return found


async def callable_device(principal: AnyPrincipal, device_id: str) -> Device:
    """The device, if the principal may call its functions and read its variables: support
    and up in its product's team, the device's customer, the product's SERVER client, the user
    who claimed a device in no product, or a third-party app's token with `devices:call`.
    Anyone else gets `NotFound`."""
    found = await _find_device(device_id)
    if not is_server_of(principal, found.product_id):
        await device_access(principal, found, Permission.DEVICE_CALL, Scope.DEVICES_CALL)
    return found


async def watchable_devices(principal: AnyPrincipal, device_ids: Sequence[str]
                            ) -> list[Device | DomainError]:
    """`watchable_device` for many devices at once (a page of them): each device, or the
    error `watchable_device` raises for it, in a fixed number of queries."""
    return await _devices_access(principal, device_ids, Permission.DEVICE_VIEW, Scope.EVENTS_READ)


async def callable_devices(principal: AnyPrincipal, device_ids: Sequence[str]
                           ) -> list[Device | DomainError]:
    """`callable_device` for many devices at once, as `watchable_devices`."""
    return await _devices_access(principal, device_ids, Permission.DEVICE_CALL,
                                 Scope.DEVICES_CALL)


async def _devices_access(
    principal: AnyPrincipal, device_ids: Sequence[str], permission: Permission,
    app_scope: Scope,
) -> list[Device | DomainError]:
    """`device_access` (the product's SERVER client passing) for many devices: three queries
    (the devices, their products' organizations, the caller's memberships of those) whatever
    their number, not three per device."""
    parsed: list[str | DomainError] = []
    for device_id in device_ids:
        try:
            parsed.append(parse_device_id(device_id))
        except DomainError as error:
            parsed.append(error)
    found = {
        device.id: device
        for device in await Device.filter(id__in=[p for p in parsed if isinstance(p, str)])
    }
    product_ids = {d.product_id for d in found.values() if d.product_id is not None}
    organization_of: dict[int, int] = dict(
        await Product.filter(id__in=list(product_ids)).values_list("id", "organization_id")
    ) if product_ids and isinstance(principal, UserPrincipal) else {}
    memberships = {
        m.organization_id: m
        for m in await Membership.filter(
            user_id=principal.user.id, organization_id__in=set(organization_of.values())
        )
    } if organization_of and isinstance(principal, UserPrincipal) else {}
    results: list[Device | DomainError] = []
    for key in parsed:
        try:
            if not isinstance(key, str):
                raise key
            device = found.get(key)
            if device is None:
                raise _no_device()
            if is_server_of(principal, device.product_id):
                pass
            elif isinstance(principal, UserPrincipal) and device.product_id is not None:
                membership = memberships.get(organization_of[device.product_id])
                if membership is None:
                    raise _no_device()
                require_app_scope(principal, app_scope)
                Member(principal, membership).require(permission)
            elif isinstance(principal, CustomerPrincipal) or device.product_id is None:
                # These paths of `device_access` (customer, claimer) need no query.
                await device_access(principal, device, permission, app_scope)
            else:
                raise _no_device()  # a client, not the product's SERVER one
            results.append(device)
        except DomainError as error:
            results.append(error)
    return results


def sees_event_of(principal: AnyPrincipal, device: Device, event: Event) -> bool:
    """Whether the principal, who may watch `device`, sees its `event`: only those it published
    in its current product (or in none), since what it published elsewhere is no business of
    this product's team, and for its customer only those since they claimed it, since a
    previous owner's are none of theirs (the history `fleet.events.device_log` gives)."""
    if event.product_id != device.product_id:
        return False
    if isinstance(principal, CustomerPrincipal):
        return device.claimed_at is not None and event.published_at >= device.claimed_at
    return True


# --- node lookups ------------------------------------------------------------------------


async def _allowed(check: Awaitable[object], hidden: tuple[type[DomainError], ...]) -> bool:
    """Whether `check` passes; it failing with one of `hidden` means no."""
    try:
        await check
    except hidden:
        return False
    return True


_OUTSIDER = (NotFound, PermissionDenied)


async def visible_sessions(principal: AnyPrincipal, ids: Sequence[int]
                           ) -> dict[int, TokenFamily]:
    """The signed-in user's live sessions (never through a third-party app)."""
    if account_holder(principal) is None or not ids:
        return {}
    sessions = accounts.live_sessions(require_user(principal)).filter(id__in=list(ids))
    return {family.id: family for family in await sessions}


async def visible_organizations(principal: AnyPrincipal, ids: Sequence[int]
                                ) -> dict[int, Organization]:
    """Organizations the principal belongs to (not through a third-party app)."""
    allowed = [i for i in ids if await _allowed(
        organization_member(principal, i, Permission.ORGANIZATION_VIEW), _OUTSIDER)]
    return {o.id: o for o in await Organization.filter(id__in=allowed)}


async def visible_members(principal: AnyPrincipal, ids: Sequence[int]) -> dict[int, Membership]:
    """Memberships of the principal's organization, for its team."""
    found = {}
    for membership in await Membership.filter(id__in=list(ids)).select_related("user"):
        if await _allowed(organization_member(
                principal, membership.organization_id, Permission.TEAM_VIEW), _OUTSIDER):
            found[membership.id] = membership
    return found


async def visible_invitations(principal: AnyPrincipal, ids: Sequence[int]
                              ) -> dict[int, Invitation]:
    """Invitations of the principal's organization, for those who manage its team, and those
    addressed to the signed-in user (never through a third-party app)."""
    holder = account_holder(principal)
    if holder is None:
        return {}
    found = {}
    for invitation in await Invitation.filter(id__in=list(ids)):
        if invitation.email == holder.email or await _allowed(organization_member(
                principal, invitation.organization_id, Permission.TEAM_MANAGE), _OUTSIDER):
            await invitation.fetch_related("invited_by", "organization")
            found[invitation.id] = invitation
    return found


async def visible_audit_entries(principal: AnyPrincipal, ids: Sequence[int]
                                ) -> dict[int, AuditEntry]:
    """Audit entries of the principal's organization, for its administrators."""
    found = {}
    for entry in await AuditEntry.filter(id__in=list(ids)):
        if await _allowed(organization_member(
                principal, entry.organization_id, Permission.AUDIT_VIEW), _OUTSIDER):
            found[entry.id] = entry
    return found


async def visible_products(principal: AnyPrincipal, ids: Sequence[int]) -> dict[int, Product]:
    """Products of the principal's organization. A third-party app's token gets
    `PermissionDenied` (product-wide)."""
    found = {}
    for product_id in ids:
        try:
            found[product_id] = await product_by_id_or_slug(principal, str(product_id))
        except NotFound:
            continue
    return found


async def visible_customers(principal: AnyPrincipal, ids: Sequence[int]) -> dict[int, Customer]:
    """Customers of the principal's organization's products, and the customer themself. A
    third-party app's token gets `PermissionDenied`."""
    found = {}
    for customer_id in ids:
        try:
            found[customer_id] = await customer(principal, customer_id)
        except NotFound:
            continue
    return found


async def visible_devices(principal: AnyPrincipal, ids: Sequence[str]) -> dict[str, Device]:
    """Devices the principal may see (`device_access`; a third-party app's token needs
    `devices:read`, or gets `PermissionDenied`)."""
    found = {}
    for device_id in ids:
        try:
            seen, _member = await device(principal, device_id, Permission.DEVICE_VIEW,
                                         Scope.DEVICES_READ)
        except (NotFound, InvalidInput):
            continue
        found[device_id] = seen
    return found


async def visible_events(principal: AnyPrincipal, ids: Sequence[int]) -> dict[int, Event]:
    """Events of a product whose log the principal may watch (`watchable_product`), and events
    of a device the principal may watch, while it is still in the event's product and as
    `sees_event_of` says."""
    found = {}
    for event in await Event.filter(id__in=list(ids)):
        if event.product_id is not None and await _allowed(
                watchable_product(principal, event.product_id), (DomainError,)):
            found[event.id] = event
        elif event.device_id is not None:
            try:
                watched = await watchable_device(principal, event.device_id)
            except DomainError:
                continue
            if sees_event_of(principal, watched, event):
                found[event.id] = event
    return found
