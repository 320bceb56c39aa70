"""Onboarding queries."""

from __future__ import annotations

import strawberry

from app.graphql.enums import TaskStatus
from app.graphql.onboarding.types import Info, Stage, Task, Workflow, WorkflowTemplateType
from app.onboarding import service, templates


@strawberry.type
class Query:
    @strawberry.field(
        description="A customer's workflow (null before it starts); a CUSTOMER may omit "
        "`customerId`. NOT_FOUND for a customer that is not in your organization."
    )
    async def workflow(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> Workflow | None:
        cid = info.context.viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        row = await info.context.loaders.workflow_by_customer.load(cid)
        return Workflow.of(row) if row else None

    @strawberry.field(
        description="The stages of a customer's workflow, in order; NOT_FOUND for an "
        "unknown customer."
    )
    async def stages(self, info: Info, customer_id: strawberry.ID | None = None) -> list[Stage]:
        cid = info.context.viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        return [Stage.of(s) for s in await service.list_stages(info.context.viewer, cid)]

    @strawberry.field(
        description="The tasks of a customer's workflow, by status and stage; NOT_FOUND for "
        "an unknown customer."
    )
    async def tasks(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        status: list[TaskStatus] | None = None,
        stage_key: str | None = None,
    ) -> list[Task]:
        cid = info.context.viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        row = await info.context.loaders.workflow_by_customer.load(cid)
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
