"""Each organization's plan as stored (`models.usage.BillingAccount`): an organization without
a stored account is on `plans.DEFAULT_PLAN`, one block."""

from __future__ import annotations

from collections.abc import Iterable

from billing.plans import DEFAULT_PLAN, Contract, Limits, PlanKind, Subscription
from models.usage import BillingAccount


def subscription(account: BillingAccount | None) -> Subscription:
    """The plan a stored account (None: none stored) puts its organization on."""
    if account is None:
        return Subscription(DEFAULT_PLAN)
    plan = PlanKind(account.plan)
    if plan is not PlanKind.ENTERPRISE:
        return Subscription(plan, blocks=account.blocks)
    assert account.contract_devices is not None and account.contract_data_operations is not None
    return Subscription(plan, contract=Contract(
        Limits(account.contract_devices, account.contract_data_operations),
        manufacturing_grace=account.manufacturing_grace,
    ))


async def subscription_of(organization_id: int) -> Subscription:
    return subscription(await BillingAccount.get_or_none(organization_id=organization_id))


async def subscriptions_of(organization_ids: Iterable[int]) -> dict[int, Subscription]:
    """`subscription_of` for many organizations, in one query."""
    wanted = set(organization_ids)
    stored = {a.organization_id: a
              for a in await BillingAccount.filter(organization_id__in=list(wanted))}
    return {org: subscription(stored.get(org)) for org in wanted}
