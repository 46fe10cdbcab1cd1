"""What the OAuth 2.0 server's grants and endpoints share (`auth.oauth`, `auth.code_flow`):
Authlib's view of a client, the client authentication methods, the token endpoint's request,
and the hop from an Authlib hook's worker thread back to the event loop."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import anyio.from_thread
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request

# The stub lists only ClientAuthentication; Authlib has its `none` method here.
from authlib.oauth2.rfc6749.authenticate_client import authenticate_none  # type: ignore[attr-defined]
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from auth import scopes, tokens
from auth.redirect_uris import is_loopback_ip
from models.oauth import OAuthClient

if TYPE_CHECKING:
    from auth.oidc import IdTokenBasis

P = ParamSpec("P")
R = TypeVar("R")

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


BAD_BASIC = ("The Authorization header's Basic credentials are not valid: send base64 of "
             "client_id:client_secret, each form-urlencoded UTF-8.")
IDENTITY_OUTSIDE_CODE_FLOW = ("openid, profile and email are for the authorization code flow, "
                              "where a user signs in.")
PUBLIC_CLIENT_HINT = "This client is public: send client_id and no secret."
PUBLIC_CLIENT_REFUSED = ("This client is public, and this is for confidential clients only: a "
                         "server's client, which authenticates with its secret.")
CONFIDENTIAL_CLIENT_HINT = ("This client is confidential: authenticate with its secret "
                            "(HTTP Basic or client_secret).")
TWO_METHODS = ("Authenticate the client one way only (RFC 6749 section 2.3.1): HTTP "
               "Basic or client_secret in the body, not both.")


def client_authentication_problem(headers: Mapping[str, str], form: Mapping[str, str]
                                  ) -> OAuth2Error | None:
    """What is wrong with how a request authenticates its client before Authlib reads it:
    Basic credentials that are not base64 of UTF-8 (Authlib would fail decoding them), or
    Basic and a body secret at once (RFC 6749 §2.3.1 allows one method per request)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip())
    except binascii.Error:
        decoded = b""  # as Authlib decodes it: no credentials, so `invalid_client`
    try:
        decoded.decode()
    except UnicodeDecodeError:
        return InvalidClientError(BAD_BASIC, status_code=401)
    if "client_secret" in form:
        return InvalidRequestError(TWO_METHODS)
    return None


def authenticate_public(query_client: Callable[[str], ClientMixin | None],
                        request: OAuth2Request) -> ClientMixin | None:
    """Authlib's `none` method, except for a request that carries HTTP Basic credentials: a
    public client has no secret to send, so a request with one is no public client's and is
    refused (`invalid_client`) instead of passing on the client ID in its body alone."""
    scheme = (request.headers or {}).get("authorization", "").partition(" ")[0]
    if scheme.lower() == "basic":
        return None
    return authenticate_none(query_client, request)


def wrong_kind_of_client(request: OAuth2Request, methods: Collection[str],
                         query_client: Callable[[str], Client | None]) -> str | None:
    """Why a request that failed client authentication failed, when its client exists and is
    of the wrong kind for it: a public client sent a secret, or came where only confidential
    clients may (`methods` without `none`: client_credentials, introspection); a confidential
    one sent none. Nothing for a wrong secret or an unknown client, which Authlib's own refusal
    describes."""
    # The stub says dict; Authlib's own methods pass it the request's headers as they are.
    basic_id, basic_secret = extract_basic_authorization(
        request.headers or {}  # type: ignore[arg-type]
    )
    client_id = basic_id or (request.payload.client_id if request.payload else None)
    if not client_id:
        return None
    client = query_client(client_id)
    if client is None:
        return None
    sent_secret = basic_secret is not None or "client_secret" in request.form
    if client.confidential:
        return None if sent_secret else CONFIDENTIAL_CLIENT_HINT
    if "none" not in methods:
        return PUBLIC_CLIENT_REFUSED
    return PUBLIC_CLIENT_HINT if sent_secret else None


def on_loop(fn: Callable[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run an async storage call on the event loop from an Authlib hook's worker thread."""
    return anyio.from_thread.run(lambda: fn(*args, **kwargs))


class Client(ClientMixin):
    """Authlib's view of an `OAuthClient` row."""

    def __init__(self, row: OAuthClient):
        self.row = row

    @property
    def confidential(self) -> bool:
        return not self.row.public

    def get_client_id(self) -> str:
        return self.row.client_id

    # The stub says str; Authlib takes None for "no default" and then requires redirect_uri.
    def get_default_redirect_uri(self) -> str | None:  # type: ignore[override]
        return self.row.redirect_uris[0] if self.row.redirect_uris else None

    # The stub widens `scope` to a collection; Authlib passes the requested scope string.
    def get_allowed_scope(self, scope: str) -> str:  # type: ignore[override]
        """What a code carries: the registered scopes asked for, and the identity scopes
        (`check_requested_scope` refused the rest)."""
        if not scope:
            return ""
        allowed = set(self.row.scope.split()) | set(scopes.IdentityScope)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exactly a registered URI (RFC 9700 §4.1.3), except that a loopback one matches on
        any port: a native app listens on whichever port it got (RFC 8252 §7.3)."""
        if redirect_uri in self.row.redirect_uris:
            return True
        requested = loopback_parts(redirect_uri)
        return requested is not None and any(
            loopback_parts(registered) == requested for registered in self.row.redirect_uris
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return tokens.secret_matches(self.row.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.confidential:
            return method in SECRET_METHODS
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and not self.confidential:
            return False
        if grant_type == "password" and not (self.row.first_party or self.row.product_id):
            return False  # passwords go only to our own clients and to products' apps
        return grant_type in self.row.grant_types


def loopback_parts(uri: str) -> tuple[str, str, str, str] | None:
    """An http URI to a loopback IP literal (`is_loopback_ip`) without its port (scheme, host,
    path, query), as RFC 8252 §7.3 matches it; None for any other URI. Not `localhost`: it may
    resolve elsewhere (RFC 8252 §8.3), so its URIs match exactly."""
    try:
        parts = urlsplit(uri)
        port = parts.port  # one that is not a number in range raises
    except ValueError:
        return None
    host = parts.netloc if port is None else parts.netloc[: parts.netloc.rfind(":")]
    if parts.scheme != "http" or not is_loopback_ip(parts.hostname) or parts.fragment:
        return None
    return parts.scheme, host, parts.path, parts.query


def check_requested_scope(client: Client, scope: str | None, *, code_flow: bool = False
                          ) -> None:
    """Refuse a scope that is unknown or that the client is not registered for. The identity
    scopes go only to the authorization code flow (`code_flow`), where a user signs in, and
    need no registration; `profile` and `email` only with `openid`."""
    requested = scopes.parse(scope or "")
    if requested is None:
        known = ", ".join(scopes.ALL)
        raise InvalidScopeError(f"Unknown scope; the scopes are {known}.")
    identity = scopes.identity(scope or "")
    if identity and not code_flow:
        raise InvalidScopeError(IDENTITY_OUTSIDE_CODE_FLOW)
    if identity and scopes.IdentityScope.OPENID not in identity:
        raise InvalidScopeError("profile and email are OpenID Connect scopes: ask for openid "
                                "too.")
    if not requested <= set(client.row.scope.split()):
        raise InvalidScopeError("The client is not registered for the requested scope.")


def as_client(client: ClientMixin | None) -> Client:
    """A client Authlib hands back: always one that `query_client` made."""
    assert isinstance(client, Client)
    return client


class FormRequest(OAuth2Request):
    """An OAuth2Request over an already-parsed form body (the transport reads it async).
    `id_token_basis`: what a grant read for its ID token before committing (`oidc`)."""

    headers: Mapping[str, str]
    payload: BasicOAuth2Payload
    id_token_basis: IdTokenBasis | None = None

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]):
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str | None]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form
