"""Bearer authentication for resource endpoints (RFC 6750)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import tokens
from auth.errors import AuthCode
from auth.principals import AnyPrincipal
from core.errors import Unauthenticated


class BearerAuthentication:
    """Resolve `Authorization: Bearer` to a principal in `scope["state"]`.

    No header means anonymous. A header that is not a live bearer token is answered
    with 401 and `WWW-Authenticate: Bearer error="invalid_token"` before the endpoint runs.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: AnyPrincipal = None
        if scope["type"] == "http":
            header = Headers(scope=scope).get("authorization")
            if header is not None:
                raw = tokens.bearer_token(header)
                if raw is not None:
                    principal = await tokens.authenticate(raw)
                if principal is None:
                    await _invalid_token(scope, receive, send)
                    return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _invalid_token(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(
        {
            "errors": [
                {
                    "message": "The access token is invalid, expired or revoked.",
                    "extensions": {"code": AuthCode.INVALID_TOKEN},
                }
            ]
        },
        status_code=Unauthenticated.http_status,
        headers={
            "WWW-Authenticate": (
                'Bearer error="invalid_token", '
                'error_description="The access token is invalid, expired or revoked"'
            ),
            "Cache-Control": "no-store",
            "Vary": "Authorization",  # the answer to this header; another may be served
        },
    )
    await response(scope, receive, send)


def principal_of(connection: HTTPConnection) -> AnyPrincipal:
    return connection.scope.get("state", {}).get("principal")
