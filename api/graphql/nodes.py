"""Relay node lookups: the node for each global ID the caller may see, null for the others.

Which ones the caller may see is `fleet.access`'s to say (its `visible_*` functions). Our
`resolve_nodes` answer null for what the caller may not see whatever `required` says (the
`node` field asks with `required=False`), so they do not match the overloads of Strawberry's
`Node.resolve_nodes`, which promise no nulls when `required` is true."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from api.graphql.context import Info
from auth.principals import AnyPrincipal
from core.text import parse_key

M = TypeVar("M")
N = TypeVar("N")


async def visible_nodes(
    info: Info,
    node_ids: Iterable[str],
    find: Callable[[AnyPrincipal, Sequence[int]], Awaitable[Mapping[int, M]]],
    to_node: Callable[[M], N],
) -> list[N | None]:
    """The nodes of `node_ids` (primary keys) that `find` returns for the caller, in order;
    null for an ID that is not a key or that `find` leaves out."""
    keys = [parse_key(node_id) for node_id in node_ids]
    found = await find(info.context.principal, [key for key in keys if key is not None])
    return [to_node(found[key]) if key is not None and key in found else None for key in keys]
