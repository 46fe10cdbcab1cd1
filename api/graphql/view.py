"""The GraphQL endpoint: HTTP POST and `graphql-transport-ws` subscriptions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry import UNSET
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from api.authentication import principal_of
from api.graphql.authentication import bearer_token
from api.graphql.context import Context
from auth import tokens
from core.settings import Settings


class GraphQLEndpoint(GraphQL[Context, None]):
    def __init__(self, schema: Any, settings: Settings):
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            multipart_uploads_enabled=True,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # An HTTP request's token was authenticated by BearerAuthentication; a WebSocket's
        # comes in connection_init (`on_ws_connect`).
        header = request.headers.get("authorization") if isinstance(request, Request) else None
        return Context(
            request=request,
            response=response,
            principal=principal_of(request),
            request_id=request.scope.get("state", {}).get("request_id", ""),
            token=None if header is None else bearer_token(header),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A socket authenticates with `{"authorization": "Bearer …"}` in connection_init; its
        token is kept, and authenticated again by every operation (`WebSocketAuthentication`)."""
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        if header is None:
            return UNSET
        token = bearer_token(header)
        principal = await tokens.authenticate(token) if token is not None else None
        if principal is None:
            raise ConnectionRejectionError({"message": "The access token is invalid."})
        context.principal = principal
        context.token = token
        return UNSET
