"""Cursor connections over ORM querysets, with keyset (not offset) cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from strawberry import relay
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from api.graphql.errors import client_error
from api.graphql.limits import MAX_PAGE_SIZE

M = TypeVar("M")
N = TypeVar("N")

DEFAULT_PAGE_SIZE = 20


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != width:
        raise client_error("The `after` cursor is not one this API gave out.", "INVALID_CURSOR")
    return values


def check_first(first: int) -> None:
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise client_error(f"`first` must be between 0 and {MAX_PAGE_SIZE}.", "INVALID_ARGUMENT")


async def paginate(
    queryset: QuerySet[M],
    *,
    order: tuple[str, ...],
    first: int,
    after: str | None,
    to_node: Callable[[M], N],
    parse: Callable[[list[Any]], list[Any]] = lambda values: values,
) -> relay.Connection[N]:
    """Page `queryset` by the keyset `order` (field names, '-' for descending; the last one
    must be unique). The cursor holds the sort key of the last row, so pages stay stable
    while rows are added."""
    check_first(first)
    fields = [name.lstrip("-") for name in order]
    if after is not None:
        queryset = queryset.filter(_after(order, parse(decode_cursor(after, len(order)))))
    rows = await queryset.order_by(*order).limit(first + 1)
    page = rows[:first]
    edges = [
        relay.Edge(node=to_node(row), cursor=encode_cursor([getattr(row, f) for f in fields]))
        for row in page
    ]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=len(rows) > first,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def _after(order: tuple[str, ...], values: list[Any]) -> Q:
    """Rows strictly after `values` in `order`: (a > x) or (a = x and b > y) …"""
    condition: Q | None = None
    for depth in range(len(order) - 1, -1, -1):
        name = order[depth]
        field = name.lstrip("-")
        op = "lt" if name.startswith("-") else "gt"
        step = Q(**{f"{field}__{op}": values[depth]})
        if condition is not None:
            step = step | (Q(**{field: values[depth]}) & condition)
        condition = step
    assert condition is not None
    return condition
