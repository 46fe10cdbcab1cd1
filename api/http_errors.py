"""JSON answers for 404 and 405, wherever they come from: a path no route serves, a method a
route does not take, or an endpoint refusing one (a mutation over GET on `/graphql`); and for
a 500, an exception no endpoint answered (`ServerErrors`).

The body has the shape of the API's other HTTP errors (`api.authentication`, `api.sse`):
`{"errors": [{"message", "extensions": {"code"}}]}`; a 405 names the methods it does take in
`Allow`. Neither may be stored by a cache (both are heuristically cacheable by default). The
hosted pages' security headers are added around these answers by `api.authorize.SecureErrors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiCode
from core.errors import ErrorCode


class MethodRefused(HTTPException):
    """An endpoint's own 405, with its message and code (a route's is `METHOD_NOT_ALLOWED`)."""

    def __init__(self, message: str, code: ErrorCode, allow: str) -> None:
        super().__init__(405, message, {"Allow": allow})
        self.code = code


def error_response(status: int, message: str, code: ErrorCode,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={**(headers or {}), "Cache-Control": "no-store"},
    )


async def not_found(request: Request, error: Exception) -> JSONResponse:
    return error_response(404, f"There is nothing at {request.url.path}.",
                          ApiCode.PATH_NOT_FOUND)


async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    headers = dict(error.headers or {}) if isinstance(error, HTTPException) else {}
    if isinstance(error, MethodRefused):
        return error_response(405, error.detail, error.code, headers)
    message = f"{request.method} is not allowed on {request.url.path}"
    allowed = headers.get("Allow")
    if allowed:  # a route's methods are a set: name them in a stable order
        allowed = headers["Allow"] = ", ".join(sorted(m.strip() for m in allowed.split(",")))
    return error_response(405, f"{message}; it takes {allowed}." if allowed else f"{message}.",
                          ApiCode.METHOD_NOT_ALLOWED, headers)


HANDLERS = {404: not_found, 405: method_not_allowed}


class ServerErrors:
    """Middleware (inside the CORS one): an exception that escapes an endpoint before it
    answered gets a JSON 500 in the shape above, with the request ID to quote, instead of the
    server error middleware's plain text outside every other middleware, which a browser app
    on another origin could not even read. The hosted pages answer with their own error page
    first (`api.authorize.SecureErrors`, inside this one). Re-raised either way, so the server
    error middleware logs it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            if not started:
                await error_response(500, "Something went wrong on our side; quote the "
                                     "X-Request-ID header of this answer if you report it.",
                                     ApiCode.SERVER_ERROR)(scope, receive, send)
            raise
