"""Onboarding queries."""

from __future__ import annotations

import strawberry

from app.graphql.enums import TaskStatus
from app.graphql.onboarding.types import Info, Stage, Task, Workflow, WorkflowTemplateType
from app.onboarding import service, templates


@strawberry.type
class Query:
    @strawberry.field(description="A customer's workflow; a CUSTOMER may omit `customerId`.")
    async def workflow(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> Workflow | None:
        viewer = info.context.viewer
        row = await info.context.loaders.workflow_by_customer.load(
            viewer.customer_scope(customer_id)
        )
        return Workflow.of(row) if row else None

    @strawberry.field(description="The stages of a customer's workflow, in order.")
    async def stages(self, info: Info, customer_id: strawberry.ID | None = None) -> list[Stage]:
        return [Stage.of(s) for s in await service.list_stages(info.context.viewer, customer_id)]

    @strawberry.field(description="The tasks of a customer's workflow, by status and stage.")
    async def tasks(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        status: list[TaskStatus] | None = None,
        stage_key: str | None = None,
    ) -> list[Task]:
        viewer = info.context.viewer
        row = await info.context.loaders.workflow_by_customer.load(
            viewer.customer_scope(customer_id)
        )
        if row is None:
            return []
        wanted = set(status or [])
        return [
            Task.of(t)
            for s in await info.context.loaders.checklist.load(row.id)
            if stage_key is None or s.key == stage_key
            for t in s.tasks
            if not wanted or t.status in wanted
        ]

    @strawberry.field(description="Every template version of the organization (operators).")
    async def workflow_templates(self, info: Info) -> list[WorkflowTemplateType]:
        rows = await templates.list_templates(info.context.viewer)
        return [WorkflowTemplateType.of(t) for t in rows]
