"""Billing mutations: marking a notification read, adding a block to a BASIC plan."""

from __future__ import annotations

import strawberry
from strawberry import relay
from tortoise.transactions import in_transaction

from api.graphql.billing.access import billing_manager, billing_viewer
from api.graphql.billing.types import Notification, no_notifications
from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from billing import accounts, notifications, pauses
from core import clock
from fleet import audit
from models.usage import Notification as NotificationModel


@strawberry.input
class MarkNotificationReadInput:
    notification_id: relay.GlobalID


@strawberry.type
class NotificationPayload:
    notification: Notification | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AddBlockInput:
    organization_id: relay.GlobalID


@strawberry.type(description="An organization's plan after a change.")
class PlanChange:
    plan: str = strawberry.field(description="FREE, BASIC or ENTERPRISE.")
    blocks: int
    device_limit: int
    data_operation_limit: int
    monthly_price_cents: int | None = strawberry.field(
        description="Null for ENTERPRISE, priced by its contract.")
    billed_from: str = strawberry.field(
        description="The first period (YYYY-MM) the change is billed in: the next one.")
    lifted_pause: bool = strawberry.field(
        description="Whether the organization's devices were paused, and now are not.")


@strawberry.type
class AddBlockPayload:
    plan_change: PlanChange | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BillingMutations:
    @strawberry.mutation(description="Mark a notification read, for you (owner and "
                                     "administrators).")
    async def mark_notification_read(self, info: Info, input: MarkNotificationReadInput
                                     ) -> NotificationPayload:
        async def work() -> NotificationPayload:
            missing = no_notifications("notificationId")
            notification = await NotificationModel.get_or_none(id=decode_id(
                input.notification_id, "Notification", "notificationId"))
            if notification is None:
                raise missing
            member = await billing_viewer(info.context.principal, notification.organization_id,
                                          missing)
            await notifications.mark_read(notification, member.principal.user.id, clock.now())
            return NotificationPayload(notification=Notification.from_model(notification))

        return await mutate(NotificationPayload, work)

    @strawberry.mutation(description="Add a block to a BASIC plan (owner and administrators): "
                                     "the limits grow at once, the block is billed from the "
                                     "next period without proration, and a pause is lifted "
                                     "at once.")
    async def add_block(self, info: Info, input: AddBlockInput) -> AddBlockPayload:
        async def work() -> AddBlockPayload:
            organization_id = decode_id(input.organization_id, "Organization", "organizationId")
            member = await billing_manager(info.context.principal, organization_id)
            async with in_transaction():
                done = await accounts.add_block(organization_id,
                                                changed_by_id=member.principal.user.id)
                account = done.account
                await audit.record(
                    member.principal, organization_id, "billing.add_block", account,
                    label=f"BASIC, {account.blocks} blocks",
                    details={"blocks": [account.blocks - 1, account.blocks],
                             "billedFrom": done.change.billed_from,
                             "liftedPause": done.lifted_pause})
            if done.lifted_pause:
                await pauses.changed(info.context.request.app.state.broker)
            subscription = accounts.subscription(account)
            return AddBlockPayload(plan_change=PlanChange(
                plan=account.plan, blocks=account.blocks,
                device_limit=subscription.limits.devices,
                data_operation_limit=subscription.limits.data_operations,
                monthly_price_cents=subscription.monthly_price_cents,
                billed_from=done.change.billed_from, lifted_pause=done.lifted_pause))

        return await mutate(AddBlockPayload, work)
