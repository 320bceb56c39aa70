"""The domain vocabularies, registered once as GraphQL enums (the classes stay the domain's)."""

from __future__ import annotations

import strawberry

from app.accounts.models import Role
from app.analytics.rules import StepOutcome
from app.customers.listing import Order as CustomerOrder
from app.health.models import JobStatus, SnapshotKind
from app.health.rules import HealthLevel
from app.onboarding.states import StageAction, StageStatus, TaskAction, TaskStatus, WorkflowStatus

strawberry.enum(Role, description="What a caller may do.")
strawberry.enum(TaskStatus, description="Where a task stands.")
strawberry.enum(TaskAction, description="What a caller does to a task.")
strawberry.enum(StageStatus, description="Where a stage stands.")
strawberry.enum(StageAction, description="An admin override on a stage.")
strawberry.enum(WorkflowStatus, description="Where a workflow stands.")
strawberry.enum(
    StepOutcome,
    description=(
        "Where a customer stands on a funnel step: reached it, completed, skipped or failed it"
        " (at least once), is there and active, or is there and idle for 7 days or more."
    ),
)
strawberry.enum(HealthLevel, description="Where a score stands against the model's thresholds.")
strawberry.enum(SnapshotKind, description="Why a health snapshot was taken.")
strawberry.enum(JobStatus, description="Where a recompute job stands.")
strawberry.enum(
    CustomerOrder,
    name="CustomerOrder",
    description="Order of the customers list. The health orders put customers not scored yet "
    "last; a score that changes between two pages may move its customer across the page bound.",
)

__all__ = [
    "CustomerOrder",
    "HealthLevel",
    "JobStatus",
    "Role",
    "SnapshotKind",
    "StageAction",
    "StageStatus",
    "StepOutcome",
    "TaskAction",
    "TaskStatus",
    "WorkflowStatus",
]
