"""billing.stripe_gateway against a real localstripe: customers, card setup as the app does it,
charges with Stripe's test cards, idempotency, Stripe out of reach, and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from billing.errors import BillingCode
from billing.stripe_gateway import (
    Card,
    Charge,
    ChargeOutcome,
    StripeGateway,
    verify_webhook,
)
from core.errors import InvalidInput, Unavailable
from core.settings import Settings
from tests.support.localstripe import API_KEY, Localstripe
from tests.support.processes import free_port
from tests.support.servers import Clock

SUCCEEDS = "4242424242424242"
DECLINES_CHARGES = "4000000000000341"  # attaches, then every charge is declined
ALWAYS_AUTHENTICATES = "4000002760003184"  # 3-D Secure on every payment
SECRET = "whsec_test_" + "s" * 32


@pytest.fixture
async def gateway(localstripe: Localstripe) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(API_KEY, localstripe.url)
    yield gateway
    await gateway.close()


def organization_id() -> int:
    """An organization ID no other test uses (localstripe and its front keep the session's
    customers and idempotency keys)."""
    return secrets.randbits(48)


async def new_customer(gateway: StripeGateway) -> str:
    number = organization_id()
    return await gateway.create_customer(organization_id=number, name=f"Org {number}",
                                         email=f"billing-{number}@example.com")


async def confirm_setup(localstripe: Localstripe, gateway: StripeGateway, customer_id: str,
                        number: str) -> tuple[str, str]:
    """What the app does with Stripe.js: a card from its number, then the SetupIntent confirmed
    with it. Returns the payment method's ID and the SetupIntent's status."""
    setup = await gateway.create_card_setup(customer_id)
    async with localstripe.client() as stripe:
        method = (await stripe.post("/v1/payment_methods", data={
            "type": "card", "card[number]": number, "card[exp_month]": "12",
            "card[exp_year]": "2031", "card[cvc]": "123",
        })).json()
        intent = (await stripe.post(f"/v1/setup_intents/{setup.setup_intent_id}/confirm", data={
            "payment_method": method["id"], "client_secret": setup.client_secret,
        })).json()
    return method["id"], intent["status"]


async def saved_card(localstripe: Localstripe, gateway: StripeGateway, number: str
                     ) -> tuple[str, str]:
    """A new customer with the card `number` as default: the customer's ID and the card's."""
    customer_id = await new_customer(gateway)
    method_id, _ = await confirm_setup(localstripe, gateway, customer_id, number)
    await gateway.set_default_card(customer_id, method_id)
    return customer_id, method_id


async def charge(gateway: StripeGateway, customer_id: str, method_id: str, *,
                 key: str | None = None, amount: int = 4900) -> Charge:
    return await gateway.charge(
        customer_id=customer_id, payment_method_id=method_id, amount_cents=amount,
        description="Invoice 7", idempotency_key=key or secrets.token_hex(8),
        metadata={"invoice": "7"},
    )


async def payment_intents_of(localstripe: Localstripe, customer_id: str) -> list[dict]:
    async with localstripe.client() as stripe:
        everything = (await stripe.get("/v1/payment_intents", params={"limit": 100})).json()
    assert everything["has_more"] is False
    return [intent for intent in everything["data"] if intent["customer"] == customer_id]


async def test_an_organization_gets_one_customer_however_often_it_is_created(
        localstripe, gateway):
    number = organization_id()
    email = f"billing-{number}@example.com"
    first = await gateway.create_customer(organization_id=number, name="Acme", email=email)
    again = await gateway.create_customer(organization_id=number, name="Acme", email=email)
    other = await new_customer(gateway)

    assert again == first
    assert other != first
    async with localstripe.client() as stripe:
        found = (await stripe.get("/v1/customers", params={"email": email})).json()["data"]
    assert [(c["id"], c["name"], c["metadata"]) for c in found] == [
        (first, "Acme", {"organization_id": str(number)})]


async def test_a_card_setup_is_an_off_session_setup_intent_with_a_client_secret(
        localstripe, gateway):
    customer_id = await new_customer(gateway)

    setup = await gateway.create_card_setup(customer_id)

    assert setup.setup_intent_id.startswith("seti_")
    assert setup.client_secret.startswith(f"{setup.setup_intent_id}_secret_")
    async with localstripe.client() as stripe:
        intent = (await stripe.get(f"/v1/setup_intents/{setup.setup_intent_id}")).json()
    assert (intent["customer"], intent["usage"], intent["status"], intent["client_secret"]) == (
        customer_id, "off_session", "requires_payment_method", setup.client_secret)


async def test_a_confirmed_card_becomes_the_customers_default(localstripe, gateway):
    customer_id = await new_customer(gateway)
    method_id, status = await confirm_setup(localstripe, gateway, customer_id, SUCCEEDS)
    assert status == "succeeded"

    card = await gateway.set_default_card(customer_id, method_id)

    assert card == Card(method_id, "visa", "4242", 12, 2031)
    async with localstripe.client() as stripe:
        customer = (await stripe.get(f"/v1/customers/{customer_id}")).json()
        method = (await stripe.get(f"/v1/payment_methods/{method_id}")).json()
    assert customer["invoice_settings"]["default_payment_method"] == method_id
    assert method["customer"] == customer_id
    # Setting it again (the card is attached now) changes nothing.
    assert await gateway.set_default_card(customer_id, method_id) == card


async def test_another_customers_card_or_no_card_is_refused(localstripe, gateway):
    _, method_id = await saved_card(localstripe, gateway, SUCCEEDS)
    other = await new_customer(gateway)

    with pytest.raises(InvalidInput) as taken:
        await gateway.set_default_card(other, method_id)
    with pytest.raises(InvalidInput) as missing:
        await gateway.set_default_card(other, "pm_nosuchcard0000")

    assert (taken.value.code, taken.value.message) == (
        BillingCode.PAYMENT_METHOD_INVALID, "The card belongs to another customer.")
    assert (missing.value.code, missing.value.message) == (
        BillingCode.PAYMENT_METHOD_INVALID, "No such card.")


async def test_a_good_card_is_charged_off_session_in_usd(localstripe, gateway):
    customer_id, method_id = await saved_card(localstripe, gateway, SUCCEEDS)

    result = await charge(gateway, customer_id, method_id, amount=58800)

    assert result.outcome is ChargeOutcome.SUCCEEDED
    assert result.message == "Paid."
    [intent] = await payment_intents_of(localstripe, customer_id)
    assert (intent["id"], intent["status"], intent["amount"], intent["currency"],
            intent["payment_method"], intent["metadata"]) == (
        result.payment_intent_id, "succeeded", 58800, "usd", method_id,
        {"invoice": "7", "description": "Invoice 7"})


async def test_a_card_that_attaches_but_declines_is_declined_every_time(localstripe, gateway):
    customer_id, method_id = await saved_card(localstripe, gateway, DECLINES_CHARGES)

    first = await charge(gateway, customer_id, method_id)
    second = await charge(gateway, customer_id, method_id)

    # localstripe names no PaymentIntent in its card error (Stripe does).
    assert first == second == Charge(ChargeOutcome.DECLINED, None, "Your card was declined.")
    intents = await payment_intents_of(localstripe, customer_id)
    assert [i["status"] for i in intents] == ["requires_payment_method"] * 2


async def test_a_card_that_needs_3d_secure_requires_authentication(localstripe, gateway):
    customer_id = await new_customer(gateway)
    method_id, status = await confirm_setup(localstripe, gateway, customer_id,
                                            ALWAYS_AUTHENTICATES)
    assert status == "requires_action"
    await gateway.set_default_card(customer_id, method_id)

    result = await charge(gateway, customer_id, method_id)

    [intent] = await payment_intents_of(localstripe, customer_id)
    assert result == Charge(ChargeOutcome.AUTHENTICATION_REQUIRED, intent["id"],
                            "The card requires authentication by its holder.")
    assert intent["status"] == "requires_action"


async def test_the_same_idempotency_key_charges_once(localstripe, gateway):
    customer_id, method_id = await saved_card(localstripe, gateway, SUCCEEDS)

    first = await charge(gateway, customer_id, method_id, key="invoice-7-attempt-1")
    retried = await charge(gateway, customer_id, method_id, key="invoice-7-attempt-1")
    assert retried == first
    assert len(await payment_intents_of(localstripe, customer_id)) == 1

    next_attempt = await charge(gateway, customer_id, method_id, key="invoice-7-attempt-2")
    assert next_attempt.payment_intent_id != first.payment_intent_id
    assert len(await payment_intents_of(localstripe, customer_id)) == 2


async def test_stripe_out_of_reach_is_unavailable(localstripe):
    nowhere = StripeGateway(API_KEY, f"http://127.0.0.1:{free_port()}")
    refused = StripeGateway("sk_" + "x", localstripe.url)  # localstripe wants sk_ and more
    try:
        with pytest.raises(Unavailable) as unreachable:
            await nowhere.create_customer(organization_id=organization_id(), name="Acme",
                                          email="billing@example.com")
        with pytest.raises(Unavailable) as unauthorized:
            await refused.create_card_setup("cus_any")
    finally:
        await nowhere.close()
        await refused.close()

    assert unreachable.value.code is BillingCode.PAYMENTS_UNAVAILABLE
    assert unreachable.value.message.startswith("Stripe could not be reached: ")
    assert (unauthorized.value.code, unauthorized.value.message) == (
        BillingCode.PAYMENTS_UNAVAILABLE, "Stripe refused the API key (STRIPE_API_KEY).")


# --- Webhook signatures --------------------------------------------------------------------

EVENT = {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
         "data": {"object": {"id": "pi_1", "object": "payment_intent"}}}


def signed(payload: bytes, timestamp: int, secret: str = SECRET) -> str:
    """The `Stripe-Signature` header as Stripe documents it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def refusal(payload: bytes, signature: str | None) -> str:
    with pytest.raises(InvalidInput) as refused:
        verify_webhook(payload, signature, SECRET)
    assert refused.value.code is BillingCode.WEBHOOK_SIGNATURE_INVALID
    return refused.value.message


def test_a_webhook_signed_with_the_secret_is_accepted(frozen_clock: Clock):
    payload = json.dumps(EVENT).encode()
    now = int(frozen_clock.current.timestamp())

    assert verify_webhook(payload, signed(payload, now), SECRET) == EVENT
    # Stripe signs with every secret of a rolled endpoint: one matching signature is enough.
    rolled = signed(payload, now, "whsec_old") + "," + signed(payload, now).split(",")[1]
    assert verify_webhook(payload, rolled, SECRET) == EVENT


def test_a_forged_or_tampered_webhook_is_refused(frozen_clock: Clock):
    payload = json.dumps(EVENT).encode()
    now = int(frozen_clock.current.timestamp())
    no_match = ("Invalid Stripe signature: No signatures found matching the expected "
                "signature for payload")

    assert refusal(payload, signed(payload, now, "whsec_forger")) == no_match
    assert refusal(payload.replace(b"pi_1", b"pi_2"), signed(payload, now)) == no_match
    assert refusal(payload, f"t={now},v0=abc") == (
        "Invalid Stripe signature: No signatures found with expected scheme v1")
    assert refusal(payload, "garbage") == (
        "Invalid Stripe signature: Unable to extract timestamp and signatures from header")


def test_a_webhook_without_a_signature_is_refused(frozen_clock: Clock):
    payload = json.dumps(EVENT).encode()
    missing = "Invalid Stripe signature: the request has no Stripe-Signature header"

    assert refusal(payload, None) == missing
    assert refusal(payload, "") == missing


def test_a_webhook_signed_more_than_5_minutes_ago_is_refused(frozen_clock: Clock):
    payload = json.dumps(EVENT).encode()
    now = int(frozen_clock.current.timestamp())

    assert verify_webhook(payload, signed(payload, now - 300), SECRET) == EVENT
    assert refusal(payload, signed(payload, now - 301)) == (
        "Invalid Stripe signature: it was made more than 300 seconds ago")
    # The age is measured on the app's clock.
    header = signed(payload, now)
    frozen_clock.advance(seconds=301)
    assert refusal(payload, header) == (
        "Invalid Stripe signature: it was made more than 300 seconds ago")


# --- Settings ------------------------------------------------------------------------------


def test_stripe_is_configured_by_its_api_key():
    assert Settings(stripe_api_key="").stripe_configured is False
    assert Settings(stripe_api_key=API_KEY, stripe_api_base="http://127.0.0.1:8420",
                    stripe_webhook_secret=SECRET).stripe_configured is True


@pytest.mark.parametrize(("values", "message"), [
    ({"stripe_api_key": "pk_test_publishable"},
     "STRIPE_API_KEY must be a secret or restricted key (sk_… or rk_…)"),
    ({"stripe_webhook_secret": "not-a-secret"},
     "STRIPE_WEBHOOK_SECRET must be an endpoint's signing secret (whsec_…)"),
    ({"stripe_api_base": "ftp://stripe.example"},
     "STRIPE_API_BASE must be empty (Stripe itself) or look like http://host:8420, without a path"),
    ({"stripe_api_base": "http://stripe.example/v1"},
     "STRIPE_API_BASE must be empty (Stripe itself) or look like http://host:8420, without a path"),
])
def test_a_wrong_stripe_setting_is_refused_without_its_value(values, message):
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert refused.value.errors()[0]["msg"] == f"Value error, {message}"
    assert all(value not in str(refused.value) for value in values.values())
