"""The codes of the errors `billing/` raises: plans and their blocks, payments through Stripe."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ErrorCode


class BillingCode(ErrorCode):
    BLOCKS_ON_BASIC_ONLY = "BLOCKS_ON_BASIC_ONLY", HTTPStatus.CONFLICT, \
        "Blocks are added on the BASIC plan only; the organization is on another plan."
    PAYMENTS_UNAVAILABLE = "PAYMENTS_UNAVAILABLE", HTTPStatus.SERVICE_UNAVAILABLE, \
        "The payment provider could not be reached or refused our credentials; try again later."
    CARD_DECLINED = "CARD_DECLINED", HTTPStatus.BAD_REQUEST, \
        "The card was declined when it was saved."
    PAYMENT_METHOD_INVALID = "PAYMENT_METHOD_INVALID", HTTPStatus.BAD_REQUEST, \
        "No such card, or it belongs to another customer."
    WEBHOOK_SIGNATURE_INVALID = "WEBHOOK_SIGNATURE_INVALID", HTTPStatus.BAD_REQUEST, \
        "A webhook's signature is missing, forged or too old."
