"""Mapping between stored rows and the engine's in-memory state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.onboarding.engine import WorkflowState
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.rules import StageState, TaskState
from app.onboarding.states import StageStatus, TaskStatus, WorkflowStatus

TASK_FIELDS = ("status", "progress", "failure_reason", "attempts", "started_at", "completed_at")
STAGE_FIELDS = ("status", "unlocked_at", "completed_at")
WORKFLOW_FIELDS = (
    "status",
    "points",
    "badges",
    "completed_at",
    "paused",
    "last_activity_at",
    "version",
)


@dataclass
class Loaded:
    """A workflow's rows and the state built from them."""

    workflow: Workflow
    stages: dict[str, WorkflowStage]
    tasks: dict[str, WorkflowTask]
    state: WorkflowState


def task_state(row: WorkflowTask, stage_key: str) -> TaskState:
    return TaskState(
        key=row.key,
        stage_key=stage_key,
        position=row.position,
        points=row.points,
        estimated_minutes=row.estimated_minutes,
        required=row.required,
        depends_on=tuple(row.depends_on),
        status=TaskStatus(row.status),
        progress=row.progress,
        failure_reason=row.failure_reason,
        attempts=row.attempts,
        started_at=row.started_at,
        completed_at=row.completed_at,
        id=row.id,
    )


def stage_state(row: WorkflowStage) -> StageState:
    return StageState(
        key=row.key,
        name=row.name,
        position=row.position,
        status=StageStatus(row.status),
        unlock=row.unlock,
        reward_points=row.reward_points,
        reward_badge=row.reward_badge,
        unlocked_at=row.unlocked_at,
        completed_at=row.completed_at,
        id=row.id,
    )


def build_state(
    workflow: Workflow,
    stages: list[WorkflowStage],
    tasks: list[WorkflowTask],
    signed_up_at: datetime,
) -> Loaded:
    """The engine state for a workflow's rows."""
    stage_by_id = {s.id: s for s in stages}
    state = WorkflowState(
        status=WorkflowStatus(workflow.status),
        points=workflow.points,
        badges=list(workflow.badges),
        paused=workflow.paused,
        signed_up_at=signed_up_at,
        stages=[stage_state(s) for s in sorted(stages, key=lambda s: s.position)],
        tasks={t.key: task_state(t, stage_by_id[t.stage_id].key) for t in tasks},  # type: ignore[attr-defined]
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


def copy_back(
    loaded: Loaded, changed_tasks: set[str], changed_stages: set[str], now: datetime
) -> tuple[list[WorkflowTask], list[WorkflowStage]]:
    """Write the engine's changes onto the rows; return the rows that changed."""
    state, wf = loaded.state, loaded.workflow
    wf.status, wf.points, wf.badges = state.status, state.points, state.badges
    wf.completed_at, wf.paused, wf.last_activity_at = state.completed_at, state.paused, now
    wf.version += 1
    tasks = []
    for key in changed_tasks:
        row, task = loaded.tasks[key], state.tasks[key]
        for name in TASK_FIELDS:
            setattr(row, name, getattr(task, name))
        row.updated_at = now
        tasks.append(row)
    stages = []
    for key in changed_stages:
        stage_row, stage = loaded.stages[key], state.stage(key)
        assert stage is not None
        for name in STAGE_FIELDS:
            setattr(stage_row, name, getattr(stage, name))
        stages.append(stage_row)
    return tasks, stages
