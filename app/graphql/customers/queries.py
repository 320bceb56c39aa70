"""Customer queries and mutations."""

from __future__ import annotations

import strawberry

from app.customers import service
from app.db import transaction
from app.graphql.customers.types import (
    CreateCustomerInput,
    Customer,
    CustomerConnection,
    CustomerFilter,
    Info,
)
from app.graphql.enums import CustomerOrder
from app.graphql.selection import selects
from app.health.rules import HealthLevel
from app.kit.ids import parse_id
from app.onboarding.states import WorkflowStatus


@strawberry.type
class Query:
    @strawberry.field(description="One customer; a CUSTOMER may omit the id for itself.")
    async def customer(self, info: Info, id: strawberry.ID | None = None) -> Customer | None:
        return Customer.of(await service.get_customer(info.context.viewer, id))

    @strawberry.field(
        description="The organization's customers (operators): by default in signup order, "
        "newest last; `orderBy: HEALTH_ASC` lists the least healthy first."
    )
    async def customers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder = CustomerOrder.CREATED_ASC,
    ) -> CustomerConnection:
        f = filter or CustomerFilter()
        page = await service.list_customers(
            info.context.viewer,
            first=first,
            after=after,
            where=service.CustomerFilter(
                user_type=f.user_type,
                acquisition_channel=f.acquisition_channel,
                workflow_status=WorkflowStatus(f.workflow_status) if f.workflow_status else None,
                search=f.search,
                signed_up_from=f.signed_up_from,
                signed_up_to=f.signed_up_to,
                template_version=f.template_version,
                stage_key=f.stage_key,
                task_key=f.task_key,
                outcome=f.outcome,
                completed_within_weeks=f.completed_within_weeks,
                active=f.active,
                health_level=HealthLevel(f.health_level).value if f.health_level else None,
                health_below=f.health_below,
                health_above=f.health_above,
            ),
            order=CustomerOrder(order_by),
            workflows=selects(info, "edges", "node", "workflow"),
        )
        return CustomerConnection.of(page, info.context)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Sign a customer up; its default workflow starts at once.")
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> Customer:
        data = service.NewCustomer(
            email=input.email,
            name=input.name,
            company=input.company,
            external_id=input.external_id,
            user_type=input.user_type,
            acquisition_channel=input.acquisition_channel,
            signed_up_at=input.signed_up_at,
            template_id=parse_id(input.template_id, what="template") if input.template_id else None,
        )
        async with transaction():
            row = await service.create_customer(info.context.viewer, data)
        return Customer.of(row)
