"""Recording administrative actions, inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from app.accounts.viewer import Viewer
from app.audit.models import AuditEntry
from app.kit.context import request_id

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
