"""The GraphQL endpoint: queries over HTTP GET and POST, mutations over POST, subscriptions
over `graphql-transport-ws`.

Every HTTP answer says how caches may keep it: `Vary: Authorization` always (refusals too, and
`api.authentication`'s 401 for a bad token), `Cache-Control: private, no-store` when the request
carried a token (no cache stores one caller's data), and `no-cache` for an anonymous one (a cache
may keep it only to ask the API again before each use). A request it cannot read gets a JSON 400
`MALFORMED_REQUEST`, a mutation over GET a JSON 405 `MUTATION_OVER_GET` (`api.http_errors`), both
`no-store`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import UNSET
from strawberry.asgi import GraphQL
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.types import QueryParams
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from api.authentication import principal_of
from api.cors import RefusalLog
from api.errors import ApiCode
from api.graphql.context import Context
from api.http_errors import MethodRefused, error_response
from auth import tokens
from auth.web_origins import WebOrigins
from core.settings import Settings

log = logging.getLogger("devicecloud.graphql")
# Deeper than any input type of the schema, far below the recursion graphql-core's variable
# coercion would need.
MAX_JSON_DEPTH = 32
NOT_AN_OBJECT = "The request body must be a JSON object."
NOT_JSON = "Unable to parse request body as JSON"
FILES_MAP = "`map` must be a JSON object of file names to lists of variable paths."


class RefusedJSON(json.JSONDecodeError):
    """JSON we will not decode (not UTF-8, nested too deep); a `JSONDecodeError`, so that a
    WebSocket message of it closes the socket with 4400 as malformed JSON does."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


def decode_json(data: str | bytes, subject: str = "The request body") -> Any:
    """The guard every JSON text the endpoint reads goes through: the HTTP body, multipart's
    `operations` and `map`, a GET's `variables` and `extensions`, and each WebSocket message.
    `subject` names the text in the refusal."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RefusedJSON(f"{subject} is not valid UTF-8.") from error
    try:
        value = json.loads(data)
    except RecursionError as error:
        raise RefusedJSON(_too_deep(subject)) from error
    if _depth(value) > MAX_JSON_DEPTH:
        raise RefusedJSON(_too_deep(subject))
    return value


def _too_deep(subject: str) -> str:
    return f"{subject} nests JSON deeper than {MAX_JSON_DEPTH} levels."


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


# Close codes of a socket whose connection_init is refused. graphql-ws clients never retry
# after 4400 or 4401; they do after 4403 (Strawberry's `ConnectionRejectionError`), which would
# send a bad token again and again.
BAD_REQUEST = 4400
UNAUTHORIZED = 4401
# Where connection_init's payload may carry the token, each as `Bearer <token>` or the bare
# token: the fields clients put it in, and Apollo-style `headers`.
TOKEN_FIELDS = ("authorization", "Authorization", "authToken")
HEADER_FIELDS = ("Authorization", "authorization")


class SocketRefused(Exception):
    """connection_init refused: the socket closes with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def offered_tokens(params: dict[str, Any], upgrade_header: str | None) -> set[str]:
    """The tokens a socket offers: in connection_init's payload and in the upgrade request's
    `Authorization: Bearer` header. An empty value or null offers none."""
    headers = params.get("headers")
    values = [params.get(name) for name in TOKEN_FIELDS]
    if isinstance(headers, dict):
        values += [headers.get(name) for name in HEADER_FIELDS]
    found = set()
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str):
            raise SocketRefused(BAD_REQUEST, "The access token in connection_init must be a "
                                             "string.")
        token = tokens.bearer_token(value) or value.strip()  # "Bearer <token>", or the token
        if token:
            found.add(token)
    if upgrade_header is not None:
        bearer = tokens.bearer_token(upgrade_header)
        if bearer is None:
            raise SocketRefused(UNAUTHORIZED, "The Authorization header is not Bearer <token>.")
        found.add(bearer)
    return found


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        # The protocol allows a null payload; Strawberry would close the socket for it.
        if message.get("payload", {}) is None:
            message = {"type": "connection_init"}
        try:
            await super().handle_connection_init(message)
        except SocketRefused as refusal:
            log.info("subscription socket refused", extra={"close_code": refusal.code,
                                                           "reason": refusal.reason})
            await self.websocket.close(code=refusal.code, reason=refusal.reason)

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

    def __init__(self, schema: Any, settings: Settings, *, origins: WebOrigins,
                 refusals: RefusalLog):
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            multipart_uploads_enabled=True,
        )
        self.origins = origins
        self.refusals = refusals

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """Browsers apply no CORS to a WebSocket: a handshake from a page on another origin is
        refused (HTTP 403) unless that origin is one the CORS-enabled endpoints answer.
        Strawberry asks only about a cross-origin handshake: one without `Origin` (not a
        browser) or from the API's own pages is accepted before it gets here."""
        if self.origins.allows(origin):
            return True
        self.refusals.refused(origin, request.url.path)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's, except that a request it cannot read (its body, query string or
        form) is refused in JSON with a code, like the API's other HTTP errors, not in plain
        text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            # Strawberry's 400s (the route lets only GET and POST reach it, and there is a
            # GraphiQL to show wherever it would render one)
            response = error_response(error.status_code, error.reason, ApiCode.MALFORMED_REQUEST)
        except MethodRefused as refused:
            response = error_response(405, refused.detail, refused.code, refused.headers)
        response.headers["Vary"] = "Authorization"  # every answer, refusals too
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        """Only where there is one (development), and only for a browser (`Accept` naming
        text/html; Strawberry's also takes `*/*`, which curl and HTTP libraries send):
        elsewhere a GET without a query is told that it has none."""
        return (self.graphql_ide is not None and super().should_render_graphql_ide(request)
                and "text/html" in request.headers.get("accept", ""))

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        """The body of a JSON request: an object (batches are off)."""
        return _json_object(data, NOT_AN_OBJECT, NOT_JSON)

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        """A GET request's parameters: `variables` and `extensions` are JSON objects."""
        parsed: dict[str, Any] = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                subject = f"`{name}` in the query string"
                parsed[name] = _json_object(parsed[name], f"{subject} must be a JSON object.",
                                            f"{subject} is not valid JSON.", subject)
        return parsed

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Strawberry's execution, whose only refusal of an operation type is a mutation over
        GET: 405, as GraphQL over HTTP says."""
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError):
                raise MethodRefused("Mutations are not allowed over GET: send them with POST.",
                                    ApiCode.MUTATION_OVER_GET, "POST") from error
            raise

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, Any]:
        """GraphQL multipart: `operations` an object, `map` file names to variable paths."""
        try:
            form = await request.get_form_data()
        except ValueError as error:
            raise HTTPException(400, "Unable to parse the multipart body") from error
        operations = _json_object(form.form.get("operations", "{}"),
                                  "`operations` must be a JSON object.", NOT_JSON)
        files_map = _json_object(form.form.get("map", "{}"), FILES_MAP, NOT_JSON)
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
        # comes in connection_init or the upgrade request (`on_ws_connect`).
        header = request.headers.get("authorization") if isinstance(request, Request) else None
        if isinstance(response, Response):
            response.headers["Cache-Control"] = "no-cache" if header is None else \
                "private, no-store"
        return Context(
            request=request,
            response=response,
            principal=principal_of(request),
            request_id=request.scope.get("state", {}).get("request_id", ""),
            token=tokens.bearer_token(header),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A socket authenticates with the token it offers (`offered_tokens`), kept and
        authenticated again by every operation (`WebSocketAuthentication`); one offering none
        is anonymous. Two different tokens, or one that is not live, refuse the socket."""
        offered = offered_tokens(context.connection_params or {},
                                 context.request.headers.get("authorization"))
        if len(offered) > 1:
            raise SocketRefused(BAD_REQUEST, "Two different access tokens: send one.")
        if not offered:
            return UNSET
        (token,) = offered
        principal = await tokens.authenticate(token)
        if principal is None:
            raise SocketRefused(UNAUTHORIZED, "The access token is invalid, expired or revoked.")
        context.principal = principal
        context.token = token
        return UNSET


def _json_object(data: object, not_an_object: str, not_json: str,
                 subject: str = "The request body") -> dict[str, Any]:
    if not isinstance(data, str | bytes):
        raise HTTPException(400, not_an_object)
    try:
        value = decode_json(data, subject)
    except RefusedJSON as error:
        raise HTTPException(400, error.reason) from error
    except json.JSONDecodeError as error:
        raise HTTPException(400, not_json) from error
    if not isinstance(value, dict):
        raise HTTPException(400, not_an_object)
    return value
