"""Each organization's plan as stored (`models.usage.BillingAccount`): an organization without
a stored account is on `plans.DEFAULT_PLAN`, one block. Changing it (`set_plan`, the
operator's; `add_block`, an administrator's on BASIC) records a `PlanChange`, so the plan in
force at any moment is known (`plan_at`).

A change reads the account locked (`SELECT … FOR UPDATE`) and, to any plan but FREE, clears the
pause in the same update: a pause the scheduler commits meanwhile is either seen and lifted
(its `UsagePause` closed) or, waiting for the lock, finds the plan no longer FREE."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from billing.errors import BillingCode
from billing.periods import Period
from billing.plans import DEFAULT_PLAN, Contract, Limits, PlanKind, Subscription
from core import clock
from core.errors import Conflict
from models.usage import BillingAccount, PlanChange, UsagePause


def subscription(account: BillingAccount | PlanChange | None) -> Subscription:
    """The plan a stored account or plan change (None: none stored) puts its organization
    on."""
    if account is None:
        return Subscription(DEFAULT_PLAN)
    plan = PlanKind(account.plan)
    if plan is not PlanKind.ENTERPRISE:
        return Subscription(plan, blocks=account.blocks)
    assert account.contract_devices is not None and account.contract_data_operations is not None
    return Subscription(plan, contract=Contract(
        Limits(account.contract_devices, account.contract_data_operations),
        manufacturing_grace=bool(account.manufacturing_grace),
    ))


async def subscription_of(organization_id: int) -> Subscription:
    return subscription(await BillingAccount.get_or_none(organization_id=organization_id))


async def subscriptions_of(organization_ids: Iterable[int]) -> dict[int, Subscription]:
    """`subscription_of` for many organizations, in one query."""
    wanted = set(organization_ids)
    stored = {a.organization_id: a
              for a in await BillingAccount.filter(organization_id__in=list(wanted))}
    return {org: subscription(stored.get(org)) for org in wanted}


async def plan_at(organization_id: int, moment: datetime) -> Subscription:
    """The plan in force just before `moment`: the latest `PlanChange` before it (none: FREE,
    one block). A period is seen against `plan_at(…, period.end)`."""
    return subscription(await PlanChange.filter(
        organization_id=organization_id, changed_at__lt=moment
    ).order_by("-changed_at", "-id").first())


def billed_from(changed_at: datetime) -> Period:
    """The first period a plan change is billed in: the next one for a change made within a
    period (no proration), the period itself for a change at its very first instant."""
    period = Period.of(changed_at)
    return period if changed_at == period.start else period.next()


@dataclass(frozen=True, slots=True)
class Change:
    """What a plan change did: the account as stored now, the change recorded, and whether it
    lifted a pause (the caller then calls `billing.pauses.changed` after commit)."""

    account: BillingAccount
    change: PlanChange
    lifted_pause: bool


async def set_plan(organization_id: int, subscription: Subscription, *,
                   changed_by_id: int | None = None) -> Change:
    """Put the organization on `subscription` from now on (its limits at once, billed from
    `billed_from`). Any plan but FREE lifts a pause, which only FREE has. Runs in the caller's
    transaction if there is one."""
    now = clock.now()
    contract = subscription.contract
    values = {
        "plan": subscription.plan.value, "blocks": subscription.blocks,
        "contract_devices": contract.limits.devices if contract else None,
        "contract_data_operations": contract.limits.data_operations if contract else None,
        "manufacturing_grace": subscription.manufacturing_grace, "updated_at": now,
    }
    async with in_transaction():
        await BillingAccount.get_or_create(organization_id=organization_id, defaults=values)
        account = await BillingAccount.select_for_update().get(organization_id=organization_id)
        lifted = False
        if subscription.plan is not PlanKind.FREE:
            lifted = await _lift(account, now)
            values |= {"paused_from": None, "paused_until": None}
        await BillingAccount.filter(id=account.id).update(**values)
        await account.refresh_from_db()
        change = await _record(account, now, changed_by_id)
    return Change(account, change, lifted)


async def add_block(organization_id: int, *, changed_by_id: int | None = None) -> Change:
    """One more block for a BASIC organization: its limits grow at once, it is billed from
    `billed_from`, without proration, and a pause is lifted at once. Anything but BASIC is
    `Conflict` (BLOCKS_ON_BASIC_ONLY). Runs in the caller's transaction if there is one."""
    now = clock.now()
    async with in_transaction():
        account = await BillingAccount.select_for_update().get_or_none(
            organization_id=organization_id)
        if account is None or account.plan != PlanKind.BASIC.value:
            plan = subscription(account).plan
            raise Conflict(
                f"Blocks are added on the BASIC plan only; this organization is on {plan}. "
                "Changing plans is done by the operator.",
                code=BillingCode.BLOCKS_ON_BASIC_ONLY)
        lifted = await _lift(account, now)
        await BillingAccount.filter(id=account.id).update(
            blocks=F("blocks") + 1, paused_from=None, paused_until=None, updated_at=now)
        await account.refresh_from_db()
        change = await _record(account, now, changed_by_id)
    return Change(account, change, lifted)


async def _lift(account: BillingAccount, now: datetime) -> bool:
    """Whether the (locked) account is paused; if so, its `UsagePause` is closed as lifted now
    (the caller clears the account's pause in its update)."""
    if account.paused_from is None:
        return False
    await UsagePause.filter(
        organization_id=account.organization_id, paused_from=account.paused_from,
        lifted_at=None, paused_until__gt=now,
    ).update(lifted_at=now)
    return True


async def _record(account: BillingAccount, now: datetime, changed_by_id: int | None
                  ) -> PlanChange:
    return await PlanChange.create(
        organization_id=account.organization_id, plan=account.plan, blocks=account.blocks,
        contract_devices=account.contract_devices,
        contract_data_operations=account.contract_data_operations,
        manufacturing_grace=account.manufacturing_grace,
        changed_at=now, billed_from=str(billed_from(now)), changed_by_id=changed_by_id)
