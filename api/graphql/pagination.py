"""Cursor connections over ORM querysets, with keyset (not offset) cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from strawberry import relay
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.errors import ApiCode
from api.graphql.errors import client_error
from api.graphql.limits import MAX_PAGE_SIZE

M = TypeVar("M", bound=Model)
N = TypeVar("N", bound=relay.Node)

DEFAULT_PAGE_SIZE = 20


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def _bad_cursor() -> Exception:
    return client_error("The `after` cursor is not one this API gave out.", ApiCode.INVALID_CURSOR)


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != width:
        raise _bad_cursor()
    return values


# Cursor parsers (`paginate(parse=…)`): a decoded cursor's values checked and turned back into
# the sort key's types, or INVALID_CURSOR.


def _is_bigint(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def integer_cursor(values: list[Any]) -> list[Any]:
    """Integer keys, such as ("-id",)."""
    if not all(_is_bigint(value) for value in values):
        raise _bad_cursor()
    return values


def text_cursor(values: list[Any]) -> list[Any]:
    """Text keys, such as a device ID."""
    if not all(isinstance(value, str) for value in values):
        raise _bad_cursor()
    return values


def heard_cursor(values: list[Any]) -> list[Any]:
    """("-last_heard_at", "id") of devices: a moment or null, then a device ID."""
    heard, device_id = values
    if not isinstance(device_id, str) or not (heard is None or isinstance(heard, str)):
        raise _bad_cursor()
    try:
        return [None if heard is None else datetime.fromisoformat(heard), device_id]
    except ValueError:
        raise _bad_cursor() from None


def created_cursor(values: list[Any]) -> list[Any]:
    """("-created_at", "-id"): a moment, then an integer ID."""
    created, key = values
    if isinstance(created, str) and _is_bigint(key):
        try:
            return [datetime.fromisoformat(created), key]
        except ValueError:
            pass
    raise _bad_cursor()


def check_first(first: int) -> None:
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise client_error(f"`first` must be between 0 and {MAX_PAGE_SIZE}.",
                           ApiCode.INVALID_ARGUMENT)


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
    return _connection(rows, fields, first=first, after=after, to_node=to_node)


async def paginate_nulls_last(
    queryset: QuerySet[M],
    *,
    order: tuple[str, str],
    first: int,
    after: str | None,
    to_node: Callable[[M], N],
    parse: Callable[[list[Any]], list[Any]] = lambda values: values,
) -> relay.Connection[N]:
    """Like `paginate` for an `order` of a nullable field then a unique one, such as
    ("-last_heard_at", "id"): rows with the first field set come first, then the others by
    the second field alone. The databases disagree on where NULL sorts and a keyset condition
    cannot compare with NULL, so the two parts are read as two queries."""
    check_first(first)
    nullable, unique = (name.lstrip("-") for name in order)
    values = parse(decode_cursor(after, 2)) if after is not None else None
    rows: list[M] = []
    if values is None or values[0] is not None:
        present = queryset.filter(**{f"{nullable}__isnull": False})
        if values is not None:
            present = present.filter(_after(order, values))
        rows = list(await present.order_by(*order).limit(first + 1))
    if len(rows) <= first:
        absent = queryset.filter(**{f"{nullable}__isnull": True})
        if values is not None and values[0] is None:
            absent = absent.filter(_after(order[1:], values[1:]))
        rows += await absent.order_by(order[1]).limit(first + 1 - len(rows))
    return _connection(rows, [nullable, unique], first=first, after=after, to_node=to_node)


def _connection(
    rows: list[M], fields: list[str], *, first: int, after: str | None, to_node: Callable[[M], N]
) -> relay.Connection[N]:
    """A page of `first` rows out of `rows` (one more tells that a next page exists)."""
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
