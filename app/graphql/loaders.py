"""Per-request DataLoaders: nested reads cost one query per kind, whatever the size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from app.customers.models import Customer
from app.errors import NotFound
from app.health import service as health
from app.kit.tenancy import Tenant, scoped
from app.milestones import service as milestones
from app.onboarding import records
from app.onboarding.models import StageOverride, WorkflowTemplate
from app.onboarding.records import StageRecord, WorkflowRecord

M = TypeVar("M", bound=Model)


class Loaders:
    """Every loader of one request, all scoped to the same tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.customer = DataLoader(self._customers)
        self.workflow_by_customer = DataLoader(self._workflows_by_customer)
        self.checklist = DataLoader(self._checklists)
        self.template = DataLoader(self._templates)
        self.overrides = DataLoader(self._overrides)
        self.health = DataLoader(self._health)
        self.health_delta_7d = DataLoader(self._delta_7d)
        self.health_delta_30d = DataLoader(self._delta_30d)
        self.milestones = DataLoader(self._milestones)
        self.memo: dict[tuple[str, object], object] = {}

    async def customer_of(self, customer_id: uuid.UUID) -> Customer:
        """The tenant's customer with this id, or NOT_FOUND (as `customer(id)` answers)."""
        row = await self.customer.load(customer_id)
        if row is None:
            raise NotFound(f"No customer with id {customer_id}.", customer=str(customer_id))
        return row

    async def workflow_of(
        self, customer_id: uuid.UUID, *, checklist: bool
    ) -> WorkflowRecord | None:
        """The tenant's customer's workflow (None before it starts), or NOT_FOUND, with its
        stages and tasks when `checklist`: one statement, which primes the loaders those
        fields read from."""
        got = await records.customer_workflow(
            self.tenant.organization_id, customer_id, checklist=checklist
        )
        if not got.found:
            raise NotFound(f"No customer with id {customer_id}.", customer=str(customer_id))
        if got.workflow is not None:
            self.workflow_by_customer.prime(customer_id, got.workflow)
            if got.stages is not None:
                self.checklist.prime(got.workflow.id, got.stages)
        return got.workflow

    async def _customers(self, ids: Sequence[uuid.UUID]) -> list[Customer | None]:
        return await self._by_key(Customer, "id", ids)

    async def _workflows_by_customer(self, ids: Sequence[uuid.UUID]) -> list[WorkflowRecord | None]:
        return await records.workflows_by_customer(self.tenant.organization_id, ids)

    async def _templates(self, ids: Sequence[uuid.UUID]) -> list[WorkflowTemplate | None]:
        return await self._by_key(WorkflowTemplate, "id", ids)

    async def _checklists(self, workflow_ids: Sequence[uuid.UUID]) -> list[list[StageRecord]]:
        return await records.checklists(self.tenant.organization_id, workflow_ids)

    async def _overrides(self, workflow_ids: Sequence[uuid.UUID]) -> list[list[StageOverride]]:
        return await self._by_workflow(StageOverride, workflow_ids, order="created_at")

    async def _health(self, ids: Sequence[uuid.UUID]) -> list[health.HealthView | None]:
        found = await health.views_for(self.tenant, ids)
        return [found.get(i) for i in ids]

    async def _delta_7d(self, ids: Sequence[uuid.UUID]) -> list[float | None]:
        found = await health.deltas(self.tenant, ids, 7)
        return [found.get(i) for i in ids]

    async def _delta_30d(self, ids: Sequence[uuid.UUID]) -> list[float | None]:
        found = await health.deltas(self.tenant, ids, 30)
        return [found.get(i) for i in ids]

    async def _milestones(self, ids: Sequence[uuid.UUID]) -> list[list[milestones.MilestoneView]]:
        found = await milestones.progress_of(self.tenant, ids)
        return [found.get(i, []) for i in ids]

    async def _by_key(
        self, model: type[M], field: str, keys: Sequence[uuid.UUID]
    ) -> list[M | None]:
        """One row per key (or None), in one query."""
        rows = await scoped(model, self.tenant).filter(**{f"{field}__in": list(keys)})
        found = {getattr(r, field): r for r in rows}
        return [found.get(k) for k in keys]

    async def _by_workflow(
        self, model: type[M], workflow_ids: Sequence[uuid.UUID], *, order: str
    ) -> list[list[M]]:
        """Every row of each workflow, ordered, in one query."""
        grouped: dict[uuid.UUID, list[M]] = defaultdict(list)
        query = scoped(model, self.tenant).filter(workflow_id__in=list(workflow_ids))
        for row in await query.order_by(order):
            grouped[row.workflow_id].append(row)  # type: ignore[attr-defined]
        return [grouped[i] for i in workflow_ids]

    def prime_workflow(self, workflow: WorkflowRecord, stages: Sequence[StageRecord]) -> None:
        """Seed the loaders with the records a mutation already holds."""
        self.workflow_by_customer.prime(workflow.customer_id, workflow, force=True)
        self.checklist.prime(workflow.id, sorted(stages, key=lambda s: s.position), force=True)
