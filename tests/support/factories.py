"""Builders of real rows for tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.accounts.models import Operator, Organization, Role
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.customers.service import NewCustomer, create_customer
from app.db import transaction
from app.events.models import OutboxEvent
from app.onboarding import service
from app.onboarding.records import TaskRecord
from app.onboarding.service import Change
from app.onboarding.states import TaskAction
from app.onboarding.templates import open_organization


@dataclass
class Tenant:
    """An organization with an admin and a CSM viewer."""

    org: Organization
    admin_operator: Operator
    admin: Viewer
    csm: Viewer

    @property
    def id(self) -> uuid.UUID:
        return self.org.id

    def customer_viewer(self, customer: Customer) -> Viewer:
        return Viewer(
            subject=customer.email,
            organization_id=self.org.id,
            role=Role.CUSTOMER,
            customer_id=customer.id,
        )

    async def customer(self, **fields: object) -> Customer:
        """Sign up a customer (its workflow starts on the default template)."""
        suffix = uuid.uuid4().hex[:8]
        data = NewCustomer(
            **{"email": f"c-{suffix}@example.com", "name": f"Customer {suffix}", **fields}
        )  # type: ignore[arg-type]
        async with transaction():
            return await create_customer(self.admin, data)

    async def act(
        self, customer_id: object, key: str, action: TaskAction, **kw: Any
    ) -> tuple[Change, TaskRecord]:
        """Move one of a customer's tasks as the CSM, in a transaction of its own."""
        async with transaction():
            return await service.update_task(
                self.csm, customer_id=str(customer_id), task_key=key, action=action, **kw
            )


async def last_sequence(customer_id: uuid.UUID) -> int:
    """The newest outbox sequence of a customer (0 when none)."""
    row = await OutboxEvent.filter(customer_id=customer_id).order_by("-sequence").first()
    return row.sequence if row else 0


async def make_tenant() -> Tenant:
    """A fresh organization with the default template installed."""
    slug = f"org-{uuid.uuid4().hex[:10]}"
    async with transaction():
        new = await open_organization(
            name=f"Org {slug}",
            slug=slug,
            admin_email=f"admin@{slug}.test",
            admin_name="Admin",
            created_by="test",
        )
    org = new.organization
    return Tenant(
        org=org,
        admin_operator=new.admin,
        admin=new.viewer,
        csm=Viewer(subject=f"csm@{slug}.test", organization_id=org.id, role=Role.CSM),
    )
