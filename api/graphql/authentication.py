"""Authentication of GraphQL operations sent over a WebSocket.

HTTP requests are authenticated one by one by `api.authentication.BearerAuthentication`. A
graphql-transport-ws socket authenticates once, in `connection_init`, and then carries any
number of operations, for as long as it stays open: each one authenticates the socket's token
again, so a token revoked or expired meanwhile gets no new data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from auth import tokens
from auth.errors import AuthCode
from core.errors import Unauthenticated


class WebSocketAuthentication(SchemaExtension):
    """Authenticate the socket's bearer token again before every operation over a WebSocket
    executes (queries and mutations as well as subscriptions, whose streams also check it
    periodically), with fresh DataLoaders; refuse the operation with `INVALID_TOKEN` once it is
    no longer live.
    Register it first, so that no other extension has begun the execution it refuses."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context.request, WebSocket) and context.token is not None:
            principal = await tokens.authenticate(context.token)
            if principal is None:
                raise Unauthenticated(
                    "The access token is invalid, expired or revoked.", code=AuthCode.INVALID_TOKEN
                )
            context.principal = principal
            # The socket's context outlives each operation: so must not what was loaded for
            # an earlier one (access may have changed since).
            context.loaders.clear()
        yield
