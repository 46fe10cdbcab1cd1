"""The usage of an organization or a product: the resolvers behind `organization.usage` and
`product.usage`.

Only the owner and administrators see usage (`api.graphql.billing.access.billing_viewer`);
anyone else, team members with other roles included, gets `NotFound`, as if there were nothing
to see.
"""

from __future__ import annotations

from datetime import datetime

from api.graphql.billing.access import billing_viewer
from api.graphql.usage.types import OrganizationUsage, ProductUsage
from auth.principals import AnyPrincipal
from billing import accounts, usage
from core.errors import NotFound


def _no_usage() -> NotFound:
    return NotFound("No usage to see here: only the owner and administrators see it.",
                    field="usage")


async def organization_usage(principal: AnyPrincipal, organization_id: int,
                             created_at: datetime, period: str | None) -> OrganizationUsage:
    await billing_viewer(principal, organization_id, _no_usage())
    scope = await usage.view_scope(organization_id, period, since=created_at)
    subscription = await accounts.plan_at(organization_id, scope.period.end)
    return OrganizationUsage(
        scope=scope, subscription=subscription, period=str(scope.period),
        start=scope.period.start, end=scope.period.end, plan=subscription.plan,
        blocks=subscription.blocks)


async def product_usage(principal: AnyPrincipal, organization_id: int, product_id: int,
                        created_at: datetime, period: str | None) -> ProductUsage:
    await billing_viewer(principal, organization_id, _no_usage())
    scope = await usage.view_scope(organization_id, period, since=created_at,
                                   product_id=product_id)
    return ProductUsage(scope=scope,
                        subscription=await accounts.plan_at(organization_id, scope.period.end),
                        period=str(scope.period), start=scope.period.start,
                        end=scope.period.end)
