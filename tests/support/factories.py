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


OPERATORS: dict[uuid.UUID, dict[Role, str]] = {}
"""The admin and CSM emails of each organization made by `make_tenant`: tokens minted for a
role of it name a real operator (tokens are checked against the database)."""


async def operator_subject(organization_id: uuid.UUID, role: Role) -> str:
    """The email of an operator of `role` in the organization (created when there is none),
    for tokens that must name a real operator."""
    found = await Operator.filter(organization_id=organization_id, role=role).first()
    if found is None:
        found = await Operator.create(
            organization_id=organization_id,
            email=f"{role.value.lower()}-{uuid.uuid4().hex[:6]}@example.com",
            name=role.value,
            role=role,
        )
    return found.email


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
    csm = await Operator.create(
        organization_id=org.id, email=f"csm@{slug}.test", name="CSM", role=Role.CSM
    )
    OPERATORS[org.id] = {Role.ADMIN: new.admin.email, Role.CSM: csm.email}
    return Tenant(
        org=org,
        admin_operator=new.admin,
        admin=new.viewer,
        csm=Viewer(subject=csm.email, organization_id=org.id, role=Role.CSM),
    )
