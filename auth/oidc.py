"""OpenID Connect on the authorization code flow: who signed in (`sub` and the claims of the
identity scopes) and the signed ID tokens, through Authlib's `OpenIDCode` extension.

`sub` is the same value introspection reports: `user:<id>` for a platform user (a third-party
app), `customer:<id>` for the product's customer the user is linked to (a product's app), so
it is stable per user (per customer for product apps) and never an email.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core import OpenIDCode, OpenIDToken, UserInfo
from authlib.oidc.core.grants.util import is_openid_scope
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from tortoise.exceptions import BaseORMException

from auth import signing_keys
from auth.oauth_common import as_client, on_loop
from core import clock
from core.settings import Settings
from models.accounts import User
from models.customers import Customer
from models.oauth import AuthorizationCode

if TYPE_CHECKING:
    from authlib.oauth2.rfc6749 import grants

log = logging.getLogger(__name__)

NONCE_MAX_LENGTH = 255
# The claims an ID token or userinfo may carry; `profile` has none to give yet: accounts hold
# no name, picture or locale.
CLAIMS_SUPPORTED = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                    "email", "email_verified"]


def subject(user: User | None, customer: Customer | None) -> str:
    """`sub`: the customer for a product's app, else the user."""
    if customer is not None:
        return f"customer:{customer.id}"
    assert user is not None  # a code flow's token names a user or a customer
    return f"user:{user.id}"


def identity_claims(user: User | None, customer: Customer | None, scope: str) -> UserInfo:
    """The claims about a code flow's user (and the product's customer it is, for a product's
    app), for the token's identity scopes. A customer's email claims are those of the platform
    account linked to it."""
    info = UserInfo(sub=subject(user, customer))
    if user is not None:
        info["email"] = user.email
        info["email_verified"] = user.email_verified_at is not None
    return info.filter(scope)


async def user_info(account: User | Customer, scope: str) -> UserInfo:
    """`identity_claims` for whoever a token names; a customer's linked account is read only
    when the scope asks for its email."""
    if not isinstance(account, Customer):
        return identity_claims(account, None, scope)
    user = None
    if "email" in scope.split() and account.user_id is not None:
        user = await User.get_or_none(id=account.user_id)
    return identity_claims(user, account, scope)


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def check_nonce(nonce: str) -> None:
    """OpenID Connect puts no bound on `nonce`; a code stores it: at most 255 printable ASCII
    characters (what libraries generate: base64url, hex)."""
    if len(nonce) > NONCE_MAX_LENGTH or not all("\x21" <= c <= "\x7e" for c in nonce):
        raise InvalidRequestError(
            f"nonce must be 1 to {NONCE_MAX_LENGTH} printable ASCII characters, without spaces."
        )


class IdTokenUnavailable(OAuth2Error):
    """The signing key could not be read (the database failed, or the key does not decrypt
    under this SECRET_KEY) before a token request committed anything: the code or refresh
    token stays usable, and the client may try again."""

    error = "server_error"
    status_code = 500

    def __init__(self) -> None:
        super().__init__(description="ID tokens cannot be signed at the moment. Nothing was "
                                     "issued and the code or refresh token is still usable: "
                                     "try again later.")


@dataclass(frozen=True)
class IdTokenBasis:
    """What an ID token needs that storage gives, read before a grant commits its tokens so
    that, once they are stored, only signing remains."""

    key: signing_keys.ActiveKey
    claims: dict[str, Any]


async def signing_key(settings: Settings) -> signing_keys.ActiveKey:
    """The current signing key, or `IdTokenUnavailable` (logged with its cause)."""
    try:
        return await signing_keys.current(settings)
    except (signing_keys.SigningKeyUnreadable, BaseORMException, OSError):
        log.exception("The ID token signing key could not be read")
        raise IdTokenUnavailable() from None


def wants_id_token(scope: str | None) -> bool:
    return bool(scope) and is_openid_scope(scope)


class _IdTokens:
    """What both extensions share: ID tokens signed with the current signing key, timed by
    the core clock, with the claims of the token's identity scopes."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def auth_time(self, request: OAuth2Request) -> datetime | None:
        raise NotImplementedError

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        """Authlib's `OpenIDToken.encode_id_token`, with the key and claims the grant read
        before it committed (`IdTokenBasis`, on the request) and the time from the core
        clock: nothing here touches storage, so nothing can fail after the tokens exist."""
        basis: IdTokenBasis | None = getattr(request, "id_token_basis", None)
        assert basis is not None  # every grant with `openid` prepares it before its commit
        key = basis.key
        now = _timestamp(clock.now())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "aud": as_client(request.client).get_client_id(),
            "iat": now,
            "exp": now + self.settings.id_token_lifetime,
        }
        auth_time = self.auth_time(request)
        if auth_time is not None:
            claims["auth_time"] = _timestamp(auth_time)
        code = request.authorization_code
        if code is not None and code.row.nonce:
            claims["nonce"] = code.row.nonce
        at_hash = create_half_hash(token["access_token"], key.algorithm)
        assert at_hash is not None  # a SHA-2 algorithm
        claims["at_hash"] = at_hash.decode()
        claims.update(basis.claims)
        return jwt.encode({"alg": key.algorithm, "kid": key.kid}, claims, key.private,
                          [key.algorithm])


class OpenIDCodeFlow(_IdTokens, OpenIDCode):
    """The code grant's extension: `nonce` checked and stored with the code, an ID token in
    the token response when the code's scope has `openid`. Prompts are the authorization
    endpoint's (`code_flow.check_request`), which knows the browser's sign-in."""

    def __init__(self, settings: Settings):
        _IdTokens.__init__(self, settings)
        OpenIDCode.__init__(self, require_nonce=False)  # optional in the code flow (§3.1.2.1)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        """A bounded nonce, good for one code per client: a replay is refused, with a clearer
        description than Authlib's."""
        check_nonce(nonce)
        if on_loop(_nonce_used, as_client(request.client).row.id, nonce):
            raise InvalidRequestError("This nonce was already used with this client: send a "
                                      "new one with every request.")
        return False

    def auth_time(self, request: OAuth2Request) -> datetime | None:
        code = request.authorization_code
        return code.row.auth_time if code is not None else None

    def __call__(self, grant: grants.BaseGrant) -> None:
        # The stub types hooks as returning None; Authlib ignores what they return.
        grant.register_hook("after_create_token_response",
                            self.process_token)  # type: ignore[arg-type]
        assert grant.request.payload is not None  # every grant's request carries parameters
        if is_openid_scope(grant.request.payload.scope):
            grant.register_hook("after_validate_authorization_request_payload",
                                self.validate_openid_authorization_request)


class RefreshedIdToken(_IdTokens, OpenIDToken):
    """The refresh grant's extension: a new ID token when the family's scope has `openid`
    (OpenID Connect Core §12.2): the same `sub` and `auth_time`, a new `iat`, no `nonce`."""

    def auth_time(self, request: OAuth2Request) -> datetime | None:
        assert request.refresh_token is not None  # the refresh grant authenticated it
        auth_time: datetime | None = request.refresh_token.row.family.auth_time
        return auth_time


async def _nonce_used(client_id: int, nonce: str) -> bool:
    return await AuthorizationCode.exists(client_id=client_id, nonce=nonce)
