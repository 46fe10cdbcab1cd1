"""The OAuth 2.0 authorization server: Authlib's grant and endpoint logic on our storage.

Authlib's hooks are synchronous, so each request is handled in a worker thread
(`anyio.to_thread`) and every storage call hops back to the event loop with
`anyio.from_thread.run`: the loop never blocks on the ORM or on password hashing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request, ResourceProtector, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo as UserInfoClaims
from authlib.oidc.core import UserInfoEndpoint

from auth import customer_auth, oidc, passwords, scopes, signing_keys, throttle, tokens
from auth.code_flow import AuthorizationCodeGrant, RequireS256, canonical_scope
from auth.emails import normalize_email
from auth.oauth_common import (
    IDENTITY_OUTSIDE_CODE_FLOW,
    SECRET_METHODS,
    Client,
    FormRequest,
    as_client,
    authenticate_public,
    check_requested_scope,
    on_loop,
    wrong_kind_of_client,
)
from core import clock
from core.errors import InvalidInput
from core.settings import Settings
from models.accounts import User
from models.customers import Customer
from models.oauth import OAuthClient, Token
from models.products import CustomerAuth

A = TypeVar("A", User, Customer)

ANY_METHOD = [*SECRET_METHODS, "none"]


class TooManyAttempts(OAuth2Error):
    """`throttle.Throttled` at the token endpoint: 429 while the account or the address is
    locked out (not an RFC 6749 code)."""

    error = "too_many_attempts"
    status_code = throttle.Throttled.http_status

    def __init__(self, retry_after: int, description: str):
        super().__init__(description=description)
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


class IssuedCredential(TokenMixin):
    """Authlib's view of a stored token row, remembering which of its two tokens was shown."""

    def __init__(self, row: Token, kind: str):
        self.row = row
        self.kind = kind

    @property
    def expires_at(self) -> datetime | None:
        if self.kind == "access_token":
            return self.row.access_expires_at
        return self.row.refresh_expires_at

    def check_client(self, client: Client) -> bool:
        return self.row.family.client_id == client.row.id

    def get_scope(self) -> str:
        """An access token's own scope; a refresh token's is the family's grant, which a
        refresh may ask for again after a narrower one (RFC 6749 §6)."""
        if self.kind == "access_token":
            return tokens.access_scope(self.row)
        return self.row.family.scope

    def get_expires_in(self) -> int:
        expires_at = self.expires_at
        assert expires_at is not None  # every token issued has an expiry
        return int((expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.expires_at is None or self.expires_at <= clock.now()

    def is_revoked(self) -> bool:
        """Revoked, or (for a refresh token) already used: rotation retired it."""
        used = self.kind == "refresh_token" and self.row.refresh_used_at is not None
        return used or tokens.is_revoked(self.row)


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    """A platform user through a first-party client; a product's customer through one of the
    product's apps (simple auth). A product's client never signs in a platform account."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_METHOD
    request: FormRequest

    def authenticate_token_endpoint_client(self) -> Client:
        """Remember the client at once: `authenticate_user` looks among its product's
        customers (Authlib sets `request.client` only after it)."""
        client = as_client(super().authenticate_token_endpoint_client())
        self.request.client = client
        return client

    def authenticate_user(self, username: str, password: str) -> User | Customer:
        address = self.request.headers.get("x-devicecloud-client-address", "")
        product_id = as_client(self.request.client).row.product_id
        if product_id is not None:
            return on_loop(_authenticate_customer, product_id, username, password, address)
        return on_loop(_authenticate_user, username, password, address)

    def validate_requested_scope(self) -> None:
        """No identity scopes: a password is not a sign-in at the hosted login page, and
        gets no ID token."""
        if scopes.identity(self.request.payload.scope or ""):
            raise InvalidScopeError(IDENTITY_OUTSIDE_CODE_FLOW)
        super().validate_requested_scope()


def _username_email(username: str) -> str:
    try:
        return normalize_email(username, field="username")
    except InvalidInput:
        return username.strip().lower()[:254]


async def _authenticate_user(username: str, password: str, address: str) -> User:
    email = _username_email(username)
    return await _check_password(
        throttle.SignInKeys.of(email, address), lambda: User.get_or_none(email=email), password
    )


async def _authenticate_customer(
    product_id: int, username: str, password: str, address: str
) -> Customer:
    await customer_auth.require_method(product_id, CustomerAuth.SIMPLE, "a password")
    email = _username_email(username)
    return await _check_password(
        customer_auth.sign_in_keys(product_id, email, address),
        lambda: customer_auth.find(product_id, email),
        password,
    )


async def _check_password(
    keys: throttle.SignInKeys, find: Callable[[], Awaitable[A | None]], password: str
) -> A:
    """The account `find` returns, if the password is its own, under sign-in throttling."""
    try:
        await throttle.check(keys)
        await throttle.begin_attempt(keys)
    except throttle.Throttled as error:
        raise TooManyAttempts(error.retry_after, error.message) from None
    found = await find()
    if not await passwords.verify_password(found.password_hash if found else None, password):
        raise InvalidGrantError("The email or password is incorrect.")
    assert found is not None  # no account: `verify_password` refused
    await throttle.record_success(keys)
    return found


class RefreshGrant(grants.RefreshTokenGrant):
    """Refresh with rotation: every refresh returns a new refresh token, and presenting one
    that was already used revokes the whole family (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_METHOD
    INCLUDE_NEW_REFRESH_TOKEN = True
    request: FormRequest

    # The stub returns TokenMixin; Authlib takes None for an unknown token.
    def authenticate_refresh_token(  # type: ignore[override]
        self, refresh_token: str
    ) -> IssuedCredential | None:
        return on_loop(_authenticate_refresh_token, refresh_token)

    def authenticate_user(self, refresh_token: IssuedCredential) -> User | Customer | None:
        family = refresh_token.row.family
        return family.customer or family.user

    # Authlib passes back what `authenticate_refresh_token` returned: an IssuedCredential.
    def issue_token(self, user: User | Customer,  # type: ignore[override]
                    refresh_token: IssuedCredential) -> dict[str, Any]:
        """Consume the refresh token once the request is valid (client, scope), just before
        its successor is issued: a request refused for bad input leaves it usable, and of two
        concurrent uses only one wins, the other revoking the family. With `openid`, the
        signing key and the ID token's claims are read before: a failure leaves the refresh
        token usable."""
        scope = self.request.payload.scope or refresh_token.get_scope()
        if oidc.wants_id_token(scope):
            key = on_loop(oidc.signing_key, self.server.settings)
            self.request.id_token_basis = oidc.IdTokenBasis(
                key, dict(on_loop(oidc.user_info, user, scope))
            )
        if not on_loop(_consume, refresh_token.row):
            raise InvalidGrantError("The refresh token was already used.")
        return super().issue_token(user, refresh_token)

    # Authlib passes back what `authenticate_refresh_token` returned: an IssuedCredential.
    def revoke_old_credential(  # type: ignore[override]
        self, refresh_token: IssuedCredential
    ) -> None:
        """Nothing to do: `issue_token` consumed the token atomically."""


async def _authenticate_refresh_token(raw: str) -> IssuedCredential | None:
    row = await tokens.find_refresh_token(raw)
    if row is None or not tokens.is_live(row, row.refresh_expires_at):
        return None
    if row.refresh_used_at is not None:  # a replay: the family is compromised
        await tokens.revoke_family(row.family_id)
        return None
    return IssuedCredential(row, "refresh_token")


async def _consume(row: Token) -> bool:
    if await tokens.consume_refresh_token(row):
        return True
    await tokens.revoke_family(row.family_id)
    return False


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """A confidential client acting for itself; or, asked with `scope=customer=EMAIL` by a
    product's SERVER client, an access token for that customer of its product (two-legged
    auth): no refresh token (RFC 6749 §4.4.3), `expires_in` seconds up to the client's
    maximum."""

    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS
    request: FormRequest

    def validate_token_request(self) -> None:
        client = as_client(self.authenticate_token_endpoint_client())
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        scope = self.request.payload.scope
        if not customer_auth.asks_for_customer(scope):
            check_requested_scope(client, scope)
            return
        self.request.user = on_loop(customer_auth.customer_for_scope, client.row, scope)
        self.customer_token_lifetime = customer_auth.customer_token_lifetime(
            client.row, self.request.form.get("expires_in"),
            self.server.settings.access_token_lifetime,
        )

    # The stub types the body as str; Authlib's grants return the token as a dict.
    def create_token_response(  # type: ignore[override]
        self,
    ) -> tuple[int, dict[str, Any], Collection[tuple[str, str]]]:
        if self.request.user is None:
            return super().create_token_response()
        token = self.generate_token(
            user=self.request.user, expires_in=self.customer_token_lifetime,
            include_refresh_token=False,
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


async def _find_credential(raw: str, hint: str | None) -> IssuedCredential | None:
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        if kind == "access_token":
            row = await tokens.find_access_token_row(raw)
        else:
            row = await tokens.find_refresh_token(raw)
        if row is not None:
            return IssuedCredential(row, kind)
    return None


class Revocation(RevocationEndpoint):
    """RFC 7009. Revoking a refresh token ends its whole family (§2.1); revoking an access
    token ends it and the refresh token issued with it."""

    CLIENT_AUTH_METHODS = ANY_METHOD

    def query_token(self, token_string: str, token_type_hint: str | None
                    ) -> IssuedCredential | None:
        return on_loop(_find_credential, token_string, token_type_hint)

    def authenticate_token(
        self, request: OAuth2Request, client: Client
    ) -> IssuedCredential | None:
        """Another client's token is, to the caller, an invalid one: nothing is revoked and
        the answer is 200 as for an unknown token (RFC 7009 §2.2), which also tells the
        caller nothing about whether the token exists."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: IssuedCredential, request: OAuth2Request) -> None:
        if token.kind == "refresh_token":
            on_loop(tokens.revoke_family, token.row.family_id)
        else:
            on_loop(tokens.revoke_token, token.row)


class Introspection(IntrospectionEndpoint):
    """RFC 7662, for confidential clients: first-party ones see every token, others only
    the tokens issued to them."""

    CLIENT_AUTH_METHODS = SECRET_METHODS

    def __init__(self, server: AuthorizationServer):
        super().__init__(server)
        self.issuer = server.settings.issuer

    def query_token(self, token_string: str, token_type_hint: str | None
                    ) -> IssuedCredential | None:
        return on_loop(_find_credential, token_string, token_type_hint)

    def check_permission(
        self, token: IssuedCredential, client: Client, request: OAuth2Request
    ) -> bool:
        return client.row.first_party or token.check_client(client)

    def introspect_token(self, token: IssuedCredential) -> dict[str, Any]:
        family = token.row.family
        expires_at = token.expires_at
        assert expires_at is not None  # Authlib introspects only unexpired tokens
        body: dict[str, Any] = {
            "active": True,
            "client_id": family.client.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.get_scope(),
            "exp": int(expires_at.timestamp()),
            "iat": int(token.row.issued_at.timestamp()),
            "iss": self.issuer,
        }
        if family.customer is not None:
            body["sub"] = oidc.subject(family.user, family.customer)
            body["username"] = family.customer.email
        elif family.user is not None:
            body["sub"] = oidc.subject(family.user, None)
            body["username"] = family.user.email
        else:
            body["sub"] = f"client:{family.client.client_id}"
        return body


class AccessTokens(BearerTokenValidator):
    """RFC 6750 bearer tokens, for the userinfo endpoint."""

    def authenticate_token(self, token_string: str) -> IssuedCredential | None:
        return on_loop(_find_access_token, token_string)


async def _find_access_token(raw: str) -> IssuedCredential | None:
    row = await tokens.find_access_token_row(raw)
    return IssuedCredential(row, "access_token") if row is not None else None


class BearerChallenge(OAuth2Error):
    """A refused bearer token (RFC 6750 §3): the error, and the `WWW-Authenticate` challenge
    that names it."""

    def __init__(self, error: str, description: str, status_code: int,
                 scope: str | None = None):
        super().__init__(description=description, status_code=status_code)
        self.error = error
        self.scope = scope

    def get_headers(self) -> list[tuple[str, str]]:
        params = [f'error="{self.error}"', f'error_description="{self.description}"']
        if self.scope:
            params.append(f'scope="{self.scope}"')
        return [*super().get_headers(), ("WWW-Authenticate", "Bearer " + ", ".join(params))]


BAD_TOKEN = "The access token is invalid, expired or revoked."  # noqa: S105 - a message
NO_OPENID = "The access token was not issued with the openid scope."


class UserInfo(UserInfoEndpoint):
    """OpenID Connect userinfo for a bearer token with the `openid` scope: the claims of its
    identity scopes, with the ID tokens' `sub`. Unsigned JSON: no client registers
    `userinfo_signed_response_alg`."""

    def __init__(self, server: AuthorizationServer):
        protector = ResourceProtector()
        protector.register_token_validator(AccessTokens())
        super().__init__(server, protector)

    def __call__(self, request: OAuth2Request) -> tuple[int, Any, list[tuple[str, str]]]:
        """The claims; or a refusal. A request without a bearer token gets 401 with a bare
        `WWW-Authenticate: Bearer` and no body: RFC 6750 §3.1 gives it no error code nor
        other error information, as it may just not know authentication is needed."""
        if tokens.bearer_token((request.headers or {}).get("authorization")) is None:
            return 401, None, [("WWW-Authenticate", "Bearer")]
        assert self.resource_protector is not None  # given in `__init__`
        try:
            token: IssuedCredential = self.resource_protector.validate_request(
                [scopes.IdentityScope.OPENID.value], request
            )
        except InsufficientScopeError:
            raise BearerChallenge("insufficient_scope", NO_OPENID, 403, scope="openid") from None
        except OAuth2Error:
            raise BearerChallenge("invalid_token", BAD_TOKEN, 401) from None
        family = token.row.family
        account = family.customer or family.user
        assert account is not None  # only a code flow's tokens carry `openid`
        return 200, dict(self.generate_user_info(account, token.get_scope())), []

    def generate_user_info(self, user: User | Customer, scope: str) -> UserInfoClaims:
        return on_loop(oidc.user_info, user, scope)


class AuthorizationServer(_AuthorizationServer):
    """Authlib's server bound to our clients and token storage."""

    def __init__(self, settings: Settings):
        super().__init__(scopes_supported=None)
        self.settings = settings
        # The stub asks for a BearerTokenGenerator; Authlib calls any generator function.
        self.register_token_generator("default", self._mint)  # type: ignore[arg-type]
        self.register_client_auth_method("none", authenticate_public)
        self.register_grant(PasswordGrant)
        self.register_grant(RefreshGrant, [oidc.RefreshedIdToken(settings)])
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant,
                            [RequireS256(), oidc.OpenIDCodeFlow(settings)])
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        # Authlib registers any endpoint class with an ENDPOINT_NAME; the stub names one base.
        self.register_endpoint(UserInfo)  # type: ignore[arg-type]

    def metadata(self) -> dict[str, Any]:
        """The server's metadata, one document for RFC 8414 and OpenID Connect Discovery so
        that they never disagree."""
        issuer = self.settings.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "userinfo_endpoint": f"{issuer}/oauth/userinfo",
            "jwks_uri": f"{issuer}/oauth/jwks",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "grant_types_supported": [
                "authorization_code", "password", "refresh_token", "client_credentials"
            ],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": list(scopes.ALL),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [signing_keys.ALGORITHM],
            "claims_supported": oidc.CLAIMS_SUPPORTED,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "token_endpoint_auth_methods_supported": ANY_METHOD,
            "revocation_endpoint_auth_methods_supported": Revocation.CLIENT_AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": Introspection.CLIENT_AUTH_METHODS,
        }

    def authenticate_client(self, request: OAuth2Request, methods: Collection[str],
                            endpoint: str = "token") -> Client:
        """Authlib's, except that a client that authenticates as the other kind (a public one
        with a secret, a confidential one without) is told which kind it is and what to send,
        instead of the list of methods the endpoint takes."""
        try:
            return as_client(super().authenticate_client(request, methods, endpoint))
        except InvalidClientError as error:
            problem = wrong_kind_of_client(request, methods, self.query_client)
            if problem is None:
                raise
            raise InvalidClientError(description=problem,
                                     status_code=error.status_code) from None

    # The stub returns ClientMixin; Authlib takes None for an unknown client.
    def query_client(self, client_id: str) -> Client | None:  # type: ignore[override]
        row = on_loop(_query_client, client_id)
        return Client(row) if row else None

    def get_authorization_grant(self, request: OAuth2Request) -> grants.BaseGrant:
        """Authlib's, except that an unsupported response type is refused with a fixed
        description: Authlib's quotes the response type, and fails (a 500) on the characters
        an error description must not carry (RFC 6749 §4.1.2.1)."""
        assert request.payload is not None  # an `AuthorizeRequest`: it carries its query
        if request.payload.response_type == "code":
            return super().get_authorization_grant(request)
        redirect_uri = None  # sent back only to a URI registered by an existing client
        client = self.query_client(request.payload.client_id or "")
        if client is not None:
            requested = request.payload.redirect_uri
            if not requested:
                redirect_uri = client.get_default_redirect_uri()
            elif client.check_redirect_uri(requested):
                redirect_uri = requested
        raise UnsupportedResponseTypeError(
            request.payload.response_type, "Only response_type=code is supported.",
            redirect_uri=redirect_uri,
        )

    def _mint(
        self,
        grant_type: str,
        client: Client,
        user: User | Customer | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """Authlib's token generator hook. Tokens are stored (and only then shown) in
        `save_token`, so this only records what to issue. A customer's token is the
        customer's whole access: it carries no device scope, only identity scopes (a
        refreshed code flow keeps its ID token and userinfo)."""
        if isinstance(user, Customer):
            scope = canonical_scope(" ".join(scopes.identity(scope or "")))
        return {
            "grant_type": grant_type,
            "scope": scope or "",
            "expires_in": expires_in or self.settings.access_token_lifetime,
            "include_refresh_token": include_refresh_token and user is not None,
        }

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        previous: IssuedCredential | None = request.refresh_token
        headers = request.headers or {}
        issued = on_loop(
            _issue,
            client=as_client(request.client).row,
            account=request.user,
            scope=token["scope"],
            grant_type=token["grant_type"],
            access_lifetime=token["expires_in"],
            refresh_lifetime=(
                self.settings.refresh_token_lifetime if token["include_refresh_token"] else None
            ),
            family=previous.row.family if previous else None,
            user_agent=headers.get("user-agent", ""),
            ip_address=headers.get("x-devicecloud-client-address", ""),
        )
        token.clear()
        token.update(issued.as_response())

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    # The stub types `headers` as a mapping; Authlib passes the list of pairs it built.
    def handle_response(  # type: ignore[override]
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> Outcome:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signals are unused: revocation and sign-in are recorded in storage."""


async def _issue(*, account: User | Customer | None, **issue: Any) -> tokens.IssuedToken:
    """Store the tokens for a user, a customer (who is active now) or the client itself."""
    if not isinstance(account, Customer):
        return await tokens.issue(user=account, **issue)
    issued = await tokens.issue(user=None, customer=account, **issue)
    await customer_auth.record_activity(account)
    return issued


async def _query_client(client_id: str) -> OAuthClient | None:
    return await OAuthClient.get_or_none(client_id=client_id, deleted_at=None)


Outcome = tuple[int, Any, list[tuple[str, str]]]


async def respond(
    server: AuthorizationServer, endpoint: str | None, request: FormRequest
) -> Outcome:
    """Handle a token (`endpoint=None`), revocation or introspection request off the loop."""

    def handle() -> Outcome:
        if endpoint is None:
            return server.create_token_response(request)
        return server.create_endpoint_response(endpoint, request)

    return await anyio.to_thread.run_sync(handle)
