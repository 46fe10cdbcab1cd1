"""The audit log: one entry per change inside an organization."""

from __future__ import annotations

from typing import Any

from auth.principals import UserPrincipal
from core import clock
from core.context import client_address
from models.organizations import AuditEntry


async def record(
    actor: UserPrincipal,
    organization_id: int,
    action: str,
    target: Any,
    *,
    label: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write an entry. Call it inside the transaction of the change it describes."""
    return await AuditEntry.create(
        organization_id=organization_id,
        actor=actor.user,
        actor_label=actor.user.email,
        action=action,
        target_type=type(target).__name__,
        target_id=str(target.pk),
        target_label=label[:300],
        details=details or {},
        ip_address=client_address.get(),
        created_at=clock.now(),
    )
