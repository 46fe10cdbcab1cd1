"""Login with Device Cloud: the authorization code grant (RFC 6749 §4.1) with S256 PKCE
(RFC 7636) for every client, its codes, consents, and the hosted login's password check.

Authlib validates requests and runs the grant; this module stores codes (hashed, single use,
60 seconds), refuses what RFC 9700 refuses (missing or `plain` PKCE, unregistered redirect
URIs, unknown scopes), and issues the tokens: user tokens for third-party apps, customer
tokens for the WEB clients of products whose customers log in with their platform account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth import accounts, oidc, passwords, scopes, throttle, tokens
from auth.emails import normalize_email
from auth.errors import AuthCode
from auth.oauth_common import (
    SECRET_METHODS,
    FormRequest,
    as_client,
    check_requested_scope,
    loopback_parts,
    on_loop,
)
from core import clock
from core.errors import Conflict, InvalidInput, PermissionDenied
from models.accounts import User
from models.customers import Customer
from models.oauth import AuthorizationCode, Consent, OAuthClient, Token
from models.products import CustomerAuth, Product

if TYPE_CHECKING:
    from auth.oauth import AuthorizationServer

CODE_PREFIX = "dc_ac_"
CODE_LIFETIME = timedelta(seconds=60)
# Codes stay this long after they expire: a replayed code still revokes what it issued, and a
# consent form stays single use (`already_allowed`) for as long as its sign-in lasts (12 hours).
CODE_RETENTION = timedelta(hours=24)
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# OpenID Connect's request objects and dynamic registration, which are not supported: refused
# rather than ignored (OIDC Core §3.1.2.6), since the request would not be the one meant.
UNSUPPORTED_PARAMETERS: dict[str, type[OAuth2Error]] = {
    "request": RequestNotSupportedError,
    "request_uri": RequestURINotSupportedError,
    "registration": RegistrationNotSupportedError,
}
MAX_AGE_DIGITS = 10  # `max_age`, seconds: more than three centuries is no bound
BAD_CREDENTIALS = "The email or password is incorrect."


class _QueryPayload(OAuth2Payload):
    def __init__(self, params: list[tuple[str, str]]):
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in params:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class AuthorizeRequest(OAuth2Request):
    """An authorization request. Its parameters are always the query string's, also when the
    login and consent forms post back to the same URL with only their own fields."""

    headers: Mapping[str, str]
    payload: _QueryPayload

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], params: list[tuple[str, str]]
    ):
        super().__init__(method, uri, headers=headers)
        self.payload = _QueryPayload(params)

    # The stub's dict[str, str | None] is invariant; these values are all strings.
    @property
    def args(self) -> dict[str, str]:  # type: ignore[override]
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return {}


class RequireS256(CodeChallenge):
    """PKCE with S256 for every client, confidential ones included (RFC 9700 §2.1.1):
    a request without a challenge, or with `plain` (or no method, which means `plain`), is
    refused with `invalid_request`; the token request must then carry the verifier."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256."
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is refused.")
        super().validate_code_challenge(grant, redirect_uri)


class IssuedCode(AuthorizationCodeMixin):
    """Authlib's view of a stored, unused, unexpired authorization code."""

    def __init__(self, row: AuthorizationCode):
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


@dataclass(frozen=True)
class SignedIn:
    """Who approves an authorization request, and when they signed in at the hosted login
    page (OpenID Connect's `auth_time`)."""

    user: User
    auth_time: datetime


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """The code grant on our storage. At the token endpoint a confidential client
    authenticates with its secret and a public one (a native app) with none, which
    `Client.check_endpoint_auth_method` tells apart; PKCE (`RequireS256`) is registered with
    the grant, so a public client's code is bound to its verifier, and so is OpenID Connect
    (`oidc.OpenIDCodeFlow`)."""

    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]
    request: AuthorizeRequest | FormRequest

    def __init__(self, request: OAuth2Request, server: AuthorizationServer):
        super().__init__(request, server)
        self.product: Product | None = None
        # Runs once the client and redirect URI are trusted, so a refusal goes back to it.
        self.register_hook(
            "before_validate_authorization_request_payload", _client_may_sign_in_users
        )

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: ClientMixin) -> str:
        """The redirect URI is required and must be one the client registered: exactly, or a
        loopback one on any port (`Client.check_redirect_uri`). The one requested is stored
        with the code, and the token request must repeat it."""
        assert request.payload is not None  # an `AuthorizeRequest`: it carries its query
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            loopback = (" Loopback redirect URIs (127.0.0.1, [::1]) match on any port, with "
                        "the same path and query." if loopback_parts(redirect_uri) else "")
            raise InvalidRequestError(
                f"The redirect URI {_describable(redirect_uri[:200])} is not registered for "
                f"this client.{loopback}"
            )
        return redirect_uri

    def validate_requested_scope(self) -> None:
        check_requested_scope(as_client(self.request.client), self.request.payload.scope,
                              code_flow=True)

    def generate_authorization_code(self) -> str:
        return tokens.generate(CODE_PREFIX)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        assert request.payload is not None  # an `AuthorizeRequest`: it carries its query
        assert isinstance(request.user, SignedIn)  # who approved, given to `approve`
        payload = request.payload.data
        on_loop(
            _store_code,
            code,
            client=as_client(request.client).row,
            signed_in=request.user,
            redirect_uri=payload["redirect_uri"],
            scope=request.scope,
            code_challenge=payload["code_challenge"],
            code_challenge_method=payload["code_challenge_method"],
            # Checked (`oidc.check_nonce`) only for an OpenID Connect request, so kept only then.
            nonce=(payload.get("nonce") or None) if "openid" in request.scope.split() else None,
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> IssuedCode | None:
        return on_loop(_find_code, code, as_client(client).row)

    def authenticate_user(self, authorization_code: IssuedCode) -> User:
        return authorization_code.row.user

    def save_token(self, token: dict[str, Any]) -> None:
        """Redeem the code and issue its tokens in one transaction; of two concurrent uses
        only one wins, and the other revokes what the winner got. With `openid`, the signing
        key is read first and the ID token's claims inside that transaction: a failure
        leaves the code unused, and once the tokens are stored only signing remains. The ID
        token names the product's customer for a product's client."""
        settings = self.server.settings
        code = self.request.authorization_code
        assert isinstance(code, IssuedCode)  # what `query_authorization_code` found
        key = on_loop(oidc.signing_key, settings) if oidc.wants_id_token(token["scope"]) else None
        try:
            issued = on_loop(
                _redeem,
                code.row,
                scope=token["scope"],
                access_lifetime=settings.access_token_lifetime,
                refresh_lifetime=(
                    settings.refresh_token_lifetime if token["include_refresh_token"] else None
                ),
                user_agent=self.request.headers.get("user-agent", ""),
                ip_address=self.request.headers.get("x-devicecloud-client-address", ""),
            )
        except (Conflict, PermissionDenied) as error:
            raise InvalidGrantError(error.message) from None
        if issued is None:
            raise InvalidGrantError("The authorization code was already used.")
        tokens_issued, customer = issued
        if customer is not None:
            self.request.user = customer
        if key is not None:
            assert isinstance(self.request, FormRequest)  # the token endpoint's request
            self.request.id_token_basis = oidc.IdTokenBasis(
                key, dict(oidc.identity_claims(code.row.user, customer, token["scope"]))
            )
        token.clear()
        token.update(tokens_issued.as_response())

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing to do: `save_token` marked the code used (kept to detect replays)."""


def _describable(value: str) -> str:
    """`value` percent-encoded where an error description may not carry it: outside printable
    ASCII, `"` and `\\` (RFC 6749 §4.1.2.1)."""
    return quote(value, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\'))


def _client_may_sign_in_users(grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
    """A product's client signs in the product's customers, which it may do with this flow
    only when the product's customers log in with their platform account."""
    row = as_client(grant.request.client).row
    if row.product_id is None:
        return
    grant.product = on_loop(_product, row.product_id)
    if grant.product.customer_auth != CustomerAuth.LOGIN_WITH_PLATFORM:
        raise UnauthorizedClientError(
            f"The customers of this product sign in with {grant.product.customer_auth}, "
            "not with the authorization code flow."
        )


async def _product(product_id: int) -> Product:
    return await Product.get(id=product_id)


async def _store_code(
    code: str,
    *,
    client: OAuthClient,
    signed_in: SignedIn,
    redirect_uri: str,
    scope: str,
    code_challenge: str,
    code_challenge_method: str,
    nonce: str | None,
) -> None:
    now = clock.now()
    await AuthorizationCode.create(
        code_hash=tokens.digest(code),
        client=client,
        user=signed_in.user,
        nonce=nonce,
        auth_time=signed_in.auth_time,
        redirect_uri=redirect_uri,
        scope=canonical_scope(scope),
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        created_at=now,
        expires_at=now + CODE_LIFETIME,
    )


async def _find_code(raw: str, client: OAuthClient) -> IssuedCode | None:
    """The code if this client may redeem it now. A code used before is a replay: the tokens
    it issued are revoked (RFC 6749 §4.1.2, RFC 9700 §4.5)."""
    if not raw.startswith(CODE_PREFIX):
        return None
    row = (
        await AuthorizationCode.filter(code_hash=tokens.digest(raw))
        .select_related("user", "client")
        .first()
    )
    if row is None:
        return None
    if row.used_at is not None:
        await _revoke_issued(row.id)
        return None
    if row.client_id != client.id or row.expires_at <= clock.now():
        return None
    return IssuedCode(row)


async def _revoke_issued(code_id: int) -> None:
    """Revoke the token family a code issued, if it issued one."""
    code = await AuthorizationCode.get(id=code_id)
    if code.family_id is not None:
        await tokens.revoke_family(code.family_id)


async def _redeem(
    code: AuthorizationCode,
    *,
    scope: str,
    access_lifetime: int,
    refresh_lifetime: int | None,
    user_agent: str,
    ip_address: str,
) -> tuple[tokens.IssuedToken, Customer | None] | None:
    """Mark the code used and issue its tokens (to the product's customer that the user is,
    for a product's client), remembering the family for replay detection; the tokens and
    that customer. None if the code had been used meanwhile; its tokens are then revoked."""
    issued = None
    customer = None
    async with in_transaction():
        used = await AuthorizationCode.filter(id=code.id, used_at=None).update(
            used_at=clock.now()
        )
        if used:
            client = code.client
            if client.product_id is not None:
                customer = await link_customer(client.product_id, code.user)
            issued = await tokens.issue(
                client=client,
                user=code.user,
                customer=customer,
                scope=scope,
                grant_type="authorization_code",
                access_lifetime=access_lifetime,
                refresh_lifetime=refresh_lifetime,
                user_agent=user_agent,
                ip_address=ip_address,
                auth_time=code.auth_time,
            )
            token = await Token.get(access_hash=tokens.digest(issued.access_token))
            await AuthorizationCode.filter(id=code.id).update(family_id=token.family_id)
    if issued is None:
        await _revoke_issued(code.id)
        return None
    return issued, customer


async def link_customer(product_id: int, user: User) -> Customer:
    """The product's customer that this platform user is: the one linked to the account, else
    a new one. Never an existing customer found by email: platform emails are not verified, so
    whoever signed up with someone's email would take over their devices. A product whose
    customers the team or server already created with this email refuses (`Conflict`)."""
    now = clock.now()
    if not await Customer.exists(product_id=product_id, user_id=user.id):
        accounts.require_verified(user)  # a new link needs a proven email
    for _ in range(2):  # a concurrent sign-in may create the customer first
        customer = await Customer.get_or_none(product_id=product_id, user_id=user.id)
        if customer is not None:
            await Customer.filter(id=customer.id).update(last_active_at=now)
            customer.last_active_at = now
            return customer
        if await Customer.exists(product_id=product_id, email=user.email):
            break
        try:
            return await Customer.create(
                product_id=product_id, email=user.email, user=user, created_at=now,
                last_active_at=now,
            )
        except IntegrityError:
            continue
    raise Conflict("This product already has a customer with this email, not linked to this "
                   "account; an account cannot take it over.")


def canonical_scope(scope: str) -> str:
    """Known scopes in their documented order, space-separated."""
    names = set(scope.split())
    return " ".join(name for name in scopes.ALL if name in names)


# --- What the authorization endpoint calls ------------------------------------------------


@dataclass(frozen=True)
class PendingAuthorization:
    """A valid authorization request, waiting for the user's sign-in and decision."""

    grant: AuthorizationCodeGrant
    client: OAuthClient
    product: Product | None
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str
    prompt: frozenset[str]  # OpenID Connect's `prompt`: none, or login, consent, select_account
    max_age: int | None  # OpenID Connect's `max_age`: the oldest sign-in to accept, seconds

    @property
    def requested(self) -> list[scopes.Scope]:
        """The device scopes asked for, in their documented order."""
        return [scopes.Scope(name) for name in self.scope.split()
                if name in scopes.Scope._value2member_map_]

    @property
    def identity(self) -> set[scopes.IdentityScope]:
        return scopes.identity(self.scope)

    @property
    def impersonable(self) -> bool:
        """Whether any program could have made this request as this client: a public client's
        ID and redirect URIs are no secret, a loopback URI matches on any port and another
        app may claim a private-use scheme, and the code is redeemed with no secret, by
        whoever made the PKCE pair (RFC 8252 §8.6, RFC 6749 §10.2). Only an https redirect
        URI is one that nobody else receives."""
        return self.client.public and urlsplit(self.redirect_uri).scheme != "https"

    def needs_sign_in(self, signed_in_at: datetime | None) -> bool:
        """Whether the login page comes first: nobody signed in, `prompt=login` or
        `select_account`, or a sign-in older than `max_age`."""
        if signed_in_at is None or self.prompt & {"login", "select_account"}:
            return True
        return self.max_age is not None and clock.now() - signed_in_at > timedelta(
            seconds=self.max_age
        )


async def check_request(server: AuthorizationServer, request: AuthorizeRequest
                        ) -> PendingAuthorization:
    """Validate an authorization request; raises Authlib's `OAuth2Error` (see
    `refusal_location`)."""
    grant: AuthorizationCodeGrant = await anyio.to_thread.run_sync(
        server.get_consent_grant, request
    )
    data = request.payload.data
    repeated = [name for name, values in request.payload.datalist.items() if len(values) > 1]
    if repeated:
        raise InvalidRequestError(
            f"Send each parameter once (RFC 6749 section 3.1); repeated: {', '.join(repeated)}.",
            redirect_uri=grant.redirect_uri, state=request.payload.state,
        )
    for name, unsupported in UNSUPPORTED_PARAMETERS.items():
        if data.get(name):  # an empty parameter is an omitted one (RFC 6749 section 3.1)
            raise unsupported(f"The {name} parameter is not supported; send the request's "
                              "parameters in the query string.",
                              redirect_uri=grant.redirect_uri, state=request.payload.state)
    if (data.get("response_mode") or "query") != "query":
        raise InvalidRequestError(
            "response_mode must be query, the only one supported.",
            redirect_uri=grant.redirect_uri, state=request.payload.state,
        )
    prompt = frozenset((data.get("prompt") or "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequestError(
            "prompt is none alone, or any of login, consent and select_account.",
            redirect_uri=grant.redirect_uri, state=request.payload.state,
        )
    max_age = data.get("max_age")
    if max_age is not None and not (
        max_age.isascii() and max_age.isdigit() and len(max_age) <= MAX_AGE_DIGITS
    ):
        raise InvalidRequestError(
            "max_age must be a whole number of seconds.",
            redirect_uri=grant.redirect_uri, state=request.payload.state,
        )
    return PendingAuthorization(
        grant=grant,
        client=as_client(grant.request.client).row,
        product=grant.product,
        redirect_uri=grant.redirect_uri,
        scope=canonical_scope(grant.request.scope or ""),
        state=request.payload.state,
        code_challenge=data["code_challenge"],
        prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
    )


def interaction_required(pending: PendingAuthorization, *, signed_in: bool, issuer: str
                         ) -> str:
    """Where `prompt=none` sends the browser when a page would be needed (OpenID Connect
    Core §3.1.2.6): `login_required` when nobody is signed in, else `consent_required`."""
    error: OAuth2Error
    if signed_in:
        error = ConsentRequiredError("The user has not allowed this app these scopes.",
                                     redirect_uri=pending.redirect_uri, state=pending.state)
    else:
        error = LoginRequiredError("The user is not signed in.",
                                   redirect_uri=pending.redirect_uri, state=pending.state)
    return _with_issuer(dict(error()[2])["Location"], issuer)


async def already_allowed(pending: PendingAuthorization, user: User) -> bool:
    """Whether this very request (its PKCE challenge, fresh per request) already got a code
    for the user: a consent form is good for one decision."""
    return await AuthorizationCode.exists(
        client_id=pending.client.id, user_id=user.id, code_challenge=pending.code_challenge
    )


def refusal_location(error: OAuth2Error, issuer: str) -> str | None:
    """Where to send the browser for a refused request: back to the client with the error,
    or None when the client or its redirect URI is not trusted (show an error page)."""
    if not error.redirect_uri:
        return None
    return _with_issuer(dict(error()[2])["Location"], issuer)


async def approve(pending: PendingAuthorization, signed_in: SignedIn, issuer: str) -> str:
    """Issue a code for the user; the client's redirect URI with `code`, `state` and `iss`."""
    _, _, headers = await anyio.to_thread.run_sync(
        pending.grant.create_authorization_response, pending.redirect_uri, signed_in
    )
    return _with_issuer(dict(headers)["Location"], issuer)


def denial_location(pending: PendingAuthorization, issuer: str) -> str:
    error = AccessDeniedError(
        "The user denied the request.", redirect_uri=pending.redirect_uri, state=pending.state
    )
    return _with_issuer(dict(error()[2])["Location"], issuer)


def _with_issuer(location: str, issuer: str) -> str:
    """RFC 9207: every authorization response names the issuer."""
    return add_params_to_uri(location, [("iss", issuer)])


async def consent_covers(user: User, pending: PendingAuthorization) -> bool:
    """Whether the user already allowed this client these scopes (or more), so that the
    request needs no consent page. Never for a request that anyone could make in the client's
    name (`PendingAuthorization.impersonable`): only the user's decision tells it apart."""
    if pending.impersonable:
        return False
    consent = await Consent.get_or_none(user_id=user.id, client_id=pending.client.id)
    return consent is not None and set(pending.scope.split()) <= set(consent.scope.split())


async def remember_consent(user: User, client: OAuthClient, scope: str) -> None:
    """Record the user's consent; scopes granted before stay granted."""
    now = clock.now()
    for _ in range(2):  # a concurrent consent may create the row first
        consent = await Consent.get_or_none(user_id=user.id, client_id=client.id)
        if consent is not None:
            granted = canonical_scope(f"{consent.scope} {scope}")
            await Consent.filter(id=consent.id).update(scope=granted, updated_at=now)
            return
        try:
            await Consent.create(
                user=user, client=client, scope=scope, created_at=now, updated_at=now
            )
            return
        except IntegrityError:
            continue


async def sign_in(email: str, password: str, address: str) -> User:
    """The hosted login page's password check, throttled like the password grant (the same
    counters). Raises `throttle.Throttled`, or `InvalidInput` for wrong credentials."""
    try:
        normalized = normalize_email(email)
    except InvalidInput:
        normalized = email.strip().lower()[:254]
    keys = throttle.SignInKeys.of(normalized, address)
    await throttle.check(keys)
    await throttle.begin_attempt(keys)
    user = await User.get_or_none(email=normalized)
    if not await passwords.verify_password(user.password_hash if user else None, password):
        raise InvalidInput(BAD_CREDENTIALS, code=AuthCode.BAD_CREDENTIALS)
    assert user is not None  # no account: `verify_password` refused
    await throttle.record_success(keys)
    return user
