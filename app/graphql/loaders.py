"""Per-request DataLoaders: nested reads cost one query per kind, whatever the size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property, partial
from typing import TypeVar

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from app.customers.models import Customer
from app.errors import NotFound
from app.health import service as health
from app.health.service import HealthView
from app.kit.tenancy import Tenant, scoped
from app.milestones import service as milestones
from app.milestones.service import MilestoneView
from app.onboarding import records
from app.onboarding.models import StageOverride, WorkflowTemplate
from app.onboarding.records import StageRecord, WorkflowRecord

M = TypeVar("M", bound=Model)


class Loaders:
    """Every loader of one request, all scoped to the same tenant; each made when first used.

    A loader's batch function holds the tenant, never the Loaders: no reference cycle, so
    what a request loaded (or primed) is freed when the request ends, not by the cycle
    collector.
    """

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.memo: dict[tuple[str, object], object] = {}
        self.primed: list[tuple[WorkflowRecord, Sequence[StageRecord]]] = []
        """Records `prime_workflow` got before the loaders they seed were made: given to
        those loaders when they are made (most mutations' answers read neither)."""

    @cached_property
    def customer(self) -> DataLoader[uuid.UUID, Customer | None]:
        return DataLoader(partial(_by_key, self.tenant, Customer, "id"))

    @cached_property
    def workflow_by_customer(self) -> DataLoader[uuid.UUID, WorkflowRecord | None]:
        loader: DataLoader[uuid.UUID, WorkflowRecord | None] = DataLoader(
            partial(_workflows_by_customer, self.tenant)
        )
        for workflow, _ in self.primed:
            _prime_workflow(loader, workflow)
        return loader

    @cached_property
    def checklist(self) -> DataLoader[uuid.UUID, list[StageRecord]]:
        loader: DataLoader[uuid.UUID, list[StageRecord]] = DataLoader(
            partial(_checklists, self.tenant)
        )
        for workflow, stages in self.primed:
            _prime_checklist(loader, workflow, stages)
        return loader

    @cached_property
    def template(self) -> DataLoader[uuid.UUID, WorkflowTemplate | None]:
        return DataLoader(partial(_by_key, self.tenant, WorkflowTemplate, "id"))

    @cached_property
    def overrides(self) -> DataLoader[uuid.UUID, list[StageOverride]]:
        return DataLoader(partial(_by_workflow, self.tenant, StageOverride, order="created_at"))

    @cached_property
    def health(self) -> DataLoader[uuid.UUID, HealthView | None]:
        return DataLoader(partial(_health, self.tenant))

    @cached_property
    def health_delta_7d(self) -> DataLoader[uuid.UUID, float | None]:
        return DataLoader(partial(_deltas, self.tenant, 7))

    @cached_property
    def health_delta_30d(self) -> DataLoader[uuid.UUID, float | None]:
        return DataLoader(partial(_deltas, self.tenant, 30))

    @cached_property
    def milestones(self) -> DataLoader[uuid.UUID, list[MilestoneView]]:
        return DataLoader(partial(_milestones, self.tenant))

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

    def prime_workflow(self, workflow: WorkflowRecord, stages: Sequence[StageRecord]) -> None:
        """Seed the loaders with the records a mutation already holds: those made already
        now, the others when they are made."""
        made = self.__dict__
        if "workflow_by_customer" in made:
            _prime_workflow(self.workflow_by_customer, workflow)
        if "checklist" in made:
            _prime_checklist(self.checklist, workflow, stages)
        self.primed.append((workflow, stages))


def _prime_workflow(
    loader: DataLoader[uuid.UUID, WorkflowRecord | None], workflow: WorkflowRecord
) -> None:
    loader.prime(workflow.customer_id, workflow, force=True)


def _prime_checklist(
    loader: DataLoader[uuid.UUID, list[StageRecord]],
    workflow: WorkflowRecord,
    stages: Sequence[StageRecord],
) -> None:
    loader.prime(workflow.id, sorted(stages, key=lambda s: s.position), force=True)


async def _workflows_by_customer(
    tenant: Tenant, ids: Sequence[uuid.UUID]
) -> list[WorkflowRecord | None]:
    return await records.workflows_by_customer(tenant.organization_id, ids)


async def _checklists(tenant: Tenant, workflow_ids: Sequence[uuid.UUID]) -> list[list[StageRecord]]:
    return await records.checklists(tenant.organization_id, workflow_ids)


async def _health(tenant: Tenant, ids: Sequence[uuid.UUID]) -> list[HealthView | None]:
    found = await health.views_for(tenant, ids)
    return [found.get(i) for i in ids]


async def _deltas(tenant: Tenant, days: int, ids: Sequence[uuid.UUID]) -> list[float | None]:
    found = await health.deltas(tenant, ids, days)
    return [found.get(i) for i in ids]


async def _milestones(tenant: Tenant, ids: Sequence[uuid.UUID]) -> list[list[MilestoneView]]:
    found = await milestones.progress_of(tenant, ids)
    return [found.get(i, []) for i in ids]


async def _by_key(
    tenant: Tenant, model: type[M], field: str, keys: Sequence[uuid.UUID]
) -> list[M | None]:
    """One row per key (or None), in one query."""
    rows = await scoped(model, tenant).filter(**{f"{field}__in": list(keys)})
    found = {getattr(r, field): r for r in rows}
    return [found.get(k) for k in keys]


async def _by_workflow(
    tenant: Tenant, model: type[M], workflow_ids: Sequence[uuid.UUID], *, order: str
) -> list[list[M]]:
    """Every row of each workflow, ordered, in one query."""
    grouped: dict[uuid.UUID, list[M]] = defaultdict(list)
    query = scoped(model, tenant).filter(workflow_id__in=list(workflow_ids))
    for row in await query.order_by(order):
        grouped[row.workflow_id].append(row)  # type: ignore[attr-defined]
    return [grouped[i] for i in workflow_ids]
