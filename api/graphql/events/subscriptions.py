"""Event subscriptions: live product and device events (over graphql-transport-ws)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.events.types import Event
from api.graphql.ids import decode_id
from auth.principals import AnyPrincipal
from core.errors import Unauthenticated
from core.settings import Settings
from fleet import live


@strawberry.type(description="An item of a live event stream: an event, or how many events "
                             "you missed at this point because you read too slowly.")
class EventStreamItem:
    event: Event | None = strawberry.field(description="null when the item reports missed "
                                                       "events.")
    missed: int = strawberry.field(description="How many events you missed just before this "
                                               "point: 0 with an event, -1 when the number is "
                                               "unknown.")

    @classmethod
    def of(cls, item: live.StreamItem) -> EventStreamItem:
        if isinstance(item, live.Missed):
            return cls(event=None, missed=item.count)
        return cls(event=Event.from_live(item), missed=0)


SIGN_IN_TO_WATCH = (
    "An access token is required to watch events: send it in connection_init's payload as "
    "authorization, Authorization, authToken or headers.Authorization (\"Bearer <token>\" or "
    "the token alone), or as the upgrade request's Authorization: Bearer header."
)


def _watcher(info: Info) -> AnyPrincipal:
    """Who subscribes: every stream is someone's to watch, so an anonymous socket is told to
    authenticate (rather than that the product or device does not exist)."""
    if info.context.principal is None:
        raise Unauthenticated(SIGN_IN_TO_WATCH)
    return info.context.principal


def _settings(info: Info) -> Settings:
    return info.context.request.app.state.settings


async def _items(stream: live.EventStream) -> AsyncGenerator[EventStreamItem, None]:
    async with stream:
        async for item in stream:
            yield EventStreamItem.of(item)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="A product's events as they are published: for every "
                                         "team role and the product's SERVER client. Ends with "
                                         "an error when your access ends.")
    async def product_events(
        self, info: Info, product_id: relay.GlobalID, prefix: str | None = None
    ) -> AsyncGenerator[EventStreamItem, None]:
        stream = await live.product_stream(
            _watcher(info), decode_id(product_id, "Product", "productId"),
            token=info.context.token, settings=_settings(info), prefix=prefix,
        )
        return _items(stream)

    @strawberry.subscription(description="A device's events as they are published, for whoever "
                                         "may see the device. Ends with an error when your "
                                         "access ends.")
    async def device_events(
        self, info: Info, device_id: str, prefix: str | None = None
    ) -> AsyncGenerator[EventStreamItem, None]:
        stream = await live.device_stream(
            _watcher(info), device_id, token=info.context.token, settings=_settings(info),
            prefix=prefix,
        )
        return _items(stream)
