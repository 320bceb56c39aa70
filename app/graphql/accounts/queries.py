"""Who am I."""

from __future__ import annotations

import strawberry

from app.accounts.models import Role as RoleValue
from app.accounts.service import get_organization
from app.graphql.accounts.types import Organization
from app.graphql.customers.types import Customer, Info
from app.graphql.enums import Role


@strawberry.type(description="The authenticated caller.")
class Viewer:
    subject: str
    role: Role
    organization: Organization
    customer: Customer | None


@strawberry.type
class Query:
    @strawberry.field(
        description="Who is asking: role, organization, and the customer for CUSTOMER."
    )
    async def viewer(self, info: Info) -> Viewer:
        viewer = info.context.viewer
        org = await get_organization(viewer.organization_id)
        customer = None
        if viewer.role is RoleValue.CUSTOMER and viewer.customer_id:
            row = await info.context.loaders.customer.load(viewer.customer_id)
            customer = Customer.of(row) if row else None
        return Viewer(
            subject=viewer.subject,
            role=viewer.role,
            organization=Organization.of(org),
            customer=customer,
        )
