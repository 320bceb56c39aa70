"""GraphQL types of onboarding: workflows, stages, tasks, templates, celebrations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from app.graphql.context import Context
from app.graphql.enums import StageAction, StageStatus, TaskStatus, WorkflowStatus
from app.onboarding import rules
from app.onboarding.engine import Celebration as CelebrationData
from app.onboarding.models import Workflow as WorkflowRow
from app.onboarding.models import WorkflowStage, WorkflowTask, WorkflowTemplate
from app.onboarding.snapshot import task_state

if TYPE_CHECKING:
    from app.graphql.customers.types import Customer


Info = strawberry.Info[Context, None]


@strawberry.enum(description="What a celebration is for.")
class CelebrationKind(Enum):
    STAGE_COMPLETED = "STAGE_COMPLETED"
    BADGE_EARNED = "BADGE_EARNED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    MILESTONE_ACHIEVED = "MILESTONE_ACHIEVED"


@strawberry.type(description="A link that helps with a task.")
class HelpResource:
    title: str
    url: str
    kind: str


@strawberry.type(description="A usage event that completes a task by itself.")
class SuccessCriterion:
    event: str
    count: int


@strawberry.type(description="A badge, earned or on offer.")
class Badge:
    key: str
    name: str
    description: str
    icon: str | None
    stage_key: str | None
    awarded_at: datetime | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Badge:
        awarded = data.get("awarded_at")
        return cls(
            key=data["key"],
            name=data["name"],
            description=data.get("description") or "",
            icon=data.get("icon"),
            stage_key=data.get("stage"),
            awarded_at=datetime.fromisoformat(awarded) if isinstance(awarded, str) else None,
        )


@strawberry.type(description="What must hold before a stage unlocks.")
class UnlockConditions:
    previous_stages_complete: bool
    min_points: int | None
    days_since_signup: int | None
    tasks_completed: list[str]


@strawberry.type(description="What completing a stage earns.")
class Reward:
    points: int
    badge: Badge | None


@strawberry.type(description="One task of a customer's workflow.")
class Task:
    row: strawberry.Private[WorkflowTask]
    id: strawberry.ID
    key: str
    title: str
    description: str
    stage_key: str
    position: int
    points: int
    estimated_minutes: int
    required: bool
    depends_on: list[str]
    status: TaskStatus
    progress: int = strawberry.field(description="Percent done, 0-100.")
    failure_reason: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime

    @strawberry.field
    def help_resources(self) -> list[HelpResource]:
        return [
            HelpResource(title=h["title"], url=h["url"], kind=h.get("kind", "article"))
            for h in self.row.help_resources
        ]

    @strawberry.field
    def success_criterion(self) -> SuccessCriterion | None:
        c = self.row.success_criterion
        return SuccessCriterion(event=c["event"], count=c.get("count", 1)) if c else None

    @classmethod
    def of(cls, row: WorkflowTask, stage_key: str) -> Task:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            key=row.key,
            title=row.title,
            description=row.description,
            stage_key=stage_key,
            position=row.position,
            points=row.points,
            estimated_minutes=row.estimated_minutes,
            required=row.required,
            depends_on=list(row.depends_on),
            status=TaskStatus(row.status),
            progress=row.progress,
            failure_reason=row.failure_reason,
            attempts=row.attempts,
            started_at=row.started_at,
            completed_at=row.completed_at,
            updated_at=row.updated_at,
        )


async def tasks_of(info: Info, workflow_id: uuid.UUID) -> list[Task]:
    """Every task of a workflow with its stage key, built once per request."""
    loaders = info.context.loaders
    memo = loaders.memo.get(("tasks", workflow_id))
    if memo is None:
        stages = await loaders.stages.load(workflow_id)
        keys = {s.id: s.key for s in stages}
        rows = await loaders.tasks.load(workflow_id)
        memo = [Task.of(r, keys[r.stage_id]) for r in rows]  # type: ignore[attr-defined]
        loaders.memo[("tasks", workflow_id)] = memo
    return cast(list[Task], memo)


@strawberry.type(description="An admin override of a stage: who, when, what and why.")
class StageOverrideEntry:
    action: StageAction
    reason: str
    actor: str
    actor_role: str
    created_at: datetime


@strawberry.type(description="One stage of a customer's workflow.")
class Stage:
    row: strawberry.Private[WorkflowStage]
    id: strawberry.ID
    key: str
    name: str
    description: str
    position: int
    status: StageStatus
    unlocked_at: datetime | None
    completed_at: datetime | None

    @strawberry.field
    def unlock_conditions(self) -> UnlockConditions:
        u = self.row.unlock
        return UnlockConditions(
            previous_stages_complete=u.get("previous_stages_complete", True),
            min_points=u.get("min_points"),
            days_since_signup=u.get("days_since_signup"),
            tasks_completed=list(u.get("tasks_completed", [])),
        )

    @strawberry.field
    def reward(self) -> Reward:
        badge = self.row.reward_badge
        return Reward(points=self.row.reward_points, badge=Badge.of(badge) if badge else None)

    async def _tasks(self, info: Info) -> list[Task]:
        everything = await tasks_of(info, self.row.workflow_id)  # type: ignore[attr-defined]
        return [t for t in everything if t.stage_key == self.key]

    @strawberry.field
    async def tasks(self, info: Info) -> list[Task]:
        return await self._tasks(info)

    @strawberry.field(description="Admin overrides of this stage, oldest first.")
    async def overrides(self, info: Info) -> list[StageOverrideEntry]:
        rows = await info.context.loaders.overrides.load(self.row.workflow_id)  # type: ignore[attr-defined]
        return [
            StageOverrideEntry(
                action=StageAction(r.action),
                reason=r.reason,
                actor=r.actor,
                actor_role=r.actor_role,
                created_at=r.created_at,
            )
            for r in rows
            if r.stage_id == self.row.id  # type: ignore[attr-defined]
        ]

    @strawberry.field(description="Share of this stage's counted tasks that are done, 0-1.")
    async def progress(self, info: Info) -> float:
        tasks = await self._tasks(info)
        return rules.progress_fraction(task_state(t.row, self.key) for t in tasks)

    @classmethod
    def of(cls, row: WorkflowStage) -> Stage:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            key=row.key,
            name=row.name,
            description=row.description,
            position=row.position,
            status=StageStatus(row.status),
            unlocked_at=row.unlocked_at,
            completed_at=row.completed_at,
        )


@strawberry.type(description="A customer's onboarding workflow.")
class Workflow:
    row: strawberry.Private[WorkflowRow]
    id: strawberry.ID
    status: WorkflowStatus
    points: int
    paused: bool
    reminders_enabled: bool
    started_at: datetime
    completed_at: datetime | None
    last_activity_at: datetime
    version: int

    @strawberry.field
    def badges(self) -> list[Badge]:
        return [Badge.of(b) for b in self.row.badges]

    @strawberry.field
    async def stages(self, info: Info) -> list[Stage]:
        return [Stage.of(s) for s in await info.context.loaders.stages.load(self.row.id)]

    @strawberry.field(description="Share of the required tasks that are done, 0-1.")
    async def progress(self, info: Info) -> float:
        if self.status is WorkflowStatus.COMPLETED:
            return 1.0
        return rules.progress_fraction(
            task_state(t.row, t.stage_key) for t in await tasks_of(info, self.row.id)
        )

    @strawberry.field(description="Estimated minutes of required work left.")
    async def estimated_minutes_remaining(self, info: Info) -> int:
        if self.status is WorkflowStatus.COMPLETED:
            return 0
        return rules.minutes_remaining(
            task_state(t.row, t.stage_key) for t in await tasks_of(info, self.row.id)
        )

    @strawberry.field(description="The first stage not yet completed (the last one when all are).")
    async def current_stage(self, info: Info) -> Stage | None:
        stages = await info.context.loaders.stages.load(self.row.id)
        current = next(
            (s for s in stages if s.status != StageStatus.COMPLETED), stages[-1] if stages else None
        )
        return Stage.of(current) if current else None

    @strawberry.field
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("app.graphql.customers.types")]:
        from app.graphql.customers.types import Customer

        row = await info.context.loaders.customer.load(self.row.customer_id)  # type: ignore[attr-defined]
        assert row is not None
        return Customer.of(row)

    @strawberry.field
    async def template(self, info: Info) -> WorkflowTemplateType:
        row = await info.context.loaders.template.load(self.row.template_id)  # type: ignore[attr-defined]
        assert row is not None
        return WorkflowTemplateType.of(row)

    @classmethod
    def of(cls, row: WorkflowRow) -> Workflow:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            status=WorkflowStatus(row.status),
            points=row.points,
            paused=row.paused,
            reminders_enabled=row.reminders_enabled,
            started_at=row.started_at,
            completed_at=row.completed_at,
            last_activity_at=row.last_activity_at,
            version=row.version,
        )


@strawberry.type(name="WorkflowTemplate", description="One version of a workflow template.")
class WorkflowTemplateType:
    row: strawberry.Private[WorkflowTemplate]
    id: strawberry.ID
    key: str
    version: int
    name: str
    description: str
    is_default: bool
    created_by: str | None
    created_at: datetime

    @strawberry.field(description="The definition as stored (the YAML/JSON shape, as JSON).")
    def definition(self) -> JSON:
        return cast(JSON, self.row.definition)

    @strawberry.field
    def stage_count(self) -> int:
        return len(self.row.definition.get("stages", []))

    @strawberry.field
    def task_count(self) -> int:
        return sum(len(s.get("tasks", [])) for s in self.row.definition.get("stages", []))

    @classmethod
    def of(cls, row: WorkflowTemplate) -> WorkflowTemplateType:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            key=row.key,
            version=row.version,
            name=row.name,
            description=row.description,
            is_default=row.is_default,
            created_by=row.created_by,
            created_at=row.created_at,
        )


@strawberry.type(description="Something worth celebrating in the frontend.")
class Celebration:
    kind: CelebrationKind
    title: str
    message: str
    stage_key: str | None
    points: int
    badge: Badge | None

    @classmethod
    def of(cls, c: CelebrationData) -> Celebration:
        return cls(
            kind=CelebrationKind(c.kind),
            title=c.title,
            message=c.message,
            stage_key=c.stage_key,
            points=c.points,
            badge=Badge.of(c.badge) if c.badge else None,
        )
