"""A product's customers at the token endpoint, each product's in the way it chose
(`Product.customer_auth`; Login with Device Cloud is `auth.code_flow`'s):

- SIMPLE: a customer signs in with the password grant through one of the product's apps (WEB
  or MOBILE client); the username is looked up among that product's customers only.
- TWO_LEGGED: the product's SERVER client, with its own credentials, asks for
  `grant_type=client_credentials&scope=customer=EMAIL` (Particle's form) and gets an access
  token for that customer of its product, living `expires_in` seconds at most up to the
  client's maximum.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)

from auth import throttle
from auth.emails import normalize_email
from core import clock
from core.errors import InvalidInput
from models.customers import Customer
from models.oauth import ClientType, OAuthClient
from models.products import CustomerAuth, Product

CUSTOMER_SCOPE = "customer="


def sign_in_keys(product_id: int, email: str, address: str) -> throttle.SignInKeys:
    """Throttling keys for a customer's password: the account is the product's customer with
    this email (never a platform account's counter), the address is shared with users'."""
    return throttle.SignInKeys(
        account=f"customer:{product_id}:{email}", address=f"address:{address}"
    )


async def require_method(product_id: int, method: CustomerAuth, way: str) -> None:
    """Refuse (`unauthorized_client`) a product whose customers sign in another way."""
    chosen = (await Product.get(id=product_id)).customer_auth
    if chosen != method:
        raise UnauthorizedClientError(
            f"The customers of this product sign in with {chosen}, not with {way}."
        )


async def find(product_id: int, email: str) -> Customer | None:
    return await Customer.get_or_none(product_id=product_id, email=email)


def asks_for_customer(scope: str | None) -> bool:
    """Whether a client_credentials request asks for a customer's token."""
    return any(item.startswith(CUSTOMER_SCOPE) for item in (scope or "").split())


async def customer_for_scope(client: OAuthClient, scope: str) -> Customer:
    """The customer that `scope=customer=EMAIL` names, among the customers of the SERVER
    client's product. RFC 6749 §5.2: a malformed request is `invalid_scope`, an email no
    customer of the product has `invalid_grant`."""
    if client.product_id is None or client.kind != ClientType.SERVER:
        raise InvalidScopeError(
            "Only a product's SERVER client may ask for a customer's token "
            "(scope=customer=EMAIL)."
        )
    await require_method(client.product_id, CustomerAuth.TWO_LEGGED, "tokens its server mints")
    items = scope.split()
    if len(items) != 1:
        raise InvalidScopeError(
            "Ask for one customer's token at a time: scope=customer=EMAIL, alone."
        )
    raw = items[0].removeprefix(CUSTOMER_SCOPE)
    if not raw:
        raise InvalidScopeError("scope=customer= names no customer: send scope=customer=EMAIL.")
    try:
        email = normalize_email(raw)
    except InvalidInput as error:
        raise InvalidScopeError(error.message) from None
    customer = await find(client.product_id, email)
    if customer is None:
        raise InvalidGrantError("This product has no customer with this email.")
    return customer


def customer_token_lifetime(client: OAuthClient, requested: str | None, default: int) -> int:
    """Seconds a minted customer token lives: `expires_in` as asked (else `default`), capped
    by the client's maximum (else `default`)."""
    cap = client.max_token_lifetime or default
    if requested is None:
        return min(default, cap)
    if not (requested.isascii() and requested.isdigit() and len(requested) <= 18) or (
        int(requested) < 1
    ):
        raise InvalidRequestError("expires_in must be a whole number of seconds, at least 1.")
    return min(int(requested), cap)


async def record_activity(customer: Customer) -> None:
    """A token issued to the customer is a use of it: they are active now."""
    await Customer.filter(id=customer.id).update(last_active_at=clock.now())
