"""Onboarding mutations: each opens the one transaction of its unit of work."""

from __future__ import annotations

import contextlib
from functools import partial

import strawberry

from app.db import may_commit_alone, transaction
from app.graphql.enums import StageAction, TaskAction
from app.graphql.onboarding.types import (
    Badge,
    Celebration,
    Info,
    Stage,
    Task,
    Workflow,
    WorkflowTemplateType,
)
from app.onboarding import service, templates
from app.onboarding.service import Change


@strawberry.input
class UpdateTaskInput:
    action: TaskAction
    task_id: strawberry.ID | None = strawberry.field(default=None, description="The task's id, or…")
    task_key: str | None = strawberry.field(default=None, description="…its key in the workflow.")
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="With `taskKey`: whose workflow (a CUSTOMER may omit it)."
    )
    progress: int | None = strawberry.field(
        default=None, description="PROGRESS: percent done, 0-100."
    )
    reason: str | None = strawberry.field(default=None, description="FAIL: what went wrong.")


@strawberry.type(description="Everything a frontend needs to redraw after a task update.")
class UpdateTaskPayload:
    task: Task
    workflow: Workflow
    unlocked_tasks: list[Task]
    unlocked_stages: list[Stage]
    completed_stages: list[Stage]
    points_awarded: int
    badges_awarded: list[Badge]
    celebrations: list[Celebration]
    workflow_completed: bool


@strawberry.input
class UpdateStageInput:
    customer_id: strawberry.ID
    stage_key: str
    action: StageAction
    reason: str = strawberry.field(description="Why; kept in the audit trail.")


@strawberry.input
class WorkflowSettingsInput:
    customer_id: strawberry.ID | None = None
    paused: bool | None = None
    reminders_enabled: bool | None = None


@strawberry.input
class InstallTemplateInput:
    definition: str = strawberry.field(description="The template as YAML or JSON text.")
    make_default: bool = False


def _prime(info: Info, change: Change) -> None:
    loaded = change.loaded
    info.context.loaders.prime_workflow(loaded.workflow, list(loaded.stages.values()))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Move a task: START, PROGRESS, COMPLETE, SKIP, FAIL or RETRY.")
    async def update_task(self, info: Info, input: UpdateTaskInput) -> UpdateTaskPayload:
        move = partial(
            service.update_task,
            info.context.viewer,
            action=input.action,
            task_id=input.task_id,
            task_key=input.task_key,
            customer_id=input.customer_id,
            progress=input.progress,
            reason=input.reason,
        )
        moved = None
        if may_commit_alone():
            # one read and one guarded write, each its own transaction (2 round trips instead
            # of BEGIN, lock, read, write, COMMIT); if another change came in between, again
            # under the row lock
            with contextlib.suppress(service.Stale):
                moved = await move(optimistic=True)
        if moved is None:
            async with transaction():
                moved = await move()
        change, row = moved
        _prime(info, change)
        out = change.outcome
        return UpdateTaskPayload(
            task=Task.of(row),
            workflow=Workflow.of(change.workflow),
            unlocked_tasks=[Task.of(t) for t in change.tasks(out.unlocked_tasks)],
            unlocked_stages=[Stage.of(s) for s in change.stages(out.unlocked_stages)],
            completed_stages=[Stage.of(s) for s in change.stages(out.completed_stages)],
            points_awarded=out.points_awarded,
            badges_awarded=[Badge.of(b) for b in out.badges_awarded],
            celebrations=[Celebration.of(c) for c in out.celebrations],
            workflow_completed=out.workflow_completed,
        )

    @strawberry.mutation(
        description="Admin override on a stage: UNLOCK, COMPLETE or RESET, with a reason."
    )
    async def update_stage(self, info: Info, input: UpdateStageInput) -> Stage:
        async with transaction():
            change, row = await service.update_stage(
                info.context.viewer,
                customer_id=input.customer_id,
                stage_key=input.stage_key,
                action=input.action,
                reason=input.reason,
            )
        _prime(info, change)
        return Stage.of(row)

    @strawberry.mutation(description="Pause or resume a workflow, or turn its reminders on or off.")
    async def update_workflow_settings(self, info: Info, input: WorkflowSettingsInput) -> Workflow:
        async with transaction():
            row = await service.update_settings(
                info.context.viewer,
                customer_id=input.customer_id,
                paused=input.paused,
                reminders_enabled=input.reminders_enabled,
            )
        return Workflow.of(row)

    @strawberry.mutation(
        description="Install a template definition as the next version of its key (admin)."
    )
    async def install_workflow_template(
        self, info: Info, input: InstallTemplateInput
    ) -> WorkflowTemplateType:
        viewer = info.context.viewer
        async with transaction():
            row = await templates.install_template(
                viewer,
                definition=input.definition,
                make_default=input.make_default,
                created_by=viewer.subject,
            )
        return WorkflowTemplateType.of(row)
