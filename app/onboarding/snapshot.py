"""Mapping between stored rows and the engine's in-memory state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from app.events.outbox import Recording, compact_json
from app.kit import group_commit
from app.kit.connections import default_client
from app.onboarding.engine import WorkflowState
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord
from app.onboarding.rules import StageState, TaskState


@dataclass
class Loaded:
    """A workflow's records and the state built from them."""

    workflow: WorkflowRecord
    stages: dict[str, StageRecord]
    tasks: dict[str, TaskRecord]
    state: WorkflowState


def derived(state: WorkflowState) -> tuple[float, int, str | None]:
    """The figures kept on the workflow row: progress in percent (0-100), minutes remaining
    and the current stage's key."""
    progress, minutes = state.progress_and_minutes()
    current = state.current_stage
    return progress, minutes, current.key if current else None


def task_state(row: TaskRecord) -> TaskState:
    # positional, in `TaskState`'s field order (a dozen of these per step)
    return TaskState(
        row.key,
        row.stage_key,
        row.position,
        row.points,
        row.estimated_minutes,
        row.required,
        row.depends_on,
        row.status,
        row.progress,
        row.failure_reason,
        row.attempts,
        row.started_at,
        row.completed_at,
        row.id,
    )


def stage_state(row: StageRecord) -> StageState:
    # positional, in `StageState`'s field order
    return StageState(
        row.key,
        row.name,
        row.position,
        row.status,
        row.unlock,
        row.reward_points,
        row.reward_badge,
        row.unlocked_at,
        row.completed_at,
        row.id,
    )


def build_state(workflow: WorkflowRecord, stages: list[StageRecord]) -> Loaded:
    """The engine state for a workflow's records (its `signed_up_at` must be loaded)."""
    assert workflow.signed_up_at is not None
    tasks = [t for s in stages for t in s.tasks]
    state = WorkflowState(
        status=workflow.status,
        points=workflow.points,
        badges=list(workflow.badges),
        paused=workflow.paused,
        signed_up_at=workflow.signed_up_at,
        stages=[stage_state(s) for s in stages],
        tasks={t.key: task_state(t) for t in tasks},
        completed_at=workflow.completed_at,
    )
    return Loaded(
        workflow=workflow,
        stages={s.key: s for s in stages},
        tasks={t.key: t for t in tasks},
        state=state,
    )


def new_rows(
    state: WorkflowState,
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    template_id: uuid.UUID,
    template: Any,
    now: datetime,
) -> tuple[Workflow, list[WorkflowStage], list[WorkflowTask]]:
    """Unsaved rows for a freshly started workflow (ids assigned here, for bulk inserts)."""
    workflow = Workflow(
        id=uuid.uuid4(),
        organization_id=organization_id,
        customer_id=customer_id,
        template_id=template_id,
        status=state.status,
        points=state.points,
        badges=state.badges,
        paused=state.paused,
        started_at=state.signed_up_at if state.signed_up_at < now else now,
        completed_at=state.completed_at,
        last_activity_at=now,
    )
    workflow.progress, workflow.minutes_remaining, workflow.current_stage_key = derived(state)
    stage_rows: list[WorkflowStage] = []
    task_rows: list[WorkflowTask] = []
    for stage_def, stage in zip(template.stages, state.stages, strict=True):
        stage_row = WorkflowStage(
            id=uuid.uuid4(),
            organization_id=organization_id,
            workflow_id=workflow.id,
            key=stage.key,
            name=stage.name,
            description=stage_def.description,
            position=stage.position,
            status=stage.status,
            unlock=dict(stage.unlock),
            reward_points=stage.reward_points,
            reward_badge=stage.reward_badge,
            unlocked_at=stage.unlocked_at,
            completed_at=stage.completed_at,
        )
        stage.id = stage_row.id
        stage_rows.append(stage_row)
        for task_def in stage_def.tasks:
            task = state.tasks[task_def.key]
            row = WorkflowTask(
                id=uuid.uuid4(),
                organization_id=organization_id,
                workflow_id=workflow.id,
                stage_id=stage_row.id,
                key=task.key,
                title=task_def.title,
                description=task_def.description,
                position=task.position,
                points=task.points,
                estimated_minutes=task.estimated_minutes,
                required=task.required,
                depends_on=list(task.depends_on),
                help_resources=[h.model_dump() for h in task_def.help],
                success_criterion=task_def.success_criterion.model_dump()
                if task_def.success_criterion
                else None,
                status=task.status,
                progress=task.progress,
                failure_reason=task.failure_reason,
                attempts=task.attempts,
                started_at=task.started_at,
                completed_at=task.completed_at,
                updated_at=now,
            )
            task.id = row.id
            task_rows.append(row)
    return workflow, stage_rows, task_rows


_WORKFLOW = """w AS (
  UPDATE workflow SET status = $3, points = $4, badges = $5::jsonb, completed_at = $6,
    paused = $7, last_activity_at = $1, version = $8, progress = $9,
    minutes_remaining = $10, current_stage_key = $11
  WHERE id = $12 AND organization_id = $2 AND version = $8 - 1{guard}
  RETURNING id
)"""
_WORKFLOW_PARAMETERS = 12
_GUARD = """
    AND EXISTS (SELECT 1 FROM customer c WHERE c.id = workflow.customer_id
      AND c.organization_id = $2 AND c.signed_up_at = $13
      AND c.workflow_status IS NOT DISTINCT FROM $14)"""
"""What the guard of an unlocked step's write checks besides the version: the customer's
values the step was computed from (its sign-up time, the status its row mirrors)."""
_GUARD_PARAMETERS = 2
_TASKS = """t AS (
  UPDATE workflow_task AS t SET status = v.status, progress = v.progress,
    failure_reason = v.failure_reason, attempts = v.attempts, started_at = v.started_at,
    completed_at = v.completed_at, updated_at = $1
  FROM w, unnest(${0}::uuid[], ${1}::text[], ${2}::int[], ${3}::text[], ${4}::int[],
                 ${5}::timestamptz[], ${6}::timestamptz[])
    AS v(id, status, progress, failure_reason, attempts, started_at, completed_at)
  WHERE t.id = v.id AND t.organization_id = $2 AND t.workflow_id = w.id
  RETURNING 1
)"""
_TASK = """t AS (
  UPDATE workflow_task AS t SET status = ${1}, progress = ${2}, failure_reason = ${3},
    attempts = ${4}, started_at = ${5}, completed_at = ${6}, updated_at = $1
  FROM w WHERE t.id = ${0} AND t.organization_id = $2 AND t.workflow_id = w.id
  RETURNING 1
)"""
"""`_TASKS` for one task (most steps): plain parameters instead of arrays to unnest."""
_STAGES = """s AS (
  UPDATE workflow_stage AS s SET status = v.status, unlocked_at = v.unlocked_at,
    completed_at = v.completed_at
  FROM w, unnest(${0}::uuid[], ${1}::text[], ${2}::timestamptz[], ${3}::timestamptz[])
    AS v(id, status, unlocked_at, completed_at)
  WHERE s.id = v.id AND s.organization_id = $2 AND s.workflow_id = w.id
  RETURNING 1
)"""
_CUSTOMER = """c AS (
  UPDATE customer AS c SET workflow_status = $3 FROM w
  WHERE c.id = ${0} AND c.organization_id = $2 AND c.workflow_status <> $3
  RETURNING 1
)"""


@lru_cache(maxsize=32)
def _write_ctes(tasks: int, stages: bool, customer: bool, guarded: bool) -> tuple[str, int]:
    """The common table expressions of a step's write with only the parts it needs (each part
    left out is a table PostgreSQL does not open for the statement), and how many parameters
    they take; `tasks` is 0, 1 or 2 for more.

    Every part joins `w`, the workflow's row updated only if its version is still the one the
    step was computed from (and, `guarded`, its customer's sign-up time and mirrored status
    too); otherwise nothing is written."""
    if guarded:
        ctes, n = [_WORKFLOW.format(guard=_GUARD)], _WORKFLOW_PARAMETERS + _GUARD_PARAMETERS
    else:
        ctes, n = [_WORKFLOW.format(guard="")], _WORKFLOW_PARAMETERS
    parts = (
        (tasks == 1, _TASK, 7),
        (tasks > 1, _TASKS, 7),
        (stages, _STAGES, 4),
        (customer, _CUSTOMER, 1),
    )
    for wanted, sql, width in parts:
        if wanted:
            ctes.append(sql.format(*range(n + 1, n + 1 + width)))
            n += width
    return ", ".join(ctes), n


def _task_parameters(t: TaskRecord) -> tuple[Any, ...]:
    """A changed task's values in the order of `_TASK`'s parameters (and of `_TASKS`' arrays)."""
    return (
        t.id,
        t.status.value,
        t.progress,
        t.failure_reason,
        t.attempts,
        t.started_at,
        t.completed_at,
    )


def copy_back(
    loaded: Loaded, changed_tasks: set[str], changed_stages: set[str], now: datetime
) -> tuple[list[TaskRecord], list[StageRecord]]:
    """Write the engine's changes and the derived figures onto the records; return the task
    and stage records that changed."""
    state, wf = loaded.state, loaded.workflow
    wf.status, wf.points, wf.badges = state.status, state.points, state.badges
    wf.completed_at, wf.paused, wf.last_activity_at = state.completed_at, state.paused, now
    wf.progress, wf.minutes_remaining, wf.current_stage_key = derived(state)
    wf.version += 1
    tasks = []
    for key in sorted(changed_tasks):
        row, task = loaded.tasks[key], state.tasks[key]
        row.status, row.progress, row.attempts = task.status, task.progress, task.attempts
        row.failure_reason, row.started_at = task.failure_reason, task.started_at
        row.completed_at, row.updated_at = task.completed_at, now
        tasks.append(row)
    stages = []
    for key in sorted(changed_stages):
        stage_row, stage = loaded.stages[key], state.stage(key)
        assert stage is not None
        stage_row.status, stage_row.unlocked_at = stage.status, stage.unlocked_at
        stage_row.completed_at = stage.completed_at
        stages.append(stage_row)
    return tasks, stages


async def write(
    loaded: Loaded,
    tasks: list[TaskRecord],
    stages: list[StageRecord],
    events: Callable[[int, str], Recording] | None = None,
    *,
    alone: bool = False,
    guarded: bool = False,
) -> bool:
    """Store the workflow, its changed tasks and stages, and the status its customer row
    mirrors for lists (unless the read saw it current), in one statement (plain UPDATEs), of
    only the tables that change; with `events` (the recording of the
    step's events given the number of its first parameter and the CTE it depends on), they
    are recorded in that same statement.

    Only if the workflow's row still has the version the step was computed from (the one
    before `copy_back`), and with `guarded` only if its customer's row still has the sign-up
    time and mirrored status it was computed from (`wf.signed_up_at`, `wf.customer_status`,
    which must then be known): False when another change came first, and then nothing was
    written. Under the row lock of `load` the version cannot change.

    With `alone` (outside any transaction) the statement commits on its own, possibly in one
    round trip and one commit with concurrent steps' writes (`group_commit`).
    """
    wf = loaded.workflow
    mirror = wf.customer_status is not wf.status  # unknown (None) or different
    parameters: list[Any] = [
        wf.last_activity_at,
        wf.organization_id,
        wf.status.value,
        wf.points,
        compact_json(wf.badges),
        wf.completed_at,
        wf.paused,
        wf.version,
        wf.progress,
        wf.minutes_remaining,
        wf.current_stage_key,
        wf.id,
    ]
    if guarded:
        assert wf.signed_up_at is not None
        status = wf.customer_status
        parameters += [wf.signed_up_at, None if status is None else status.value]
    if len(tasks) == 1:
        parameters += _task_parameters(tasks[0])
    elif tasks:
        parameters += [list(column) for column in zip(*map(_task_parameters, tasks), strict=True)]
    if stages:
        parameters += [
            [s.id for s in stages],
            [s.status.value for s in stages],
            [s.unlocked_at for s in stages],
            [s.completed_at for s in stages],
        ]
    if mirror:
        parameters.append(wf.customer_id)
    ctes, width = _write_ctes(min(len(tasks), 2), bool(stages), mirror, guarded)
    recorded = events(width + 1, "w") if events is not None else None
    if recorded is None or not recorded.count:
        row = await _one_row(f"WITH {ctes}\nSELECT count(*) FROM w", parameters, alone=alone)
        stored = bool(row[0])
    else:
        row = await _one_row(
            f"WITH {ctes}, {recorded.ctes}\n"
            "SELECT (SELECT count(*) FROM w), r.* FROM (VALUES (1)) AS one(x)\n"
            f"LEFT JOIN ({recorded.select}) AS r ON true",
            parameters + recorded.parameters,
            alone=alone,
        )
        stored = bool(row[0])
        if stored:
            recorded.sequences([tuple(row)[1:]] if row[1] is not None else [])
    if stored:
        wf.customer_status = wf.status
    return stored


async def _one_row(sql: str, parameters: list[Any], *, alone: bool) -> Any:
    if alone:
        return await group_commit.commit_alone(sql, parameters)
    _, rows = await default_client().execute_query(sql, parameters)
    return rows[0]


async def write_settings(wf: WorkflowRecord) -> None:
    """Store a workflow's settings and version."""
    await default_client().execute_query(
        "UPDATE workflow SET paused = $1, reminders_enabled = $2, version = $3"
        " WHERE id = $4 AND organization_id = $5",
        [wf.paused, wf.reminders_enabled, wf.version, wf.id, wf.organization_id],
    )
