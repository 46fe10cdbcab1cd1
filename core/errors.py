"""Domain errors. Services raise them; transports translate them (userErrors, HTTP statuses).

Each kind of error carries the HTTP status a transport answers it with, and every error carries
a stable `code` from a catalog: one `ErrorCode` enum per domain (`CoreCode` here, `AuthCode` in
`auth.errors`, `FleetCode` in `fleet.errors`, `ApiCode` in `api.errors`). A code belongs to one
kind: raising a code that is in no catalog, or with a kind of another status, fails at once.
`docs/error-codes.md` lists them all.
"""

from __future__ import annotations

from enum import StrEnum
from http import HTTPStatus
from typing import ClassVar


class ErrorCode(StrEnum):
    """A catalog of codes. Each member is `NAME = "NAME", status, "what it means"`: the code
    clients see, the HTTP status of the kind it is raised with, and a one-line description."""

    http_status: HTTPStatus
    description: str

    def __new__(cls, value: str, http_status: HTTPStatus, description: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.http_status = http_status
        member.description = description
        return member


class CoreCode(ErrorCode):
    """The kinds' own codes, and the input rules every domain shares."""

    NOT_FOUND = "NOT_FOUND", HTTPStatus.NOT_FOUND, \
        "No such thing, or the caller may not know it exists."
    FORBIDDEN = "FORBIDDEN", HTTPStatus.FORBIDDEN, "The caller's role does not allow this."
    UNAUTHENTICATED = "UNAUTHENTICATED", HTTPStatus.UNAUTHORIZED, "An access token is required."
    CONFLICT = "CONFLICT", HTTPStatus.CONFLICT, \
        "The request contradicts the current state of the thing it changes."
    INVALID = "INVALID", HTTPStatus.BAD_REQUEST, "The input is not valid."
    LIMIT_REACHED = "LIMIT_REACHED", HTTPStatus.TOO_MANY_REQUESTS, \
        "A limit on how many there may be is reached."
    UNAVAILABLE = "UNAVAILABLE", HTTPStatus.SERVICE_UNAVAILABLE, \
        "It could not be done now (storage failed); try again."
    TIMED_OUT = "TIMED_OUT", HTTPStatus.GATEWAY_TIMEOUT, "The device did not answer in time."
    REQUIRED = "REQUIRED", HTTPStatus.BAD_REQUEST, "A required value is missing or blank."
    TOO_LONG = "TOO_LONG", HTTPStatus.BAD_REQUEST, "A value is longer than its limit."
    TOO_SHORT = "TOO_SHORT", HTTPStatus.BAD_REQUEST, "A value is shorter than its minimum."
    TOO_MANY = "TOO_MANY", HTTPStatus.BAD_REQUEST, "A list has more items than its limit."
    EMPTY = "EMPTY", HTTPStatus.BAD_REQUEST, "A list that needs items has none."
    OUT_OF_RANGE = "OUT_OF_RANGE", HTTPStatus.BAD_REQUEST, "A number is outside its range."
    NOT_ALLOWED = "NOT_ALLOWED", HTTPStatus.BAD_REQUEST, \
        "A value was given that does not apply to this kind of thing."
    INVALID_SLUG = "INVALID_SLUG", HTTPStatus.BAD_REQUEST, \
        "A slug is not 3 to 63 lowercase letters, digits and single hyphens."
    SLUG_TAKEN = "SLUG_TAKEN", HTTPStatus.CONFLICT, "Another organization or product has the slug."
    UNSAFE_CHARACTERS = "UNSAFE_CHARACTERS", HTTPStatus.BAD_REQUEST, \
        "A name contains a control character or a bidirectional formatting character."


class DomainError(Exception):
    """An expected failure with a stable machine-readable `code` and a message for people.
    Raise one of its kinds, not this class."""

    code: ErrorCode  # the kind's own; a raise may name a more precise one
    http_status: ClassVar[HTTPStatus]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "code" in cls.__dict__:
            _check(cls, cls.code)

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            _check(type(self), code)
            self.code = code
        elif not hasattr(self, "code"):
            raise TypeError(f"{type(self).__name__} has no code of its own: name one.")

    @property
    def extensions(self) -> dict[str, str]:
        """Read by graphql-core when the error surfaces in a GraphQL response."""
        return {"code": self.code}


def _check(kind: type[DomainError], code: object) -> None:
    if not isinstance(code, ErrorCode):
        raise TypeError(f"{code!r} is in no error catalog; add it to a domain's ErrorCode.")
    if code.http_status != kind.http_status:
        raise TypeError(f"{code} is a {code.http_status.value} code; {kind.__name__} answers "
                        f"{kind.http_status.value}.")


class NotFound(DomainError):
    http_status = HTTPStatus.NOT_FOUND
    code: ErrorCode = CoreCode.NOT_FOUND


class PermissionDenied(DomainError):
    http_status = HTTPStatus.FORBIDDEN
    code: ErrorCode = CoreCode.FORBIDDEN


class Unauthenticated(DomainError):
    http_status = HTTPStatus.UNAUTHORIZED
    code: ErrorCode = CoreCode.UNAUTHENTICATED


class Conflict(DomainError):
    http_status = HTTPStatus.CONFLICT
    code: ErrorCode = CoreCode.CONFLICT


class InvalidInput(DomainError):
    http_status = HTTPStatus.BAD_REQUEST
    code: ErrorCode = CoreCode.INVALID


class LimitReached(DomainError):
    http_status = HTTPStatus.TOO_MANY_REQUESTS
    code: ErrorCode = CoreCode.LIMIT_REACHED


class Unavailable(DomainError):
    """It could not be done now (a store or the broker failed); trying again may work."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    code: ErrorCode = CoreCode.UNAVAILABLE


class TimedOut(DomainError):
    """Someone we asked (a device) did not answer in time."""

    http_status = HTTPStatus.GATEWAY_TIMEOUT
    code: ErrorCode = CoreCode.TIMED_OUT


class UpstreamFailed(DomainError):
    """Someone we asked (a device) answered with a failure; the raise names the code."""

    http_status = HTTPStatus.BAD_GATEWAY
