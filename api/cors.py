"""CORS for the endpoints browser apps on other origins call (the GraphQL WebSocket, which
browsers apply no CORS to, checks its handshake's origin against the same set, with the same
log line: `api.graphql.view.GraphQLEndpoint.is_websocket_origin_allowed`).

Which origins: `auth.web_origins` (the WEB clients' redirect-URI origins and
`CORS_ALLOWED_ORIGINS`). Which endpoints: `/graphql` (HTTP and WebSocket), `/oauth/token`,
`/oauth/revoke`, the SSE streams, and what a browser OpenID Connect relying party fetches
(the discovery and RFC 8414 metadata, `/oauth/jwks`, `/oauth/userinfo`), each with the methods
its route allows and the request headers it reads. Nothing else is CORS-enabled: the hosted
sign-in and account pages are same-origin only (and forbid framing), `/oauth/introspect` is for
servers, `/device/v1` for devices.

The API authenticates by bearer token, never by cookie, so there is no credentials mode:
`Access-Control-Allow-Credentials` is never sent, so the browser refuses a page the answer to
a request made with credentials (cookies) rather than let the API act on them.

A request from the API's own origin is not cross-origin and is left alone (`same_origin`).
Every response of a CORS-enabled endpoint carries `Vary: Origin`, with or without an `Origin`,
so that a cache (GET queries) keeps answers for different origins apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.websocket_origin import is_same_origin

from api.errors import ApiCode
from auth.web_origins import WebOrigins

log = logging.getLogger("devicecloud.cors")

MAX_AGE = 600  # seconds a browser may keep a preflight's answer (Chromium caps it at 7200)
# What a page may read of a response besides the safelisted headers: the request ID to quote
# in a support request, the bearer challenge of a 401, when to come back after a 429.
EXPOSE_HEADERS = ("X-Request-ID", "WWW-Authenticate", "Retry-After")
REASON = "not a redirect-URI origin of any WEB client nor in CORS_ALLOWED_ORIGINS"
NOT_LOADED = ("not in CORS_ALLOWED_ORIGINS, and the WEB clients' origins are not loaded yet "
              "(the OAuth clients could not be read)")

# The request headers each endpoint reads (Content-Type for JSON and form bodies, the bearer
# token or client credentials, our request ID; the SSE resume point; the public documents
# read none but the request ID).
_BODY_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
_STREAM_HEADERS = ("Authorization", "Last-Event-ID", "X-Request-ID")
_DOCUMENT_HEADERS = ("X-Request-ID",)
REQUEST_HEADERS: dict[str, tuple[str, ...]] = {
    "/graphql": _BODY_HEADERS,
    "/oauth/token": _BODY_HEADERS,
    "/oauth/revoke": _BODY_HEADERS,
    "/oauth/userinfo": _BODY_HEADERS,
    "/oauth/jwks": _DOCUMENT_HEADERS,
    "/.well-known/openid-configuration": _DOCUMENT_HEADERS,
    "/.well-known/oauth-authorization-server": _DOCUMENT_HEADERS,
    "/v1/products/{id_or_slug}/events": _STREAM_HEADERS,
    "/v1/products/{id_or_slug}/events/{prefix:path}": _STREAM_HEADERS,
    "/v1/devices/{device_id}/events": _STREAM_HEADERS,
    "/v1/devices/{device_id}/events/{prefix:path}": _STREAM_HEADERS,
}


class RefusalLog:
    """Logs why a cross-origin request was refused: once per origin and reason per `interval`
    seconds, and at most `most` lines per interval (then one line saying the rest go
    unlogged), so that a caller cycling through forged `Origin`s cannot flood the log. The
    reason is that the origin is in no list, or, while `origins` has not loaded the clients
    (the database down since start-up), that it could not be looked up."""

    def __init__(self, origins: WebOrigins, interval: float = 60.0, most: int = 100) -> None:
        self.origins = origins
        self.interval = interval
        self.most = most
        self._until = 0.0
        self._logged: set[tuple[str, str]] = set()
        self._overflowed = False

    def refused(self, origin: str, path: str) -> None:
        now = time.monotonic()
        if now >= self._until:
            self._until, self._logged, self._overflowed = now + self.interval, set(), False
        reason = REASON if self.origins.loaded else NOT_LOADED
        if (origin, reason) in self._logged:
            return
        if len(self._logged) >= self.most:
            if not self._overflowed:
                self._overflowed = True
                log.warning("more cross-origin refusals than are logged; the rest of this "
                            "minute's go unlogged", extra={"origins": len(self._logged)})
            return
        self._logged.add((origin, reason))
        log.warning(f"cross-origin request refused: {reason}",
                    extra={"origin": origin[:200], "path": path})


class EndpointCORS(CORSMiddleware):
    """Starlette's CORS middleware for one endpoint, with our origin rule, a 204 preflight, and
    nothing CORS for a refused origin: its preflight gets 403 `ORIGIN_NOT_ALLOWED`, its other
    requests are served without CORS headers (so the browser does not hand the page the
    answer), and the refusal is logged."""

    def __init__(self, app: ASGIApp, *, origins: WebOrigins, refusals: RefusalLog,
                 methods: Sequence[str], headers: Sequence[str]) -> None:
        super().__init__(app, allow_methods=methods, allow_headers=headers,
                         expose_headers=EXPOSE_HEADERS, max_age=MAX_AGE)
        self.origins = origins
        self.refusals = refusals
        # Exactly the headers the endpoint reads (Starlette would add the safelisted ones,
        # which need no permission); the answer depends on nothing but the origin.
        self.preflight_headers["Access-Control-Allow-Headers"] = ", ".join(headers)
        self.preflight_headers["Vary"] = "Origin"

    def is_allowed_origin(self, origin: str) -> bool:
        return self.origins.allows(origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin):
            return _refused_preflight()
        return Response(status_code=204,
                        headers={**self.preflight_headers, "Access-Control-Allow-Origin": origin})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and same_origin(headers, origin):
            await self.simple_response(scope, receive, send, request_headers=Headers())
            return
        if origin is not None and not self.is_allowed_origin(origin):
            self.refusals.refused(origin, scope["path"])
        await super().__call__(scope, receive, send)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Every response gets `Vary: Origin`; one to an allowed origin, the CORS headers."""
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            origin = request_headers.get("origin")
            if origin is not None and self.is_allowed_origin(origin):
                headers.update(self.simple_headers)
                headers["Access-Control-Allow-Origin"] = origin
            headers.add_vary_header("Origin")
        await send(message)


def same_origin(headers: Headers, origin: str) -> bool:
    """A page the API serves itself (GraphiQL): `Origin` names the `Host` the request was sent
    to, or the browser says so (`Sec-Fetch-Site`, which is right behind a proxy that rewrites
    `Host`). Strawberry's WebSocket check uses the same two tests."""
    return headers.get("sec-fetch-site") == "same-origin" \
        or is_same_origin(origin, headers.get("host"))


def _refused_preflight() -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": "This origin may not call the API from a browser.",
                     "extensions": {"code": ApiCode.ORIGIN_NOT_ALLOWED}}]},
        status_code=ApiCode.ORIGIN_NOT_ALLOWED.http_status,
        headers={"Cache-Control": "no-store", "Vary": "Origin"},
    )


@dataclass(frozen=True)
class _Endpoint:
    route: Route
    cors: EndpointCORS


class CrossOrigin:
    """The app's CORS layer (outside routing, so that a preflight is answered before the router
    would refuse OPTIONS): each request to a CORS-enabled route goes through that route's
    `EndpointCORS`. Everything else passes untouched (the GraphQL WebSocket's origin is
    checked by `GraphQLEndpoint.is_websocket_origin_allowed`, by the same origin set)."""

    def __init__(self, app: ASGIApp, *, origins: WebOrigins, routes: Iterable[BaseRoute],
                 refusals: RefusalLog) -> None:
        self.app = app
        self._endpoints: list[_Endpoint] = []
        for route in routes:
            if isinstance(route, Route) and route.path in REQUEST_HEADERS:
                # HEAD (which Starlette adds to GET) is a safelisted method: never preflighted.
                methods = sorted((route.methods or set()) - {"HEAD"})
                self._endpoints.append(_Endpoint(route, EndpointCORS(
                    app, origins=origins, refusals=refusals, methods=methods,
                    headers=REQUEST_HEADERS[route.path],
                )))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self._endpoint(scope["path"])
            if endpoint is not None:
                await endpoint.cors(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _endpoint(self, path: str) -> _Endpoint | None:
        for endpoint in self._endpoints:
            if endpoint.route.path_regex.match(path):
                return endpoint
        return None
