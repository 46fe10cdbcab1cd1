"""The codes of the errors `auth/` raises: accounts, sign-in, apps and tokens."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ErrorCode


class AuthCode(ErrorCode):
    EMAIL_TAKEN = "EMAIL_TAKEN", HTTPStatus.CONFLICT, "An account already uses this email."
    INVALID_EMAIL = "INVALID_EMAIL", HTTPStatus.BAD_REQUEST, "This is not an email address."
    BAD_CREDENTIALS = "BAD_CREDENTIALS", HTTPStatus.BAD_REQUEST, \
        "The email or password is incorrect."
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS", HTTPStatus.TOO_MANY_REQUESTS, \
        "Too many failed sign-in attempts for the account or the address; try again later."
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED", HTTPStatus.FORBIDDEN, \
        "The account has not verified its email yet: open the emailed link, or ask for a new one."
    EMAIL_ALREADY_VERIFIED = "EMAIL_ALREADY_VERIFIED", HTTPStatus.CONFLICT, \
        "The account's email is already verified."
    INVALID_LINK = "INVALID_LINK", HTTPStatus.BAD_REQUEST, \
        "The emailed link is unknown, already used or expired."
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS", HTTPStatus.TOO_MANY_REQUESTS, \
        "Too many sign-ups or emails asked for this address or from this client; try later."
    INVALID_SCOPE = "INVALID_SCOPE", HTTPStatus.BAD_REQUEST, "A scope that does not exist."
    INVALID_REDIRECT_URI = "INVALID_REDIRECT_URI", HTTPStatus.BAD_REQUEST, \
        "A redirect URI RFC 9700 refuses: not https, loopback http or a private-use scheme."
    INVALID_TOKEN = "INVALID_TOKEN", HTTPStatus.UNAUTHORIZED, \
        "The access token is invalid, expired or revoked."
