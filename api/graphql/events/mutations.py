"""Event mutations: publishing as the product, and calling a device's function."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.events.types import Event
from api.graphql.ids import decode_id
from fleet import events, rpc


@strawberry.input
class CallFunctionInput:
    device_id: str
    name: str
    argument: str = strawberry.field(default="", description="At most 1024 characters.")


@strawberry.type
class CallFunctionPayload:
    return_value: int | None = strawberry.field(
        default=None, description="What the function returned.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PublishEventInput:
    product_id: relay.GlobalID
    name: str = strawberry.field(
        description="1 to 64 letters, digits, '_', '-', '/' or '.'; not starting with "
                    "'spark'.")
    data: str = strawberry.field(
        default="", description="At most the product's eventDataLimit bytes (UTF-8).")
    private: bool = True


@strawberry.type
class PublishEventPayload:
    event: Event | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EventMutations:
    @strawberry.mutation(description="Publish an event into a product's log as the product "
                                     "(developers and up, and the product's SERVER client).")
    async def publish_event(self, info: Info, input: PublishEventInput) -> PublishEventPayload:
        async def work() -> PublishEventPayload:
            event = await events.publish_from_server(
                info.context.principal, decode_id(input.product_id, "Product", "productId"),
                name=input.name, data=input.data, private=input.private)
            return PublishEventPayload(event=Event.from_live(event))

        return await mutate(PublishEventPayload, work)

    @strawberry.mutation(description="Call a function of an online device and return its "
                                     "result (support and up, and the product's SERVER "
                                     "client).")
    async def call_function(self, info: Info, input: CallFunctionInput) -> CallFunctionPayload:
        async def work() -> CallFunctionPayload:
            return CallFunctionPayload(return_value=await rpc.call_function(
                info.context.principal, input.device_id, input.name, input.argument))

        return await mutate(CallFunctionPayload, work)
