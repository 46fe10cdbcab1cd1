"""What an organization's owner and administrators are told about its usage: an in-app
`Notification` and the same words by email, written together in the transaction of what they
announce.

Emails go through the outbox, which is the fleet's: billing is handed an `Outbox` (its
`enqueue` writes a row in the current transaction, `wake` hurries the senders after commit) by
whoever composes the two (`api/`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from core import clock
from models.organizations import Membership, Role
from models.usage import Notification, NotificationRead

# The roles that see billing, and so are told about it.
TOLD = (Role.OWNER, Role.ADMINISTRATOR)


@dataclass(frozen=True, slots=True)
class Outbox:
    """Where emails go: `enqueue(to, subject, body)` inside the transaction, `wake()` after."""

    enqueue: Callable[[str, str, str], Awaitable[object]]
    wake: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # USAGE_WARNING, DEVICES_PAUSED, DEVICES_RESUMED
    key: str  # one notification per organization and key
    title: str
    body: str


async def tell(organization_id: int, message: Message, outbox: Outbox) -> Notification:
    """Write the notification and email it to the owner and administrators. Call it inside
    the transaction of what it announces, once that transaction has made sure it is the first
    to announce it, and `outbox.wake()` after commit."""
    notification = await Notification.create(
        organization_id=organization_id, kind=message.kind, key=message.key,
        title=message.title, body=message.body, created_at=clock.now())
    recipients = await Membership.filter(
        organization_id=organization_id, role__in=[role.value for role in TOLD]
    ).order_by("id").values_list("user__email", flat=True)
    for email in recipients:
        await outbox.enqueue(str(email), message.title, message.body)
    return notification


def of_organization(organization_id: int, user_id: int, unread: bool | None = None
                    ) -> QuerySet[Notification]:
    """The organization's notifications: all of them (`unread` None), only those the user has
    not read (True), or only those they have (False)."""
    query = Notification.filter(organization_id=organization_id)
    if unread is None:
        return query
    read = Q(id__in=Subquery(NotificationRead.filter(user_id=user_id).values("notification_id")))
    return query.filter(~read if unread else read)


async def read_by(user_id: int, notification_ids: list[int]) -> set[int]:
    """Which of the notifications the user has read."""
    if not notification_ids:
        return set()
    read: list[Any] = await NotificationRead.filter(
        user_id=user_id, notification_id__in=notification_ids
    ).values_list("notification_id", flat=True)
    return {int(i) for i in read}


async def mark_read(notification: Notification, user_id: int, now: datetime) -> None:
    """The user has read the notification (again: nothing changes)."""
    await NotificationRead.bulk_create(
        [NotificationRead(notification_id=notification.id, user_id=user_id, read_at=now)],
        ignore_conflicts=True)
