"""Recording administrative actions, inside the caller's transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit.models import AuditEntry
from app.kit.context import request_id
from app.kit.pagination import Page, paginate
from app.kit.tenancy import scoped

__all__ = ["record", "request_id"]


def _plain(value: Any) -> Any:
    """`value` as JSON-ready data (ids, dates and enums become strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


async def record(
    *,
    viewer: Viewer,
    action: str,
    target_type: str,
    target_id: object | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditEntry:
    """Append an audit entry for `viewer`'s action; commits with the caller's transaction."""
    return await AuditEntry.create(
        organization_id=viewer.organization_id,
        actor=viewer.subject,
        actor_role=viewer.role.value,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_plain(before),
        after=_plain(after),
        reason=reason,
        request_id=request_id.get(),
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list."""

    action: str | None = None
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_entries(
    viewer: Viewer, *, where: AuditFilter, first: int | None, after: str | None
) -> Page[AuditEntry]:
    """A page of the organization's audit entries, oldest first (ADMIN)."""
    viewer.require(Role.ADMIN)
    query = scoped(AuditEntry, viewer)
    if where.action:
        query = query.filter(action__startswith=where.action)
    if where.actor:
        query = query.filter(actor=where.actor)
    if where.target_type:
        query = query.filter(target_type=where.target_type)
    if where.target_id:
        query = query.filter(target_id=where.target_id)
    if where.since:
        query = query.filter(created_at__gte=where.since)
    if where.until:
        query = query.filter(created_at__lt=where.until)
    return await paginate(query, first=first, after=after)
