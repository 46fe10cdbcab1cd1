"""Per-request DataLoaders: one query per relation per request, never one per row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from api.graphql.context import Context
from models.oauth import OAuthClient
from models.organizations import Organization


async def _organizations(ids: Sequence[int]) -> list[Organization | None]:
    found = {o.id: o for o in await Organization.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _product_clients(product_ids: Sequence[int]) -> list[list[OAuthClient]]:
    grouped: dict[int, list[OAuthClient]] = defaultdict(list)
    for client in await OAuthClient.filter(
        product_id__in=list(product_ids), deleted_at=None
    ).order_by("id"):
        grouped[client.product_id].append(client)
    return [grouped[i] for i in product_ids]


_BATCHES: dict[str, Callable[[Sequence[Any]], Awaitable[list[Any]]]] = {
    "organization": _organizations,
    "product_clients": _product_clients,
}


def loader(context: Context, name: str) -> DataLoader[Any, Any]:
    """The request's DataLoader called `name`, created on first use."""
    if name not in context.loaders:
        context.loaders[name] = DataLoader(load_fn=_BATCHES[name])
    return context.loaders[name]
