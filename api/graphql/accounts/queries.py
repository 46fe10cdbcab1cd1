"""Account queries: `me`."""

from __future__ import annotations

import strawberry

from api.graphql.accounts.types import User
from api.graphql.context import Info


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user; null for anonymous callers and clients.")
    def me(self, info: Info) -> User | None:
        user = info.context.user
        return User.from_model(user) if user is not None else None
