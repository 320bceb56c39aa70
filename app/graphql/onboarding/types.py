"""GraphQL types of onboarding: workflows, stages, tasks, templates, celebrations."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from app.graphql.context import Context
from app.graphql.enums import StageAction, StageStatus, TaskStatus, WorkflowStatus
from app.onboarding import rules
from app.onboarding.engine import Celebration as CelebrationData
from app.onboarding.models import WorkflowTemplate
from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord

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
    within_days: int | None = strawberry.field(
        default=None, description="Only events of the last N days count, when set."
    )


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


@strawberry.type(
    description="One task of a customer's workflow.",
)
class Task:
    """Resolved straight from a loaded `TaskRecord` (same attribute names, nothing copied)."""

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
    progress: int = strawberry.field(
        description="Percent done, 0-100 (set by PROGRESS; 100 once completed)."
    )
    failure_reason: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    help_resources: list[HelpResource]
    success_criterion: SuccessCriterion | None

    @staticmethod
    def of(record: TaskRecord) -> Task:
        return cast(Task, record)


@strawberry.type(description="An admin override of a stage: who, when, what and why.")
class StageOverrideEntry:
    action: StageAction
    reason: str
    actor: str
    actor_role: str
    created_at: datetime


@strawberry.type(description="One stage of a customer's workflow.")
class Stage:
    """Resolved straight from a loaded `StageRecord`, which holds its tasks."""

    id: strawberry.ID
    key: str
    name: str
    description: str
    position: int
    status: StageStatus
    unlocked_at: datetime | None
    completed_at: datetime | None
    tasks: list[Task]

    @strawberry.field
    def unlock_conditions(self, parent: strawberry.Parent[StageRecord]) -> UnlockConditions:
        u = parent.unlock
        return UnlockConditions(
            previous_stages_complete=u.get("previous_stages_complete", True),
            min_points=u.get("min_points"),
            days_since_signup=u.get("days_since_signup"),
            tasks_completed=list(u.get("tasks_completed") or []),
        )

    @strawberry.field
    def reward(self, parent: strawberry.Parent[StageRecord]) -> Reward:
        badge = parent.reward_badge
        return Reward(points=parent.reward_points, badge=Badge.of(badge) if badge else None)

    @strawberry.field(description="Admin overrides of this stage, oldest first.")
    async def overrides(
        self, info: Info, parent: strawberry.Parent[StageRecord]
    ) -> list[StageOverrideEntry]:
        rows = await info.context.loaders.overrides.load(parent.workflow_id)
        return [
            StageOverrideEntry(
                action=StageAction(r.action),
                reason=r.reason,
                actor=r.actor,
                actor_role=r.actor_role,
                created_at=r.created_at,
            )
            for r in rows
            if r.stage_id == parent.id  # type: ignore[attr-defined]
        ]

    @strawberry.field(
        description="Percent of this stage's counted tasks (the required ones) done, 0-100."
    )
    def progress(self, parent: strawberry.Parent[StageRecord]) -> float:
        return rules.progress_percent(parent.tasks)

    @staticmethod
    def of(record: StageRecord) -> Stage:
        return cast(Stage, record)


@strawberry.type(description="A customer's onboarding workflow.")
class Workflow:
    """Resolved from a `WorkflowRecord`; progress, minutes remaining and the current stage are
    the figures the engine stored with the workflow's last change."""

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
    def badges(self, parent: strawberry.Parent[WorkflowRecord]) -> list[Badge]:
        return [Badge.of(b) for b in parent.badges]

    @strawberry.field
    async def stages(self, info: Info, parent: strawberry.Parent[WorkflowRecord]) -> list[Stage]:
        return cast(list[Stage], await info.context.loaders.checklist.load(parent.id))

    # Plain attributes of the record: no resolver call per workflow of a 100-customer page.
    progress: float = strawberry.field(
        description="Percent of the required tasks that are done, 0-100."
    )
    minutes_remaining: int = strawberry.field(
        name="estimatedMinutesRemaining", description="Estimated minutes of required work left."
    )

    @strawberry.field(description="The first stage not yet completed (the last one when all are).")
    async def current_stage(
        self, info: Info, parent: strawberry.Parent[WorkflowRecord]
    ) -> Stage | None:
        stages = await info.context.loaders.checklist.load(parent.id)
        key = parent.current_stage_key
        return next((Stage.of(s) for s in stages if s.key == key), None)

    @strawberry.field
    async def customer(
        self, info: Info, parent: strawberry.Parent[WorkflowRecord]
    ) -> Annotated[Customer, strawberry.lazy("app.graphql.customers.types")]:
        from app.graphql.customers.types import Customer

        row = await info.context.loaders.customer.load(parent.customer_id)
        assert row is not None
        return Customer.of(row)

    @strawberry.field
    async def template(
        self, info: Info, parent: strawberry.Parent[WorkflowRecord]
    ) -> WorkflowTemplateType:
        row = await info.context.loaders.template.load(parent.template_id)
        assert row is not None
        return WorkflowTemplateType.of(row)

    @staticmethod
    def of(record: WorkflowRecord) -> Workflow:
        return cast(Workflow, record)


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
