"""Organization queries: an organization by slug."""

from __future__ import annotations

import strawberry

from api.graphql.context import Info
from api.graphql.organizations.types import Organization
from core.errors import NotFound, PermissionDenied
from fleet import organizations


@strawberry.type
class OrganizationQueries:
    @strawberry.field(description="An organization you belong to, by slug.")
    async def organization(self, info: Info, slug: str) -> Organization | None:
        try:
            found = await organizations.organization_by_slug(info.context.principal, slug)
        except (NotFound, PermissionDenied):
            return None
        return Organization.from_model(found)
