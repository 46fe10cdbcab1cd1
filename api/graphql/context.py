"""Per-request GraphQL context: the principal, the request ID and the request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as _Info

from auth.principals import AnyPrincipal, UserPrincipal, require_user
from models.accounts import User


@dataclass
class Context:
    request: Request | WebSocket
    response: Any
    principal: AnyPrincipal
    request_id: str
    # The bearer token the principal was authenticated with: the `Authorization` header of an
    # HTTP request, or the one a WebSocket offered when it connected (`view.offered_tokens`).
    # A live stream and every operation on a WebSocket authenticate it again.
    token: str | None = None
    connection_params: dict[str, Any] | None = None
    loaders: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> User | None:
        return self.principal.user if isinstance(self.principal, UserPrincipal) else None

    def require_user(self) -> UserPrincipal:
        return require_user(self.principal)


Info = _Info[Context, None]
