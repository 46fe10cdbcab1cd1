"""Product queries: a product by numeric ID or slug."""

from __future__ import annotations

import strawberry

from api.graphql.context import Info
from api.graphql.products.types import Product
from core.errors import NotFound
from fleet import products


@strawberry.type
class ProductQueries:
    @strawberry.field(description="A product of your organization, by numeric ID or slug.")
    async def product(self, info: Info, id_or_slug: str) -> Product | None:
        try:
            return Product.from_model(
                await products.get_product(info.context.principal, id_or_slug))
        except NotFound:
            return None
