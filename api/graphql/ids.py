"""Global IDs (Relay): opaque to clients, decoded here into a model's primary key."""

from __future__ import annotations

from strawberry import relay

from api.errors import ApiCode
from core.errors import InvalidInput
from core.text import parse_key


def decode_id(global_id: relay.GlobalID, type_name: str, field: str) -> int:
    """The primary key inside `global_id`, which must name a `type_name`."""
    key = parse_key(global_id.node_id) if global_id.type_name == type_name else None
    if key is None:
        raise InvalidInput(f"This is not the ID of {_article(type_name)} {type_name}.",
                           field=field, code=ApiCode.INVALID_ID)
    return key


def _article(noun: str) -> str:
    return "an" if noun[0] in "AEIOU" else "a"
