"""The one place that talks to Stripe: customers, saved cards and off-session charges, through
the official library's async client, plus the verification of Stripe's webhook signatures.

It holds no business rules: billing decides what to charge and when, and calls this. Stripe's
objects do not leave the module; callers get the small records below. A card that fails is an
outcome (`Charge`), never an exception; Stripe being out of reach is `Unavailable`
(`PAYMENTS_UNAVAILABLE`), so a caller can tell "the card said no" from "try again later".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import stripe

from billing.errors import BillingCode
from core import clock
from core.errors import InvalidInput, Unavailable

CURRENCY = "usd"
# Stripe's own limit on a webhook's age (`stripe.Webhook.DEFAULT_TOLERANCE`), seconds.
WEBHOOK_TOLERANCE = 300
# Seconds one API call may take before it counts as Stripe being unavailable.
REQUEST_TIMEOUT = 30
# Transient failures (connection errors, 409 lock timeouts, 5xx) the library retries itself,
# with the same idempotency key, before giving up.
NETWORK_RETRIES = 2


class ChargeOutcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"
    # The payment is under way and settles later (payment_intent.succeeded or
    # .payment_failed arrives as a webhook); Stripe does not do this for cards but can.
    PROCESSING = "PROCESSING"


@dataclass(frozen=True, slots=True)
class CardSetup:
    setup_intent_id: str
    client_secret: str  # for the app, to confirm the SetupIntent with the card


@dataclass(frozen=True, slots=True)
class Card:
    payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class Charge:
    outcome: ChargeOutcome
    payment_intent_id: str | None  # None when Stripe created none (or did not say which)
    message: str  # for people: Stripe's reason when the card failed


class StripeGateway:
    """Stripe at `api_base` (None: Stripe itself), reached with the secret key `api_key`."""

    def __init__(self, api_key: str, api_base: str | None) -> None:
        self._http = stripe.HTTPXClient(timeout=REQUEST_TIMEOUT)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else {},
            http_client=self._http,
            max_network_retries=NETWORK_RETRIES,
        )

    async def close(self) -> None:
        """Close the connections to Stripe."""
        await self._http.close_async()

    async def create_customer(self, *, organization_id: int, name: str, email: str) -> str:
        """Create the organization's Stripe customer; returns its ID. The idempotency key is
        the organization's, so a retry (within Stripe's 24 hours of keeping keys) returns the
        same customer instead of making a second: store the ID once you have it."""
        with _unavailable_when_stripe_is():
            customer = await self._client.v1.customers.create_async(
                {"name": name, "email": email,
                 "metadata": {"organization_id": str(organization_id)}},
                {"idempotency_key": f"customer-of-organization-{organization_id}"},
            )
        return customer.id

    async def create_card_setup(self, customer_id: str) -> CardSetup:
        """A SetupIntent that saves a card of the customer for charges made without them."""
        with _unavailable_when_stripe_is():
            intent = await self._client.v1.setup_intents.create_async(
                {"customer": customer_id, "usage": "off_session"}
            )
        if intent.client_secret is None:
            raise Unavailable("Stripe returned a SetupIntent without a client secret",
                              code=BillingCode.PAYMENTS_UNAVAILABLE)
        return CardSetup(intent.id, intent.client_secret)

    async def set_default_card(self, customer_id: str, payment_method_id: str) -> Card:
        """Make the card the customer's default for invoices, attaching it to the customer
        first when it is not yet (a confirmed SetupIntent attaches it on Stripe)."""
        with _unavailable_when_stripe_is():
            method = await self._attached(customer_id, payment_method_id)
            await self._client.v1.customers.update_async(
                customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}
            )
        card = method.card
        assert card is not None  # `_attached` refuses anything but a card
        return Card(method.id, card.brand, card.last4, card.exp_month, card.exp_year)

    async def _attached(self, customer_id: str, payment_method_id: str) -> stripe.PaymentMethod:
        """The payment method, attached to the customer (now, if it was not yet); refused,
        with nothing changed on Stripe, if it is not a card."""
        try:
            method = await self._client.v1.payment_methods.retrieve_async(payment_method_id)
            if method.type != "card" or method.card is None:
                raise InvalidInput("The payment method is not a card.",
                                   code=BillingCode.PAYMENT_METHOD_INVALID)
            owner = method.customer if isinstance(method.customer, str | None) \
                else method.customer.id
            if owner is None:
                method = await self._client.v1.payment_methods.attach_async(
                    payment_method_id, {"customer": customer_id}
                )
        except stripe.CardError as error:
            raise InvalidInput(error.user_message or "The card was declined.",
                               code=BillingCode.CARD_DECLINED) from error
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                raise InvalidInput("No such card.",
                                   code=BillingCode.PAYMENT_METHOD_INVALID) from error
            raise
        if owner not in (None, customer_id):
            raise InvalidInput("The card belongs to another customer.",
                               code=BillingCode.PAYMENT_METHOD_INVALID)
        return method

    async def charge(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
        description: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Charge:
        """Charge the saved card now, without the customer (an off-session PaymentIntent,
        confirmed at once), in USD. The same `idempotency_key` within 24 hours returns the
        first attempt's result instead of charging again: use one key per charge attempt.
        `description` goes in the metadata (as `description`): localstripe refuses a
        PaymentIntent's own `description` field."""
        with _unavailable_when_stripe_is():
            try:
                intent = await self._client.v1.payment_intents.create_async(
                    {
                        "amount": amount_cents,
                        "currency": CURRENCY,
                        "customer": customer_id,
                        "payment_method": payment_method_id,
                        "confirm": True,
                        "off_session": True,
                        "metadata": {**metadata, "description": description},
                    },
                    {"idempotency_key": idempotency_key},
                )
            except stripe.CardError as error:
                return _failed_charge(error)
        if intent.status == "succeeded":
            return Charge(ChargeOutcome.SUCCEEDED, intent.id, "Paid.")
        if intent.status == "requires_action":
            return Charge(ChargeOutcome.AUTHENTICATION_REQUIRED, intent.id,
                          "The card requires authentication by its holder.")
        if intent.status == "processing":
            return Charge(ChargeOutcome.PROCESSING, intent.id, "The payment is processing.")
        error_message = intent.last_payment_error.message if intent.last_payment_error else None
        return Charge(ChargeOutcome.DECLINED, intent.id, error_message or "The card was declined.")


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event of a webhook request, once its `Stripe-Signature` header proves that Stripe
    sent this very body, signed with the endpoint's `secret`, at most 5 minutes ago. The age
    is measured on `core.clock` (the system clock, but for tests that travel in time).
    Anything else is refused with WEBHOOK_SIGNATURE_INVALID."""
    if not signature:
        raise InvalidInput("Invalid Stripe signature: the request has no Stripe-Signature header",
                           code=BillingCode.WEBHOOK_SIGNATURE_INVALID)
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=None)
    except stripe.SignatureVerificationError as error:
        raise InvalidInput(f"Invalid Stripe signature: {error.user_message}",
                           code=BillingCode.WEBHOOK_SIGNATURE_INVALID) from error
    except UnicodeDecodeError as error:
        raise InvalidInput("Invalid Stripe signature: the body is not UTF-8",
                           code=BillingCode.WEBHOOK_SIGNATURE_INVALID) from error
    # verify_header has parsed the timestamp: the header has exactly one `t=<integer>`.
    signed_at = next(int(value) for key, _, value in
                     (item.partition("=") for item in signature.split(",")) if key == "t")
    if signed_at < int(clock.now().timestamp()) - WEBHOOK_TOLERANCE:
        raise InvalidInput(
            f"Invalid Stripe signature: it was made more than {WEBHOOK_TOLERANCE} seconds ago",
            code=BillingCode.WEBHOOK_SIGNATURE_INVALID,
        )
    try:
        event = json.loads(payload)
    except ValueError as error:
        raise InvalidInput("The webhook's body is not JSON.") from error
    if not isinstance(event, dict):
        raise InvalidInput("The webhook's body is not a JSON object.")
    return event


def _failed_charge(error: stripe.CardError) -> Charge:
    """A card error as an outcome: Stripe names the PaymentIntent it created in the error."""
    intent = error.error.payment_intent if error.error else None
    intent_id = intent.id if intent else None
    message = error.user_message or "The card was declined."
    if error.code == "authentication_required":
        return Charge(ChargeOutcome.AUTHENTICATION_REQUIRED, intent_id, message)
    return Charge(ChargeOutcome.DECLINED, intent_id, message)


@contextmanager
def _unavailable_when_stripe_is() -> Iterator[None]:
    """Stripe out of reach, failing or refusing our key, as PAYMENTS_UNAVAILABLE. Any other
    error of the library is a mistake in the request and propagates as it is."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
        raise Unavailable(f"Stripe could not be reached: {error.user_message}",
                          code=BillingCode.PAYMENTS_UNAVAILABLE) from error
    except (stripe.AuthenticationError, stripe.PermissionError) as error:
        raise Unavailable("Stripe refused the API key (STRIPE_API_KEY).",
                          code=BillingCode.PAYMENTS_UNAVAILABLE) from error
