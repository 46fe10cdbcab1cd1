"""HTTP endpoints of the OAuth 2.0 and OpenID Connect server: token, revocation,
introspection, userinfo, the signing keys (JWKS), metadata, and the authorization endpoint
(api/authorize.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.authorize import routes as authorize_routes
from api.middleware import BodyTooLarge
from auth import signing_keys
from auth.oauth import AuthorizationServer, respond
from auth.oauth_common import FormRequest, client_authentication_problem
from core import text
from core.settings import JWKS_MAX_AGE

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CLIENT_ADDRESS_HEADER = "x-devicecloud-client-address"


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=NO_STORE
    )


async def _form_request(request: Request) -> FormRequest | JSONResponse:
    """Parse an RFC 6749 form body, or explain what is wrong with it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return oauth_error(
            400,
            "invalid_request",
            "Send the parameters as an application/x-www-form-urlencoded body (RFC 6749 §4).",
        )
    try:
        form = await request.form()
    except BodyTooLarge:
        raise  # the body limit middleware answers 413
    except Exception:  # python-multipart rejects undecodable bodies with several types
        return oauth_error(400, "invalid_request", "The request body could not be parsed.")
    repeated = sorted({key for key, _ in form.multi_items() if len(form.getlist(key)) > 1})
    if repeated:
        return oauth_error(
            400,
            "invalid_request",
            f"Parameters must not be repeated (RFC 6749 §3.2): {', '.join(repeated)}.",
        )
    values: dict[str, Any] = {key: value for key, value in form.items() if isinstance(value, str)}
    if not text.storable(values):
        return oauth_error(400, "invalid_request", text.REFUSAL)
    problem = client_authentication_problem(request.headers, values)
    if problem is not None:
        status, body, error_headers = problem()
        return JSONResponse(body, status_code=status, headers={**dict(error_headers), **NO_STORE})
    # Case-insensitive: Authlib reads `headers.get("Authorization")` for HTTP Basic.
    # Setting the address replaces any value the caller sent.
    headers = request.headers.mutablecopy()
    headers[CLIENT_ADDRESS_HEADER] = request.client.host if request.client else ""
    uri = str(request.app.state.settings.issuer) + request.url.path
    return FormRequest(request.method, uri, headers, values)


def _endpoint(name: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        parsed = await _form_request(request)
        if isinstance(parsed, JSONResponse):
            return parsed
        server: AuthorizationServer = request.app.state.oauth_server
        status, body, headers = await respond(server, name, parsed)
        response = JSONResponse(body, status_code=status, headers=dict(headers))
        response.headers.update(NO_STORE)
        return response

    return endpoint


async def metadata(request: Request) -> JSONResponse:
    """RFC 8414 authorization server metadata and OpenID Connect Discovery: one document."""
    server: AuthorizationServer = request.app.state.oauth_server
    return JSONResponse(server.metadata())


async def jwks(request: Request) -> JSONResponse:
    """The public keys that ID tokens are signed with (RFC 7517 key set)."""
    keys = await signing_keys.published(request.app.state.settings)
    return JSONResponse({"keys": keys},
                        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"})


async def userinfo(request: Request) -> Response:
    """OpenID Connect userinfo (GET or POST), for a bearer token with the `openid` scope."""
    uri = str(request.app.state.settings.issuer) + request.url.path
    server: AuthorizationServer = request.app.state.oauth_server
    status, body, headers = await respond(
        server, "userinfo", FormRequest(request.method, uri, request.headers, {})
    )
    # No body: a request without a token, which gets only the `Bearer` challenge.
    response = (Response(status_code=status, headers=dict(headers)) if body is None
                else JSONResponse(body, status_code=status, headers=dict(headers)))
    response.headers.update(NO_STORE)
    return response


routes = [
    Route("/oauth/token", _endpoint(None), methods=["POST"]),
    Route("/oauth/revoke", _endpoint("revocation"), methods=["POST"]),
    Route("/oauth/introspect", _endpoint("introspection"), methods=["POST"]),
    Route("/oauth/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/oauth/jwks", jwks, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
    *authorize_routes,
]
