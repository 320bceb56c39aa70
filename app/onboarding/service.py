"""Onboarding use cases: start a workflow, move tasks, override stages, change settings.

Callers open the transaction; every function here runs inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.customers.models import Customer
from app.errors import DomainError, NotFound, ValidationFailed, WorkflowPaused
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import Tenant, scoped
from app.onboarding import engine, recent, records
from app.onboarding.engine import Outcome, WorkflowState
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)
from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord
from app.onboarding.rules import validate_reason
from app.onboarding.snapshot import (
    Loaded,
    build_state,
    copy_back,
    derived,
    new_rows,
    write,
    write_settings,
)
from app.onboarding.states import StageAction, TaskAction, TaskStatus, WorkflowStatus
from app.onboarding.templates import definition_of


@dataclass
class Change:
    """The result of one engine step, with the rows the API needs to answer."""

    loaded: Loaded
    outcome: Outcome

    @property
    def workflow(self) -> WorkflowRecord:
        return self.loaded.workflow

    def tasks(self, keys: Sequence[str]) -> list[TaskRecord]:
        return [self.loaded.tasks[k] for k in keys]

    def stages(self, keys: Sequence[str]) -> list[StageRecord]:
        return [self.loaded.stages[k] for k in keys]


def figures(state: WorkflowState, workflow_id: uuid.UUID) -> dict[str, Any]:
    """The fresh progress figures every workflow event carries."""
    return _figures(workflow_id, state.status, state.points, *derived(state))


def stored_figures(wf: WorkflowRecord) -> dict[str, Any]:
    """`figures` as `snapshot.copy_back` just wrote them onto the workflow's record (the same
    values, not computed again)."""
    return _figures(
        wf.id, wf.status, wf.points, wf.progress, wf.minutes_remaining, wf.current_stage_key
    )


def _figures(
    workflow_id: uuid.UUID,
    status: WorkflowStatus,
    points: int,
    progress: float,
    minutes_remaining: int,
    current_stage: str | None,
) -> dict[str, Any]:
    return {
        "workflowId": str(workflow_id),
        "status": status.value,
        "points": points,
        "progress": progress,
        "minutesRemaining": minutes_remaining,
        "currentStage": current_stage,
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
    if customer.workflow_status is not state.status:
        customer.workflow_status = state.status
        await customer.save(update_fields=["workflow_status"])
    out.emit("workflow.started", template=template.key, version=template.version)
    snapshot = figures(state, workflow.id)
    events = [(kind, {**payload, "workflow": snapshot}) for kind, payload in out.events]
    return workflow, events


class Stale(Exception):
    """An unlocked step found its workflow changed by another one before it could write it;
    nothing was written. Run it again under the row lock (`optimistic=False`)."""


async def load(tenant: Tenant, customer_id: uuid.UUID, *, lock: bool = True) -> Loaded:
    """A customer's workflow with stages and tasks: with `lock`, its row locked until commit
    (two statements); without, as one statement saw them (a step computed from it is written
    only if the workflow's version did not change meanwhile, see `snapshot.write`), the
    stages and tasks copied from those this process kept of that version if any (`recent`)."""
    if lock:
        workflow = await records.workflow_for_update(tenant.organization_id, customer_id)
        if workflow is not None:
            (stages,) = await records.checklists(tenant.organization_id, [workflow.id])
    else:
        org = tenant.organization_id
        kept = recent.version(org, customer_id)
        got = await records.customer_workflow(org, customer_id, checklist=True, unless=kept)
        workflow = got.workflow
        if workflow is not None:
            stages = await _stages(org, workflow, got.stages)
    if workflow is None:
        raise NotFound(f"Customer {customer_id} has no workflow.", customer=str(customer_id))
    return build_state(workflow, stages)


async def _stages(
    organization_id: uuid.UUID, workflow: WorkflowRecord, read: list[StageRecord] | None
) -> list[StageRecord]:
    """The stages an unlocked read returned, or (None: the workflow had the version kept)
    copies of those kept; read again if they were forgotten meanwhile."""
    if read is None:
        read = recent.checklist(
            organization_id, workflow.customer_id, workflow.id, workflow.version
        )
        if read is None:
            (read,) = await records.checklists(organization_id, [workflow.id])
    return read


async def _persist(
    viewer: Viewer, loaded: Loaded, out: Outcome, now: datetime, *, alone: bool = False
) -> None:
    if not await persist(loaded, out, now, actor=viewer.label, alone=alone):
        raise Stale(f"workflow {loaded.workflow.id} changed meanwhile")


async def persist(
    loaded: Loaded,
    out: Outcome,
    now: datetime,
    *,
    actor: str,
    before: Sequence[tuple[str, dict[str, Any]]] = (),
    alone: bool = False,
) -> bool:
    """Store an engine step and record its events (after `before`), with fresh figures, in
    one statement; False (nothing stored) when the workflow changed since it was loaded,
    which only an unlocked `load` allows. With `alone` (outside any transaction: the statement
    commits on its own) the write is guarded by the customer's values the step used too
    (`snapshot.write`), the relay is woken after it instead of by a NOTIFY inside it, and the
    stored workflow row, stages and tasks are kept for this workflow's next unlocked step
    (`recent`)."""
    tasks, stages = copy_back(loaded, out.changed_tasks, out.changed_stages, now)
    snapshot = stored_figures(loaded.workflow)
    events = (
        [(kind, {**payload, "workflow": snapshot}) for kind, payload in before]
        + [(kind, {**payload, "workflow": snapshot}) for kind, payload in out.events]
        + [("celebration", {**vars(c), "workflow": snapshot}) for c in out.celebrations]
    )
    stored = await write(
        loaded,
        tasks,
        stages,
        lambda first, guard: outbox.recording(
            organization_id=loaded.workflow.organization_id,
            customer_id=loaded.workflow.customer_id,
            events=events,
            actor=actor,
            first=first,
            guard=guard,
            notify=not alone,
        ),
        alone=alone,
        guarded=alone,
    )
    if stored and alone:
        wf = loaded.workflow
        recent.keep(
            wf.organization_id,
            wf.customer_id,
            wf.id,
            wf.version,
            list(loaded.stages.values()),
            wf,
            changed=(tasks, stages),
        )
        if events:
            outbox.wake_relay(wf.organization_id)
    return stored


async def _customer_of_task(viewer: Viewer, task_id: str) -> tuple[uuid.UUID, str]:
    row = (
        await scoped(WorkflowTask, viewer)
        .filter(id=parse_id(task_id, what="task"))
        .values("key", "workflow__customer_id")
    )
    customer_id = _own_task(viewer, row[0]["workflow__customer_id"] if row else None, task_id)
    return customer_id, str(row[0]["key"])


def _own_task(viewer: Viewer, customer_id: uuid.UUID | None, task_id: str) -> uuid.UUID:
    """The customer whose workflow holds the task (`customer_id`, None when the viewer's
    organization has no such task), or NOT_FOUND; for a CUSTOMER, another customer's task
    is as unknown as a missing one."""
    if customer_id is None or (viewer.role is Role.CUSTOMER and customer_id != viewer.customer_id):
        raise NotFound(f"No task with id {task_id}.", task=task_id)
    return customer_id


async def _load_of_task(viewer: Viewer, task_id: str) -> tuple[Loaded, str]:
    """Unlocked `load` of the workflow that holds a task of the viewer's organization (a
    CUSTOMER's own only), found by the task's id in the same statement; and the task's key."""
    tid, org = parse_id(task_id, what="task"), viewer.organization_id
    owner = recent.customer_of_task(org, tid)
    kept = None if owner is None else recent.version(org, owner)
    got = await records.task_workflow(org, tid, unless=kept)
    workflow = got.workflow
    _own_task(viewer, None if workflow is None else workflow.customer_id, task_id)
    assert workflow is not None
    loaded = build_state(workflow, await _stages(org, workflow, got.stages))
    key = next(k for k, t in loaded.tasks.items() if t.id == tid)
    return loaded, key


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
    optimistic: bool = False,
) -> tuple[Change, TaskRecord]:
    """Move one task; concurrent calls on the same workflow apply one after the other.

    With `optimistic`, outside any transaction: when this process keeps the workflow as its
    last write left it (`recent`), the step is computed from that copy and only its guarded
    write is sent (one statement); otherwise, or when that write finds anything the step was
    computed from changed (nothing written then), one statement reads the workflow and one
    writes the step, each its own transaction, the write only if nobody changed the
    workflow in between (Stale otherwise, with nothing written).
    """
    now = now or utcnow()
    step = partial(_step, viewer, action, now=now, progress=progress, reason=reason)
    if optimistic:
        kept = _kept(viewer, task_id, task_key, customer_id)
        if kept is not None:
            try:
                return await step(*kept, alone=True, settled=True)
            except Stale:
                wf = kept[0].workflow
                recent.forget(wf.organization_id, wf.customer_id, wf.id, wf.version - 1)
            except DomainError:
                pass  # perhaps only because the copy is out of date: decided on fresh rows
    if task_id and optimistic:
        loaded, key = await _load_of_task(viewer, task_id)
    else:
        if task_id:
            cid, key = await _customer_of_task(viewer, task_id)
        elif task_key:
            cid, key = viewer.customer_scope(customer_id), task_key
        else:
            raise ValidationFailed("Pass `taskId`, or `taskKey` (with `customerId` for operators).")
        loaded = await load(viewer, cid, lock=not optimistic)
    return await step(loaded, key, alone=optimistic)


def _kept(
    viewer: Viewer, task_id: str | None, task_key: str | None, customer_id: str | None
) -> tuple[Loaded, str] | None:
    """The workflow of the task to move as this process kept it (`recent.workflow`), with the
    task's key; None when it is not kept, or when anything about the request is not plainly
    valid (the read path then decides, and raises, on fresh rows). No statement."""
    org = viewer.organization_id
    try:
        if task_id:
            tid = parse_id(task_id, what="task")
            owner = recent.customer_of_task(org, tid)
            if owner is None:
                return None
            cid = _own_task(viewer, owner, task_id)
        elif task_key:
            cid = viewer.customer_scope(customer_id)
        else:
            return None
    except DomainError:
        return None
    got = recent.workflow(org, cid)
    if got is None:
        return None
    loaded = build_state(*got)
    if task_id:
        key = next((k for k, t in loaded.tasks.items() if t.id == tid), None)
        return None if key is None else (loaded, key)
    assert task_key is not None
    return loaded, task_key


async def _step(
    viewer: Viewer,
    action: TaskAction,
    loaded: Loaded,
    key: str,
    *,
    now: datetime,
    progress: int | None,
    reason: str | None,
    alone: bool,
    settled: bool = False,
) -> tuple[Change, TaskRecord]:
    """Compute one task's move on a loaded workflow and store it (Stale: nothing stored).
    `settled`: the workflow is as a step of this process left it (`recent`), settled then,
    so only a stage waiting for days since signup can have come due since."""
    if key not in loaded.tasks:
        raise NotFound(f"No task {key!r} in this workflow.", task=key)
    if loaded.state.paused:
        raise WorkflowPaused("This workflow is paused; resume it in its settings first.")
    due = None
    if not settled or engine.comes_due(loaded.state, now=now):
        due = Outcome()
        engine.settle(loaded.state, due, now=now)  # time-based unlocks that came due since
    moved = engine.apply_task_action(  # settled at `now` by now, either way
        loaded.state, key, action, now=now, progress=progress, reason=reason, settled=True
    )
    out = moved if due is None else due.then(moved)
    await _persist(viewer, loaded, out, now, alone=alone)
    return Change(loaded, out), loaded.tasks[key]


async def update_stage(
    viewer: Viewer,
    *,
    customer_id: str | None,
    stage_key: str,
    action: StageAction,
    reason: str | None,
    now: datetime | None = None,
) -> tuple[Change, StageRecord]:
    """An ADMIN override on a stage, recorded with who, when and why."""
    viewer.require(Role.ADMIN)
    why = validate_reason(reason, what=f"{action.value} on a stage")
    cid = viewer.customer_scope(customer_id)
    now = now or utcnow()
    loaded = await load(viewer, cid)
    stage = loaded.stages.get(stage_key)
    if stage is None:
        raise NotFound(f"No stage {stage_key!r} in this workflow.", stage=stage_key)
    before = {"status": str(stage.status)}
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
    await audit.record(
        viewer=viewer,
        action=f"stage.{action.value.lower()}",
        target_type="stage",
        target_id=stage.id,
        before=before,
        after={"status": str(stage.status)},
        reason=why,
    )
    return Change(loaded, out), stage


async def update_settings(
    viewer: Viewer,
    *,
    customer_id: str | None,
    paused: bool | None,
    reminders_enabled: bool | None,
) -> WorkflowRecord:
    """Pause or resume a workflow (operators), turn reminders on or off (anyone)."""
    cid = viewer.customer_scope(customer_id)
    if paused is not None:
        viewer.require(Role.ADMIN, Role.CSM)
    loaded = await load(viewer, cid)
    wf = loaded.workflow
    before = {"paused": wf.paused, "remindersEnabled": wf.reminders_enabled}
    events: list[tuple[str, dict[str, Any]]] = []
    if paused is not None and paused != wf.paused:
        wf.paused = loaded.state.paused = paused
        events.append(("workflow.paused" if paused else "workflow.resumed", {}))
    if reminders_enabled is not None and reminders_enabled != wf.reminders_enabled:
        wf.reminders_enabled = reminders_enabled
        events.append(("workflow.settings_changed", {"remindersEnabled": reminders_enabled}))
    if events and viewer.is_operator:
        after = {"paused": wf.paused, "remindersEnabled": wf.reminders_enabled}
        await audit.record(
            viewer=viewer,
            action="workflow.settings",
            target_type="workflow",
            target_id=wf.id,
            before=before,
            after=after,
        )
    if events:
        wf.version += 1
        await write_settings(wf)
        snapshot = figures(loaded.state, wf.id)
        await outbox.record(
            organization_id=viewer.organization_id,
            customer_id=cid,
            events=[(k, {**p, "workflow": snapshot}) for k, p in events],
            actor=viewer.label,
        )
    return wf


async def _checklist(viewer: Viewer, customer_id: str | uuid.UUID | None) -> list[StageRecord]:
    cid = viewer.customer_scope(customer_id)
    (workflow,) = await records.workflows_by_customer(viewer.organization_id, [cid])
    if workflow is None:
        return []
    (stages,) = await records.checklists(viewer.organization_id, [workflow.id])
    return stages


async def list_stages(viewer: Viewer, customer_id: str | uuid.UUID | None) -> list[StageRecord]:
    """The stages of a customer's workflow, in order."""
    return await _checklist(viewer, customer_id)


async def list_tasks(
    viewer: Viewer,
    customer_id: str | None,
    *,
    statuses: Sequence[TaskStatus] | None = None,
    stage_key: str | None = None,
) -> list[TaskRecord]:
    """The tasks of a customer's workflow, filtered by status and stage, in order."""
    wanted = set(statuses or ())
    return [
        t
        for s in await _checklist(viewer, customer_id)
        if stage_key is None or s.key == stage_key
        for t in s.tasks
        if not wanted or t.status in wanted
    ]


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
    loaded = await load(viewer, customer_id)
    out = Outcome()
    engine.settle(loaded.state, out, now=now)
    if out.events:
        await _persist(viewer, loaded, out, now)
    return out
