"""Event queries: a product's log."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.events.types import Event, EventFilter
from api.graphql.ids import decode_id
from api.graphql.pagination import DEFAULT_PAGE_SIZE
from core.errors import NotFound
from fleet import events


@strawberry.type
class EventQueries:
    @strawberry.field(description="A product's log, newest first: for its team and its SERVER "
                                  "client (which cannot see the product itself).")
    async def product_events(
        self,
        info: Info,
        product_id: relay.GlobalID,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: EventFilter | None = None,
    ) -> relay.Connection[Event] | None:
        try:
            _product, history = await events.product_log(
                info.context.principal, decode_id(product_id, "Product", "productId"),
                filter.to_domain() if filter else events.EventFilter())
        except NotFound:
            return None
        return await Event.page(history, first=first, after=after)
