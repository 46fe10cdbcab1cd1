"""Billing types: a notification, as its reader sees it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.graphql.billing.access import billing_viewer
from api.graphql.context import Info
from api.graphql.nodes import visible_nodes
from api.graphql.pagination import created_cursor, paginate
from auth.principals import AnyPrincipal
from billing import notifications
from core.errors import DomainError, NotFound
from models.usage import Notification as NotificationModel


def no_notifications(field: str = "notifications") -> NotFound:
    return NotFound("No such notification: only the owner and administrators see them.",
                    field=field)


@strawberry.type(description="Something the owner and administrators are told about the "
                             "organization's usage (a warning, a pause, a resumption).")
class Notification(relay.Node):
    id: relay.NodeID[int]
    kind: str = strawberry.field(description="USAGE_WARNING, DEVICES_PAUSED or "
                                             "DEVICES_RESUMED.")
    title: str
    body: str
    created_at: datetime

    @classmethod
    def from_model(cls, notification: NotificationModel) -> Notification:
        return cls(id=notification.id, kind=notification.kind, title=notification.title,
                   body=notification.body, created_at=notification.created_at)

    @strawberry.field(description="Whether you have marked it read.")
    async def read(self, info: Info) -> bool:
        return await _reads(info).load(self.id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # see api.graphql.nodes
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Notification | None]:
        return await visible_nodes(info, node_ids, visible_notifications, cls.from_model)


def _reads(info: Info) -> DataLoader[int, bool]:
    """Whether the viewer read each notification: one query per request."""
    context = info.context
    if "notification_reads" not in context.loaders:
        user = context.user

        async def load(ids: Sequence[int]) -> list[bool]:
            read = await notifications.read_by(user.id, list(ids)) if user else set()
            return [i in read for i in ids]

        context.loaders["notification_reads"] = DataLoader(load_fn=load)
    loader: DataLoader[int, bool] = context.loaders["notification_reads"]
    return loader


async def visible_notifications(principal: AnyPrincipal, ids: Sequence[int]
                                ) -> dict[int, NotificationModel]:
    found = {}
    for notification in await NotificationModel.filter(id__in=list(ids)):
        try:
            await billing_viewer(principal, notification.organization_id, no_notifications())
        except DomainError:
            continue
        found[notification.id] = notification
    return found


async def organization_notifications(info: Info, organization_id: int, first: int,
                                     after: str | None, unread: bool | None
                                     ) -> relay.Connection[Notification]:
    member = await billing_viewer(info.context.principal, organization_id, no_notifications())
    query = notifications.of_organization(organization_id, member.principal.user.id, unread)
    return await paginate(query, order=("-created_at", "-id"), first=first, after=after,
                          to_node=Notification.from_model, parse=created_cursor)
