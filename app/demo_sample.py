"""The demo's sample customer: chosen once, marked, and the same after every restart."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tortoise.expressions import Subquery

from app.customers.models import Customer
from app.kit.clock import utcnow
from app.onboarding.models import Workflow, WorkflowTask
from app.onboarding.states import TaskStatus, WorkflowStatus

SAMPLE_EXTERNAL_ID = "demo-sample"
"""The external id that marks the sample customer among the demo's customers."""


async def _pick(organization_id: uuid.UUID) -> Workflow | None:
    """A good sample: midway, active lately, nothing failed, with a task to do now."""
    tasks = WorkflowTask.filter(organization_id=organization_id)
    failed = tasks.filter(status=TaskStatus.FAILED).values_list("workflow_id", flat=True)
    available = tasks.filter(status=TaskStatus.AVAILABLE).values_list("workflow_id", flat=True)
    active = Workflow.filter(organization_id=organization_id, status=WorkflowStatus.ACTIVE)
    open_now = active.filter(id__in=Subquery(available))
    in_flight = (
        open_now.filter(
            points__gte=50, points__lt=400, last_activity_at__gte=utcnow() - timedelta(days=3)
        )
        .exclude(id__in=Subquery(failed))
        .order_by("-last_activity_at")
    )
    return (
        await in_flight.first()
        or await open_now.order_by("-last_activity_at").first()
        or await active.first()
        or await Workflow.filter(organization_id=organization_id).first()
    )


async def sample_customer(organization_id: uuid.UUID) -> Customer | None:
    """The marked sample customer; the first call on a demo picks one and marks it."""
    marked = await Customer.get_or_none(
        organization_id=organization_id, external_id=SAMPLE_EXTERNAL_ID
    )
    if marked is not None:
        return marked
    workflow = await _pick(organization_id)
    if workflow is None:
        return None
    customer = await Customer.get(id=workflow.customer_id)  # type: ignore[attr-defined]
    customer.external_id = SAMPLE_EXTERNAL_ID
    await customer.save(update_fields=["external_id"])
    return customer


async def task_to_do(customer_id: uuid.UUID) -> str | None:
    """The key of the customer's first task that can be completed now (AVAILABLE first)."""
    for status in (TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS):
        row = (
            await WorkflowTask.filter(workflow__customer_id=customer_id, status=status)
            .order_by("position")
            .first()
        )
        if row is not None:
            return row.key
    return None
