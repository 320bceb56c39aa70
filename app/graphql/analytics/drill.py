"""The drill-down every analytics figure carries: a filter for `customers(filter:)`."""

from __future__ import annotations

from datetime import date

import strawberry

from app.customers.service import CustomerFilter as Where
from app.graphql.enums import StepOutcome, WorkflowStatus


@strawberry.type(
    description="Pass these fields as `customers(filter: …)` to list the customers a figure counts."
)
class CustomerDrillDown:
    user_type: str | None
    acquisition_channel: str | None
    workflow_status: WorkflowStatus | None
    signed_up_from: date | None
    signed_up_to: date | None
    template_version: int | None
    stage_key: str | None
    task_key: str | None
    outcome: StepOutcome | None
    completed_within_weeks: int | None
    active: bool | None

    @classmethod
    def of(cls, where: Where) -> CustomerDrillDown:
        return cls(
            user_type=where.user_type,
            acquisition_channel=where.acquisition_channel,
            workflow_status=where.workflow_status,
            signed_up_from=where.signed_up_from,
            signed_up_to=where.signed_up_to,
            template_version=where.template_version,
            stage_key=where.stage_key,
            task_key=where.task_key,
            outcome=where.outcome,
            completed_within_weeks=where.completed_within_weeks,
            active=where.active,
        )
