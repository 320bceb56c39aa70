"""Per-request DataLoaders: nested reads cost one query per kind, whatever the size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from app.customers.models import Customer
from app.kit.tenancy import Tenant, scoped
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)


class Loaders:
    """Every loader of one request, all scoped to the same tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.customer = DataLoader(self._customers)
        self.workflow_by_customer = DataLoader(self._workflows_by_customer)
        self.stages = DataLoader(self._stages)
        self.tasks = DataLoader(self._tasks)
        self.template = DataLoader(self._templates)
        self.overrides = DataLoader(self._overrides)
        self.memo: dict[tuple[str, object], object] = {}

    async def _customers(self, ids: Sequence[uuid.UUID]) -> list[Customer | None]:
        rows = {c.id: c for c in await scoped(Customer, self.tenant).filter(id__in=list(ids))}
        return [rows.get(i) for i in ids]

    async def _workflows_by_customer(self, ids: Sequence[uuid.UUID]) -> list[Workflow | None]:
        rows = await scoped(Workflow, self.tenant).filter(customer_id__in=list(ids))
        by_customer = {w.customer_id: w for w in rows}  # type: ignore[attr-defined]
        return [by_customer.get(i) for i in ids]

    async def _stages(self, workflow_ids: Sequence[uuid.UUID]) -> list[list[WorkflowStage]]:
        grouped: dict[uuid.UUID, list[WorkflowStage]] = defaultdict(list)
        query = scoped(WorkflowStage, self.tenant).filter(workflow_id__in=list(workflow_ids))
        for row in await query.order_by("position"):
            grouped[row.workflow_id].append(row)  # type: ignore[attr-defined]
        return [grouped[i] for i in workflow_ids]

    async def _tasks(self, workflow_ids: Sequence[uuid.UUID]) -> list[list[WorkflowTask]]:
        grouped: dict[uuid.UUID, list[WorkflowTask]] = defaultdict(list)
        query = scoped(WorkflowTask, self.tenant).filter(workflow_id__in=list(workflow_ids))
        for row in await query.order_by("position"):
            grouped[row.workflow_id].append(row)  # type: ignore[attr-defined]
        return [grouped[i] for i in workflow_ids]

    async def _overrides(self, workflow_ids: Sequence[uuid.UUID]) -> list[list[StageOverride]]:
        grouped: dict[uuid.UUID, list[StageOverride]] = defaultdict(list)
        query = scoped(StageOverride, self.tenant).filter(workflow_id__in=list(workflow_ids))
        for row in await query.order_by("created_at"):
            grouped[row.workflow_id].append(row)  # type: ignore[attr-defined]
        return [grouped[i] for i in workflow_ids]

    async def _templates(self, ids: Sequence[uuid.UUID]) -> list[WorkflowTemplate | None]:
        rows = {
            t.id: t for t in await scoped(WorkflowTemplate, self.tenant).filter(id__in=list(ids))
        }
        return [rows.get(i) for i in ids]

    def prime_workflow(
        self, workflow: Workflow, stages: Sequence[WorkflowStage], tasks: Sequence[WorkflowTask]
    ) -> None:
        """Seed the loaders with rows a mutation already holds."""
        self.memo.clear()
        self.workflow_by_customer.prime(workflow.customer_id, workflow, force=True)  # type: ignore[attr-defined]
        self.stages.prime(workflow.id, sorted(stages, key=lambda s: s.position), force=True)
        self.tasks.prime(workflow.id, sorted(tasks, key=lambda t: t.position), force=True)
