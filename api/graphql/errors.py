"""userErrors for expected failures; masking for everything unexpected."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from api.errors import ApiCode
from core.errors import DomainError

log = logging.getLogger("devicecloud.graphql")

P = TypeVar("P")


@strawberry.type(description="An expected failure of a mutation, with the input field it concerns.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, if any.")
    message: str
    code: str = strawberry.field(description="Stable machine-readable code, e.g. EMAIL_TAKEN.")

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(field=error.field, message=error.message, code=error.code)


def client_error(message: str, code: ApiCode) -> GraphQLError:
    """A GraphQL error the caller caused (bad arguments, limits): shown as is, never masked."""
    return GraphQLError(message, extensions={"code": code})


def is_unexpected(error: GraphQLError) -> bool:
    """Validation errors and errors we raised on purpose carry no foreign original error."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | DomainError)


class MaskUnexpectedErrors(MaskErrors):
    """Replace unexpected errors with a generic message that names the request ID to report."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = self.execution_context.context.request_id
        return GraphQLError(
            message=f"Internal server error (request ID {request_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": ApiCode.INTERNAL_SERVER_ERROR, "requestId": request_id},
        )


def log_errors(errors: list[GraphQLError]) -> None:
    for error in errors:
        original = error.original_error
        if original is not None and is_unexpected(error):
            log.error(
                "unexpected error in GraphQL execution",
                exc_info=(type(original), original, original.__traceback__),
                extra={"path": error.path},
            )


async def mutate(payload: Callable[..., P], action: Callable[[], Awaitable[P]]) -> P:
    """Run a mutation's work, which builds its payload; a domain error fills the payload's
    userErrors instead."""
    try:
        return await action()
    except DomainError as error:
        return payload(user_errors=[UserError.from_domain(error)])
