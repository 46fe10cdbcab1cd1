"""Per-request DataLoaders: one query per relation per request, never one per row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from api.graphql.context import Context
from fleet import products
from models.oauth import OAuthClient
from models.organizations import Organization
from models.products import Product


async def _organizations(context: Context, ids: Sequence[int]) -> list[Organization | None]:
    """Organizations by ID, for objects the caller was already allowed to see."""
    found = {o.id: o for o in await Organization.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _products(context: Context, ids: Sequence[int]) -> list[Product | None]:
    """Products by ID, for objects the caller was already allowed to see (their devices)."""
    found = {p.id: p for p in await Product.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _product_clients(context: Context, product_ids: Sequence[int]
                           ) -> list[list[OAuthClient]]:
    return await products.oauth_clients_of(context.principal, product_ids)


_BATCHES: dict[str, Callable[[Context, Sequence[Any]], Awaitable[list[Any]]]] = {
    "organization": _organizations,
    "product": _products,
    "product_clients": _product_clients,
}


def loader(context: Context, name: str) -> DataLoader[Any, Any]:
    """The request's DataLoader called `name`, created on first use."""
    if name not in context.loaders:
        batch = _BATCHES[name]
        context.loaders[name] = DataLoader(load_fn=lambda keys: batch(context, keys))
    return context.loaders[name]
