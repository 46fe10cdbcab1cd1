"""Per-request DataLoaders: one query per relation per request, never one per row.

Every loader of the API is here, created on first use in a request (a socket's operations each
get fresh ones, `WebSocketAuthentication`). Those marked "already allowed" load relations of
objects the caller was allowed to see; the others check access per key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.graphql.context import Context
from core.errors import DomainError
from fleet import access, customers, devices, products, sims
from models.devices import Device
from models.oauth import OAuthClient
from models.organizations import Organization
from models.products import Product

K = TypeVar("K")
V = TypeVar("V")


def _loader(context: Context, name: str,
            load: Callable[[Sequence[K]], Awaitable[Sequence[V | BaseException]]]
            ) -> DataLoader[K, V]:
    """The request's loader `name`; a key whose value `load` gives as an exception raises it
    when loaded."""
    if name not in context.loaders:
        context.loaders[name] = DataLoader(load_fn=load)
    loader: DataLoader[K, V] = context.loaders[name]
    return loader


async def _by_id(model: Any, ids: Sequence[Any]) -> list[Any]:
    found = {row.id: row for row in await model.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


def organizations(context: Context) -> DataLoader[int, Organization | None]:
    """Organizations by ID (already allowed: their products)."""
    return _loader(context, "organizations", lambda ids: _by_id(Organization, ids))


def devices_by_id(context: Context) -> DataLoader[str, Device | None]:
    """Devices by ID (already allowed: their events; whether the caller may see the device is
    `Event.device`'s to decide)."""
    return _loader(context, "devices", lambda ids: _by_id(Device, ids))


def customer_devices(context: Context) -> DataLoader[tuple[int, int], list[Device]]:
    """The devices of each (customer ID, product ID) (already allowed: the customers)."""
    return _loader(context, "customer_devices", customers.devices_of)


def product_clients(context: Context) -> DataLoader[int, list[OAuthClient]]:
    """Each product's live OAuth clients; `NotFound` for a product the caller may not see."""
    return _loader(context, "product_clients",
                   lambda ids: products.oauth_clients_of(context.principal, ids))


def visible_products(context: Context) -> DataLoader[int, Product | None]:
    """Products by ID, None where the caller may not see the product (only its team may: its
    SERVER client reads the log but not the product, customers see their devices but not the
    product). A page names one product (or few), so this is an access check or a few per
    request."""

    async def load(ids: Sequence[int]) -> list[Product | None]:
        found: list[Product | None] = []
        for product_id in ids:
            try:
                found.append(await products.get_product(context.principal, str(product_id)))
            except DomainError:
                found.append(None)
        return found

    return _loader(context, "visible_products", load)


def visible_devices(context: Context) -> DataLoader[str, bool]:
    """Whether the caller may see each device (its customer may, without seeing its product):
    an access check per distinct device of a page."""

    async def load(ids: Sequence[str]) -> list[bool]:
        seen: list[bool] = []
        for device_id in ids:
            try:
                await devices.get_device(context.principal, device_id)
            except DomainError:
                seen.append(False)
            else:
                seen.append(True)
        return seen

    return _loader(context, "visible_devices", load)


def watchable_devices(context: Context) -> DataLoader[str, Device]:
    """Devices whose events the caller may see (`access.watchable_devices`: a fixed number of
    queries for a page of them); loading one the caller may not watch raises its error."""
    return _loader(context, "watchable_devices",
                   lambda ids: access.watchable_devices(context.principal, ids))


def callable_devices(context: Context) -> DataLoader[str, Device]:
    """Devices whose variables the caller may read (`access.callable_devices`), as
    `watchable_devices`."""
    return _loader(context, "callable_devices",
                   lambda ids: access.callable_devices(context.principal, ids))


def sim_states(context: Context) -> DataLoader[str, bool]:
    """Whether each cellular device's SIM is active (already allowed: the devices)."""

    async def load(ids: Sequence[str]) -> list[bool]:
        states = await sims.sim_states(ids)
        return [states.get(device_id, True) for device_id in ids]

    return _loader(context, "sim_states", load)
