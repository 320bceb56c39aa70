"""Notifications (customers' and operators' inboxes) and CSM follow-up tasks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from app.accounts.models import Operator, Role
from app.accounts.viewer import Viewer
from app.errors import NotFound, ValidationFailed
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import scoped
from app.notifications.models import CsmTask, CsmTaskStatus, Notification

OPERATORS = "operators"


def _mine(viewer: Viewer) -> dict[str, object]:
    if viewer.role is Role.CUSTOMER:
        return {"customer_id": viewer.customer_id}
    return {"operator": viewer.subject.lower()}


async def notify(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    to: str,
    title: str,
    body: str,
    source: str,
    extra: dict[str, object] | None = None,
) -> list[Notification]:
    """Store notifications for a customer, every operator, or one operator (by email), and
    announce them on the customer's stream for the `notifications` subscription."""
    if to == "customer":
        rows = [Notification(customer_id=customer_id)]
    elif to == OPERATORS:
        emails = await Operator.filter(organization_id=organization_id).values_list(
            "email", flat=True
        )
        rows = [Notification(operator=str(e).lower()) for e in emails]
    elif "@" in to:
        rows = [Notification(operator=to.strip().lower())]
    else:
        raise ValidationFailed(f"Cannot notify {to!r}: use customer, operators or an email.")
    for row in rows:
        row.id = uuid.uuid4()
        row.organization_id = organization_id  # type: ignore[attr-defined]
        row.about_customer_id = customer_id
        row.title, row.body, row.source = title, body, source
    await Notification.bulk_create(rows)
    events = [
        (
            "notification.created",
            {
                "notificationId": str(r.id),
                "customerId": str(r.customer_id) if r.customer_id else None,
                "operator": r.operator,
                "title": title,
                "body": body,
                **(extra or {}),
            },
        )
        for r in rows
    ]
    await outbox.record(
        organization_id=organization_id, customer_id=customer_id, events=events, actor=source
    )
    return rows


async def list_notifications(
    viewer: Viewer, *, unread_only: bool, limit: int = 100
) -> list[Notification]:
    """The viewer's own notifications, newest first."""
    query = scoped(Notification, viewer).filter(**_mine(viewer))
    if unread_only:
        query = query.filter(read_at__isnull=True)
    return await query.order_by("-created_at").limit(min(max(limit, 1), 100))


async def mark_read(viewer: Viewer, ids: Sequence[str] | None) -> int:
    """Mark some (or all) of the viewer's notifications read; return how many changed."""
    query = scoped(Notification, viewer).filter(**_mine(viewer), read_at__isnull=True)
    if ids is not None:
        query = query.filter(id__in=[parse_id(i, what="notification") for i in ids])
    return int(await query.update(read_at=utcnow()))


async def create_csm_task(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    title: str,
    description: str,
    assignee: str | None,
    due_at: datetime | None,
    source: str,
) -> CsmTask:
    """A follow-up for the team."""
    return await CsmTask.create(
        organization_id=organization_id,
        customer_id=customer_id,
        title=title,
        description=description,
        assignee=assignee.strip().lower() if assignee else None,
        due_at=due_at,
        source=source,
    )


async def list_csm_tasks(
    viewer: Viewer, *, assignee: str | None, status: CsmTaskStatus | None
) -> list[CsmTask]:
    """Follow-up tasks, open ones by due date first (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    query = scoped(CsmTask, viewer)
    if assignee is not None:
        query = query.filter(assignee=assignee.strip().lower())
    if status is not None:
        query = query.filter(status=status)
    return await query.order_by("status", "due_at", "created_at").limit(500)


async def complete_csm_task(viewer: Viewer, task_id: str) -> CsmTask:
    """Mark a follow-up done (operators); completing twice keeps the first completion."""
    viewer.require(Role.ADMIN, Role.CSM)
    tid = parse_id(task_id, what="CSM task")
    row = await scoped(CsmTask, viewer).select_for_update().get_or_none(id=tid)
    if row is None:
        raise NotFound(f"No CSM task with id {tid}.", task=str(tid))
    if row.status is not CsmTaskStatus.DONE:
        row.status, row.completed_at, row.completed_by = (
            CsmTaskStatus.DONE,
            utcnow(),
            viewer.subject,
        )
        await row.save(update_fields=["status", "completed_at", "completed_by"])
    return row
