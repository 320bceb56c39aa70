"""Onboarding queries."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode

from app.graphql.enums import TaskStatus
from app.graphql.onboarding.types import Info, Stage, Task, Workflow, WorkflowTemplateType
from app.onboarding import service, templates

CHECKLIST_FIELDS = frozenset({"stages", "currentStage"})


def asks_for(info: Info, names: frozenset[str]) -> bool:
    """Whether the field being resolved selects any of `names` directly (through fragments)."""
    raw = info._raw_info
    fragments = raw.fragments

    def selects(selections: Iterable[SelectionNode]) -> bool:
        for node in selections:
            if isinstance(node, FieldNode):
                if node.name.value in names:
                    return True
            elif isinstance(node, InlineFragmentNode):
                if selects(node.selection_set.selections):
                    return True
            elif isinstance(node, FragmentSpreadNode):
                fragment = fragments.get(node.name.value)
                if fragment is not None and selects(fragment.selection_set.selections):
                    return True
        return False

    return any(
        node.selection_set is not None and selects(node.selection_set.selections)
        for node in raw.field_nodes
    )


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
        checklist = asks_for(info, CHECKLIST_FIELDS)
        row = await info.context.loaders.workflow_of(cid, checklist=checklist)
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
        row = await info.context.loaders.workflow_of(cid, checklist=True)
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
