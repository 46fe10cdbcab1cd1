"""The codes of the errors `billing/` raises: plans and their blocks."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ErrorCode


class BillingCode(ErrorCode):
    BLOCKS_ON_BASIC_ONLY = "BLOCKS_ON_BASIC_ONLY", HTTPStatus.CONFLICT, \
        "Blocks are added on the BASIC plan only; the organization is on another plan."
