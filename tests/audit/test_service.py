"""The audit log records who did what, with the state before and after and the request id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.db import transaction
from tests.support.factories import Tenant


async def test_record_keeps_actor_target_states_and_request_id(db: str, tenant: Tenant) -> None:
    target = uuid.uuid4()
    token = audit.request_id.set("req-123")
    try:
        async with transaction():
            await audit.record(
                viewer=tenant.admin,
                action="template.install",
                target_type="template",
                target_id=target,
                before={"version": 1},
                after={"version": 2, "at": datetime(2026, 1, 1, tzinfo=UTC)},
                reason="new stage",
            )
    finally:
        audit.request_id.reset(token)
    entry = await AuditEntry.get(organization_id=tenant.id, target_id=str(target))
    assert entry.actor == tenant.admin.subject and entry.actor_role == "ADMIN"
    assert entry.before == {"version": 1}
    assert entry.after == {"version": 2, "at": "2026-01-01 00:00:00+00:00"}
    assert entry.request_id == "req-123" and entry.reason == "new stage"


async def test_an_entry_rolls_back_with_its_action(db: str, tenant: Tenant) -> None:
    target = uuid.uuid4()
    try:
        async with transaction():
            await audit.record(
                viewer=tenant.admin, action="x.y", target_type="thing", target_id=target
            )
            raise RuntimeError("the action failed")
    except RuntimeError:
        pass
    assert not await AuditEntry.filter(target_id=str(target)).exists()
