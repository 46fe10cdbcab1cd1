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

from api.authentication import principal_of
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
        return Context(
            request=request,
            response=response,
            principal=principal_of(request),
            request_id=request.scope.get("state", {}).get("request_id", ""),
        )

    async def on_ws_connect(self, context: Context) -> object:
        """Subscriptions authenticate with `{"authorization": "Bearer …"}` in connection_init."""
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        if header is None:
            return UNSET
        scheme, _, raw = str(header).partition(" ")
        principal = await tokens.authenticate(raw) if scheme.lower() == "bearer" else None
        if principal is None:
            raise ConnectionRejectionError({"message": "The access token is invalid."})
        context.principal = principal
        return UNSET
