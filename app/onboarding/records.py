"""Workflows, stages and tasks as plain records, read with one SQL statement per kind.

The hot paths (the checklist query, `updateTask`, customer lists) read these instead of ORM
rows: asyncpg decodes the columns, the JSON definition fields are parsed once per distinct
text, and nothing is hydrated twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from app.kit.connections import default_client
from app.onboarding.states import StageStatus, TaskStatus, WorkflowStatus


@dataclass(frozen=True, slots=True)
class HelpLink:
    """A link that helps with a task."""

    title: str
    url: str
    kind: str


@dataclass(frozen=True, slots=True)
class Criterion:
    """A usage event that completes a task by itself."""

    event: str
    count: int
    within_days: int | None = None


@dataclass(slots=True)
class TaskRecord:
    """One task of a workflow."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    stage_id: uuid.UUID
    stage_key: str
    key: str
    title: str
    description: str
    position: int
    points: int
    estimated_minutes: int
    required: bool
    depends_on: tuple[str, ...]
    help_resources: tuple[HelpLink, ...]
    success_criterion: Criterion | None
    status: TaskStatus
    progress: int
    failure_reason: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


@dataclass(slots=True)
class StageRecord:
    """One stage of a workflow, with its tasks in order."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    key: str
    name: str
    description: str
    position: int
    status: StageStatus
    unlock: dict[str, Any]
    reward_points: int
    reward_badge: dict[str, Any] | None
    unlocked_at: datetime | None
    completed_at: datetime | None
    tasks: list[TaskRecord] = field(default_factory=list)


@dataclass(slots=True)
class WorkflowRecord:
    """A customer's workflow with its derived figures (kept current by the engine's writes)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    customer_id: uuid.UUID
    template_id: uuid.UUID
    status: WorkflowStatus
    points: int
    badges: list[dict[str, Any]]
    paused: bool
    reminders_enabled: bool
    started_at: datetime
    completed_at: datetime | None
    last_activity_at: datetime
    version: int
    progress: float
    minutes_remaining: int
    current_stage_key: str | None
    signed_up_at: datetime | None = None
    customer_status: WorkflowStatus | None = None
    """The status the customer's row mirrors for lists, when read with it (None: not read)."""


@lru_cache(maxsize=4096)
def _links(text: str) -> tuple[HelpLink, ...]:
    return tuple(
        HelpLink(title=h["title"], url=h["url"], kind=h.get("kind", "article"))
        for h in json.loads(text)
    )


@lru_cache(maxsize=4096)
def _criterion(text: str) -> Criterion:
    c = json.loads(text)
    return Criterion(event=c["event"], count=c.get("count", 1), within_days=c.get("within_days"))


@lru_cache(maxsize=4096)
def _names(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


_WORKFLOW_COLUMNS = """w.id, w.organization_id, w.customer_id, w.template_id, w.status, w.points,
w.badges, w.paused, w.reminders_enabled, w.started_at, w.completed_at, w.last_activity_at,
w.version, w.progress, w.minutes_remaining, w.current_stage_key"""

WORKFLOW_COLUMNS = _WORKFLOW_COLUMNS
"""A workflow's columns (alias `w`) in the order `workflow_of_row` reads them."""
WORKFLOW_WIDTH = 16

_WORKFLOWS_BY_CUSTOMER = f"""SELECT {_WORKFLOW_COLUMNS} FROM workflow w
WHERE w.organization_id = $1 AND w.customer_id = ANY($2::uuid[])"""

_WORKFLOW_FOR_UPDATE = f"""SELECT {_WORKFLOW_COLUMNS}, c.signed_up_at, c.workflow_status
FROM workflow w
JOIN customer c ON c.id = w.customer_id AND c.organization_id = w.organization_id
WHERE w.organization_id = $1 AND w.customer_id = $2 FOR UPDATE OF w"""

_CHECKLIST_COLUMNS = """s.workflow_id, s.id, s.key, s.name, s.description, s.position, s.status,
s.unlock::text, s.reward_points, s.reward_badge::text, s.unlocked_at, s.completed_at,
t.id, t.stage_id, t.key, t.title, t.description, t.position, t.points, t.estimated_minutes,
t.required, t.depends_on::text, t.help_resources::text, t.success_criterion::text, t.status,
t.progress, t.failure_reason, t.attempts, t.started_at, t.completed_at, t.updated_at"""

_CHECKLIST = f"""SELECT {_CHECKLIST_COLUMNS}
FROM workflow_stage s
LEFT JOIN workflow_task t ON t.organization_id = s.organization_id
  AND t.workflow_id = s.workflow_id AND t.stage_id = s.id
WHERE s.organization_id = $1 AND s.workflow_id = ANY($2::uuid[])
ORDER BY s.workflow_id, s.position, t.position"""


_CUSTOMER_WORKFLOW = f"""SELECT c.id, {_WORKFLOW_COLUMNS}, c.signed_up_at, c.workflow_status
FROM customer c
LEFT JOIN workflow w ON w.organization_id = c.organization_id AND w.customer_id = c.id
WHERE c.organization_id = $1 AND c.id = $2"""

_CUSTOMER_CHECKLIST_OF = f"""SELECT c.id, {_WORKFLOW_COLUMNS}, c.signed_up_at, c.workflow_status,
{_CHECKLIST_COLUMNS}
FROM customer c
LEFT JOIN workflow w ON w.organization_id = c.organization_id AND w.customer_id = c.id
LEFT JOIN workflow_stage s
  ON s.organization_id = c.organization_id AND s.workflow_id = w.id{{unless}}
LEFT JOIN workflow_task t ON t.organization_id = s.organization_id
  AND t.workflow_id = s.workflow_id AND t.stage_id = s.id
WHERE c.organization_id = $1 AND c.id = {{customer}}
ORDER BY s.position, t.position"""

_CUSTOMER_CHECKLIST = _CUSTOMER_CHECKLIST_OF.format(customer="$2", unless="")

_UNLESS = "\n    AND (w.id, w.version) IS DISTINCT FROM ($3::uuid, $4::int)"

_CUSTOMER_CHECKLIST_UNLESS = _CUSTOMER_CHECKLIST_OF.format(customer="$2", unless=_UNLESS)
"""The customer's checklist, without its stages and tasks when its workflow has the id $3
and the version $4 (PostgreSQL then scans neither table)."""

_TASK_CUSTOMER = """(SELECT tw.customer_id FROM workflow_task tt
  JOIN workflow tw ON tw.organization_id = tt.organization_id AND tw.id = tt.workflow_id
  WHERE tt.organization_id = $1 AND tt.id = $2)"""

_TASK_CHECKLIST = _CUSTOMER_CHECKLIST_OF.format(customer=_TASK_CUSTOMER, unless="")
"""The checklist of the customer whose workflow holds the task $2 (no row: no such task)."""

_TASK_CHECKLIST_UNLESS = _CUSTOMER_CHECKLIST_OF.format(customer=_TASK_CUSTOMER, unless=_UNLESS)

_WORKFLOW_WIDTH = 18  # with the customer's signed_up_at and workflow_status


@dataclass(slots=True)
class CustomerWorkflow:
    """What one statement says of a customer: whether it exists in the organization, its
    workflow (None before it starts) and, when asked for, the workflow's stages with tasks."""

    found: bool
    workflow: WorkflowRecord | None = None
    stages: list[StageRecord] | None = None
    """None as well when the workflow had the id and version of `unless`."""


async def customer_workflow(
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    checklist: bool,
    unless: tuple[uuid.UUID, int] | None = None,
) -> CustomerWorkflow:
    """A customer of the organization with its workflow (and its checklist when `checklist`,
    unless the workflow's id and version are `unless`: the caller has that checklist), read
    in one statement from one snapshot."""
    if not checklist:
        return await _customer_workflow(
            _CUSTOMER_WORKFLOW, [organization_id, customer_id], checklist=False
        )
    return await _checklist_unless(
        _CUSTOMER_CHECKLIST, _CUSTOMER_CHECKLIST_UNLESS, organization_id, customer_id, unless
    )


async def task_workflow(
    organization_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    unless: tuple[uuid.UUID, int] | None = None,
) -> CustomerWorkflow:
    """`customer_workflow` with the checklist (and `unless`), of the customer whose workflow
    holds the organization's task `task_id` (not found when it has no such task), in one
    statement."""
    return await _checklist_unless(
        _TASK_CHECKLIST, _TASK_CHECKLIST_UNLESS, organization_id, task_id, unless
    )


async def _checklist_unless(
    sql: str,
    sql_unless: str,
    organization_id: uuid.UUID,
    key: uuid.UUID,
    unless: tuple[uuid.UUID, int] | None,
) -> CustomerWorkflow:
    if unless is None:
        return await _customer_workflow(sql, [organization_id, key], checklist=True)
    got = await _customer_workflow(sql_unless, [organization_id, key, *unless], checklist=True)
    if got.workflow is not None and (got.workflow.id, got.workflow.version) == unless:
        got.stages = None
    return got


async def _customer_workflow(
    sql: str, parameters: list[Any], *, checklist: bool
) -> CustomerWorkflow:
    _, rows = await default_client().execute_query(sql, parameters)
    if not rows:
        return CustomerWorkflow(found=False)
    first = rows[0]
    if first[1] is None:
        return CustomerWorkflow(found=True)
    workflow = _workflow(tuple(first)[1 : 1 + _WORKFLOW_WIDTH])
    if not checklist:
        return CustomerWorkflow(found=True, workflow=workflow)
    offset = 1 + _WORKFLOW_WIDTH
    stages = _checklist_rows(tuple(r)[offset:] for r in rows if r[offset] is not None)
    return CustomerWorkflow(found=True, workflow=workflow, stages=stages.get(workflow.id, []))


def workflow_of_row(r: Any) -> WorkflowRecord:
    """The record of a row of `WORKFLOW_COLUMNS` (then, optionally, the sign-up time and the
    customer's workflow status)."""
    return _workflow(r)


def _workflow(r: Any) -> WorkflowRecord:
    badges = r[6]
    return WorkflowRecord(
        id=r[0],
        organization_id=r[1],
        customer_id=r[2],
        template_id=r[3],
        status=WorkflowStatus(r[4]),
        points=r[5],
        badges=json.loads(badges) if isinstance(badges, str) else list(badges or []),
        paused=r[7],
        reminders_enabled=r[8],
        started_at=r[9],
        completed_at=r[10],
        last_activity_at=r[11],
        version=r[12],
        progress=r[13],
        minutes_remaining=r[14],
        current_stage_key=r[15],
        signed_up_at=r[16] if len(r) > 16 else None,
        customer_status=WorkflowStatus(r[17]) if len(r) > 17 and r[17] else None,
    )


async def workflows_by_customer(
    organization_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> list[WorkflowRecord | None]:
    """Each customer's workflow (or None), in one statement."""
    _, rows = await default_client().execute_query(
        _WORKFLOWS_BY_CUSTOMER, [organization_id, list(customer_ids)]
    )
    found = {r[2]: _workflow(r) for r in rows}
    return [found.get(c) for c in customer_ids]


async def workflow_for_update(
    organization_id: uuid.UUID, customer_id: uuid.UUID
) -> WorkflowRecord | None:
    """A customer's workflow with its customer's sign-up time, row-locked until commit."""
    _, rows = await default_client().execute_query(
        _WORKFLOW_FOR_UPDATE, [organization_id, customer_id]
    )
    return _workflow(rows[0]) if rows else None


async def checklists(
    organization_id: uuid.UUID, workflow_ids: Sequence[uuid.UUID]
) -> list[list[StageRecord]]:
    """Each workflow's stages in order, each with its tasks in order, in one statement."""
    _, rows = await default_client().execute_query(
        _CHECKLIST, [organization_id, list(workflow_ids)]
    )
    grouped = _checklist_rows(rows)
    return [grouped.get(w, []) for w in workflow_ids]


def _checklist_rows(rows: Iterable[Any]) -> dict[uuid.UUID, list[StageRecord]]:
    """Stages with their tasks, grouped by workflow, from rows of `_CHECKLIST_COLUMNS` in
    workflow, stage and task order."""
    grouped: dict[uuid.UUID, list[StageRecord]] = {}
    stage: StageRecord | None = None
    for r in rows:
        if stage is None or stage.id != r[1]:
            badge = r[9]
            stage = StageRecord(
                id=r[1],
                workflow_id=r[0],
                key=r[2],
                name=r[3],
                description=r[4],
                position=r[5],
                status=StageStatus(r[6]),
                unlock=json.loads(r[7]) if r[7] else {},
                reward_points=r[8],
                reward_badge=json.loads(badge) if badge and badge != "null" else None,
                unlocked_at=r[10],
                completed_at=r[11],
            )
            grouped.setdefault(r[0], []).append(stage)
        if r[12] is None:
            continue
        criterion = r[23]
        stage.tasks.append(
            TaskRecord(
                id=r[12],
                workflow_id=r[0],
                stage_id=r[13],
                stage_key=stage.key,
                key=r[14],
                title=r[15],
                description=r[16],
                position=r[17],
                points=r[18],
                estimated_minutes=r[19],
                required=r[20],
                depends_on=_names(r[21]),
                help_resources=_links(r[22]),
                success_criterion=_criterion(criterion)
                if criterion and criterion != "null"
                else None,
                status=TaskStatus(r[24]),
                progress=r[25],
                failure_reason=r[26],
                attempts=r[27],
                started_at=r[28],
                completed_at=r[29],
                updated_at=r[30],
            )
        )
    return grouped
