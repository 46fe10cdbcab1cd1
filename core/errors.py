"""Domain errors. Services raise them; transports translate them (userErrors, HTTP statuses)."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure with a stable machine-readable `code` and a message for people."""

    code = "ERROR"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    @property
    def extensions(self) -> dict[str, str]:
        """Read by graphql-core when the error surfaces in a GraphQL response."""
        return {"code": self.code}


class NotFound(DomainError):
    code = "NOT_FOUND"


class PermissionDenied(DomainError):
    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Conflict(DomainError):
    code = "CONFLICT"


class InvalidInput(DomainError):
    code = "INVALID"


class LimitReached(DomainError):
    code = "LIMIT_REACHED"
