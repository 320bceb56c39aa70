"""Onboarding use cases: start a workflow, move tasks, override stages, change settings.

Callers open the transaction; every function here runs inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.errors import NotFound, ValidationFailed, WorkflowPaused
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import Tenant, scoped
from app.onboarding import engine
from app.onboarding.engine import Outcome
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)
from app.onboarding.rules import validate_reason
from app.onboarding.snapshot import (
    STAGE_FIELDS,
    TASK_FIELDS,
    WORKFLOW_FIELDS,
    Loaded,
    build_state,
    copy_back,
    new_rows,
)
from app.onboarding.states import StageAction, TaskAction, TaskStatus
from app.onboarding.templates import definition_of


@dataclass
class Change:
    """The result of one engine step, with the rows the API needs to answer."""

    loaded: Loaded
    outcome: Outcome

    @property
    def workflow(self) -> Workflow:
        return self.loaded.workflow

    def tasks(self, keys: Sequence[str]) -> list[WorkflowTask]:
        return [self.loaded.tasks[k] for k in keys]

    def stages(self, keys: Sequence[str]) -> list[WorkflowStage]:
        return [self.loaded.stages[k] for k in keys]


def figures(loaded: Loaded) -> dict[str, Any]:
    """The fresh progress figures every workflow event carries."""
    state = loaded.state
    current = state.current_stage
    return {
        "workflowId": str(loaded.workflow.id),
        "status": state.status.value,
        "points": state.points,
        "progress": state.progress,
        "minutesRemaining": state.minutes_remaining,
        "currentStage": current.key if current else None,
    }


async def start_workflow(
    *, customer: Customer, template: WorkflowTemplate, now: datetime
) -> tuple[Workflow, list[tuple[str, dict[str, Any]]]]:
    """Create a customer's workflow from a template version; return it and its events."""
    definition = definition_of(template)
    out = Outcome()
    state = engine.initial_state(definition, signed_up_at=customer.signed_up_at, now=now)
    workflow, stage_rows, task_rows = new_rows(
        state,
        organization_id=customer.organization_id,  # type: ignore[attr-defined]
        customer_id=customer.id,
        template_id=template.id,
        template=definition,
        now=now,
    )
    await workflow.save(force_create=True)
    await WorkflowStage.bulk_create(stage_rows)
    await WorkflowTask.bulk_create(task_rows)
    loaded = build_state(workflow, stage_rows, task_rows, customer.signed_up_at)
    out.emit("workflow.started", template=template.key, version=template.version)
    events = [(kind, {**payload, "workflow": figures(loaded)}) for kind, payload in out.events]
    return workflow, events


async def load(tenant: Tenant, customer_id: uuid.UUID, *, lock: bool) -> Loaded:
    """A customer's workflow with stages and tasks; `lock` holds its row until commit."""
    query = scoped(Workflow, tenant).filter(customer_id=customer_id)
    if lock:
        query = query.select_for_update()
    workflow = await query.first()
    if workflow is None:
        raise NotFound(f"Customer {customer_id} has no workflow.", customer=str(customer_id))
    customer = await scoped(Customer, tenant).get(id=customer_id)
    stages = await scoped(WorkflowStage, tenant).filter(workflow_id=workflow.id)
    tasks = await scoped(WorkflowTask, tenant).filter(workflow_id=workflow.id)
    return build_state(workflow, stages, tasks, customer.signed_up_at)


async def _persist(viewer: Viewer, loaded: Loaded, out: Outcome, now: datetime) -> None:
    tasks, stages = copy_back(loaded, out.changed_tasks, out.changed_stages, now)
    wf = loaded.workflow
    await wf.save(update_fields=list(WORKFLOW_FIELDS))
    if tasks:
        await WorkflowTask.bulk_update(tasks, fields=[*TASK_FIELDS, "updated_at"])
    if stages:
        await WorkflowStage.bulk_update(stages, fields=list(STAGE_FIELDS))
    snapshot = figures(loaded)
    await outbox.record(
        organization_id=viewer.organization_id,
        customer_id=wf.customer_id,  # type: ignore[attr-defined]
        events=[(kind, {**payload, "workflow": snapshot}) for kind, payload in out.events]
        + [("celebration", {**vars(c), "workflow": snapshot}) for c in out.celebrations],
        actor=viewer.label,
    )


async def _customer_of_task(viewer: Viewer, task_id: str) -> tuple[uuid.UUID, str]:
    row = (
        await scoped(WorkflowTask, viewer)
        .filter(id=parse_id(task_id, what="task"))
        .values("key", "workflow__customer_id")
    )
    if not row:
        raise NotFound(f"No task with id {task_id}.", task=task_id)
    customer_id: uuid.UUID = row[0]["workflow__customer_id"]
    if viewer.role is Role.CUSTOMER and customer_id != viewer.customer_id:
        raise NotFound(f"No task with id {task_id}.", task=task_id)
    return customer_id, str(row[0]["key"])


async def update_task(
    viewer: Viewer,
    *,
    action: TaskAction,
    task_id: str | None = None,
    task_key: str | None = None,
    customer_id: str | None = None,
    progress: int | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> tuple[Change, WorkflowTask]:
    """Move one task; concurrent calls on the same workflow apply one after the other."""
    if task_id:
        cid, key = await _customer_of_task(viewer, task_id)
    elif task_key:
        cid, key = viewer.customer_scope(customer_id), task_key
    else:
        raise ValidationFailed("Pass `taskId`, or `taskKey` (with `customerId` for operators).")
    now = now or utcnow()
    loaded = await load(viewer, cid, lock=True)
    if key not in loaded.tasks:
        raise NotFound(f"No task {key!r} in this workflow.", task=key)
    if loaded.state.paused:
        raise WorkflowPaused("This workflow is paused; resume it in its settings first.")
    due = Outcome()
    engine.settle(loaded.state, due, now=now)  # time-based unlocks that came due since
    out = due.then(
        engine.apply_task_action(
            loaded.state, key, action, now=now, progress=progress, reason=reason
        )
    )
    await _persist(viewer, loaded, out, now)
    return Change(loaded, out), loaded.tasks[key]


async def update_stage(
    viewer: Viewer,
    *,
    customer_id: str | None,
    stage_key: str,
    action: StageAction,
    reason: str | None,
    now: datetime | None = None,
) -> tuple[Change, WorkflowStage]:
    """An ADMIN override on a stage, recorded with who, when and why."""
    viewer.require(Role.ADMIN)
    why = validate_reason(reason, what=f"{action.value} on a stage")
    cid = viewer.customer_scope(customer_id)
    now = now or utcnow()
    loaded = await load(viewer, cid, lock=True)
    stage = loaded.stages.get(stage_key)
    if stage is None:
        raise NotFound(f"No stage {stage_key!r} in this workflow.", stage=stage_key)
    out = engine.apply_stage_action(loaded.state, stage_key, action, now=now)
    for kind, payload in out.events:
        if kind == "stage.overridden":
            payload["reason"] = why
    await _persist(viewer, loaded, out, now)
    await StageOverride.create(
        organization_id=viewer.organization_id,
        workflow_id=loaded.workflow.id,
        stage_id=stage.id,
        action=action.value,
        reason=why,
        actor=viewer.subject,
        actor_role=viewer.role.value,
    )
    return Change(loaded, out), stage


async def update_settings(
    viewer: Viewer,
    *,
    customer_id: str | None,
    paused: bool | None,
    reminders_enabled: bool | None,
) -> Workflow:
    """Pause or resume a workflow (operators), turn reminders on or off (anyone)."""
    cid = viewer.customer_scope(customer_id)
    if paused is not None:
        viewer.require(Role.ADMIN, Role.CSM)
    loaded = await load(viewer, cid, lock=True)
    wf = loaded.workflow
    events: list[tuple[str, dict[str, Any]]] = []
    if paused is not None and paused != wf.paused:
        wf.paused = loaded.state.paused = paused
        events.append(("workflow.paused" if paused else "workflow.resumed", {}))
    if reminders_enabled is not None and reminders_enabled != wf.reminders_enabled:
        wf.reminders_enabled = reminders_enabled
        events.append(("workflow.settings_changed", {"remindersEnabled": reminders_enabled}))
    if events:
        wf.version += 1
        await wf.save(update_fields=["paused", "reminders_enabled", "version"])
        snapshot = figures(loaded)
        await outbox.record(
            organization_id=viewer.organization_id,
            customer_id=cid,
            events=[(k, {**p, "workflow": snapshot}) for k, p in events],
            actor=viewer.label,
        )
    return wf


async def list_stages(viewer: Viewer, customer_id: str | None) -> list[WorkflowStage]:
    """The stages of a customer's workflow, in order."""
    cid = viewer.customer_scope(customer_id)
    return (
        await scoped(WorkflowStage, viewer).filter(workflow__customer_id=cid).order_by("position")
    )


async def list_tasks(
    viewer: Viewer,
    customer_id: str | None,
    *,
    statuses: Sequence[TaskStatus] | None = None,
    stage_key: str | None = None,
) -> list[WorkflowTask]:
    """The tasks of a customer's workflow, filtered by status and stage, in order."""
    cid = viewer.customer_scope(customer_id)
    query = scoped(WorkflowTask, viewer).filter(workflow__customer_id=cid)
    if statuses:
        query = query.filter(status__in=[s.value for s in statuses])
    if stage_key:
        query = query.filter(stage__key=stage_key)
    return await query.order_by("position")


_DUE_TIME_UNLOCKS = """SELECT DISTINCT w.organization_id, w.customer_id, w.last_activity_at
FROM workflow_stage s
JOIN workflow w ON w.id = s.workflow_id
JOIN customer c ON c.id = w.customer_id
WHERE s.status = 'LOCKED' AND w.status = 'ACTIVE' AND NOT w.paused
  AND s.unlock->>'days_since_signup' IS NOT NULL
  AND c.signed_up_at + make_interval(days => (s.unlock->>'days_since_signup')::int) <= $1
  AND NOT EXISTS (SELECT 1 FROM workflow_stage p WHERE p.workflow_id = s.workflow_id
                  AND p.position < s.position AND p.status <> 'COMPLETED')
ORDER BY w.last_activity_at LIMIT $2"""


async def due_time_unlocks(*, now: datetime, limit: int = 500) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(organization, customer) pairs with a stage whose waiting time has passed."""
    from tortoise.connection import get_connection

    rows = await get_connection("default").execute_query_dict(_DUE_TIME_UNLOCKS, [now, limit])
    return [(r["organization_id"], r["customer_id"]) for r in rows]


async def settle_workflow(viewer: Viewer, customer_id: uuid.UUID, *, now: datetime) -> Outcome:
    """Re-evaluate a workflow without any task move (time-based unlocks)."""
    loaded = await load(viewer, customer_id, lock=True)
    out = Outcome()
    engine.settle(loaded.state, out, now=now)
    if out.events:
        await _persist(viewer, loaded, out, now)
    return out
