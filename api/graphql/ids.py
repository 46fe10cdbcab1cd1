"""Global IDs (Relay): opaque to clients, decoded here into a model's primary key."""

from __future__ import annotations

from strawberry import relay

from core.errors import InvalidInput


def decode_id(global_id: relay.GlobalID, type_name: str, field: str) -> int:
    """The primary key inside `global_id`, which must name a `type_name`."""
    if global_id.type_name != type_name or not global_id.node_id.isdigit():
        raise InvalidInput(f"This is not the ID of a {type_name}.", field=field, code="INVALID_ID")
    return int(global_id.node_id)
