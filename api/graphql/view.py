"""The GraphQL endpoint: HTTP POST and `graphql-transport-ws` subscriptions."""

from __future__ import annotations

import json
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry import UNSET
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types.unset import UnsetType

from api.authentication import principal_of
from api.graphql.authentication import bearer_token
from api.graphql.context import Context
from auth import tokens
from core.settings import Settings

# Deeper than any input type of the schema, far below the recursion graphql-core's variable
# coercion would need.
MAX_JSON_DEPTH = 32
NOT_AN_OBJECT = "The request body must be a JSON object."
FILES_MAP = "`map` must be a JSON object of file names to lists of variable paths."


class RefusedJSON(json.JSONDecodeError):
    """JSON we will not decode (not UTF-8, nested too deep); a `JSONDecodeError`, so that a
    WebSocket message of it closes the socket with 4400 as malformed JSON does."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


def decode_json(data: str | bytes) -> Any:
    """The guard every JSON text the endpoint reads goes through: the HTTP body, multipart's
    `operations` and `map`, and each WebSocket message."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RefusedJSON("The request body is not valid UTF-8.") from error
    try:
        value = json.loads(data)
    except RecursionError as error:
        raise RefusedJSON(_too_deep()) from error
    if _depth(value) > MAX_JSON_DEPTH:
        raise RefusedJSON(_too_deep())
    return value


def _too_deep() -> str:
    return f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels."


def _depth(value: Any) -> int:
    """How deep `value` nests, without recursion, stopping once past the limit."""
    deepest = 0
    pending = [(value, 1)]
    while pending and deepest <= MAX_JSON_DEPTH:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: object = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.websocket.close(
                code=4400, reason="The subscribe payload must be an object with a query."
            )
            return
        await super().handle_subscribe(message)


class GraphQLEndpoint(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, schema: Any, settings: Settings):
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            multipart_uploads_enabled=True,
        )

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        """The body of a JSON request: an object (batches are off)."""
        return _json_object(data, NOT_AN_OBJECT)

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, Any]:
        """GraphQL multipart: `operations` an object, `map` file names to variable paths."""
        try:
            form = await request.get_form_data()
        except ValueError as error:
            raise HTTPException(400, "Unable to parse the multipart body") from error
        operations = _json_object(form.form.get("operations", "{}"),
                                  "`operations` must be a JSON object.")
        files_map = _json_object(form.form.get("map", "{}"), FILES_MAP)
        if not all(
            isinstance(paths, list) and all(isinstance(path, str) for path in paths)
            for paths in files_map.values()
        ):
            raise HTTPException(400, FILES_MAP)
        try:
            return replace_placeholders_with_files(operations, files_map, form.files)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise HTTPException(400, "File(s) missing in form data") from error

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


def _json_object(data: object, not_an_object: str) -> dict[str, Any]:
    if not isinstance(data, str | bytes):
        raise HTTPException(400, not_an_object)
    try:
        value = decode_json(data)
    except RefusedJSON as error:
        raise HTTPException(400, error.reason) from error
    except json.JSONDecodeError as error:
        raise HTTPException(400, "Unable to parse request body as JSON") from error
    if not isinstance(value, dict):
        raise HTTPException(400, not_an_object)
    return value
