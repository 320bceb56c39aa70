"""GraphQL types of customers."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry

from app.customers.listing import EXACT_COUNT_LIMIT, Count, CustomerPage, ListedCustomer
from app.customers.models import Customer as CustomerRow
from app.graphql.context import Context
from app.graphql.enums import HealthLevel, StepOutcome, WorkflowStatus
from app.onboarding.records import WorkflowRecord

if TYPE_CHECKING:
    from app.graphql.health.types import HealthScore
    from app.graphql.milestones.types import MilestoneProgress
    from app.graphql.onboarding.types import Workflow

Info = strawberry.Info[Context, None]


class _NotRead:
    """A customer whose workflow was not read with it (its resolver asks the loader)."""


NOT_READ = _NotRead()


@strawberry.type(description="One of the organization's customers.")
class Customer:
    row: strawberry.Private[CustomerRow | ListedCustomer]
    id: strawberry.ID
    email: str
    name: str
    company: str | None
    external_id: str | None
    user_type: str
    acquisition_channel: str
    tags: list[str]
    signed_up_at: datetime
    created_at: datetime
    listed_workflow: strawberry.Private[WorkflowRecord | _NotRead | None] = NOT_READ

    @strawberry.field
    def workflow(
        self, info: Info
    ) -> Annotated[Workflow, strawberry.lazy("app.graphql.onboarding.types")] | None:
        # A list page reads its customers' workflows with its rows: answered here without an
        # awaitable per customer (graphql-core then completes the whole page synchronously).
        # Otherwise the loader's awaitable, which graphql-core awaits for a sync resolver too.
        if not isinstance(self.listed_workflow, _NotRead):
            return cast("Workflow | None", self.listed_workflow)
        return cast("Workflow | None", self._loaded_workflow(info))

    async def _loaded_workflow(self, info: Info) -> WorkflowRecord | None:
        return await info.context.loaders.workflow_by_customer.load(self.row.id)

    @strawberry.field(
        description="Health score, level, parts and risks; null until first computed. "
        "A CUSTOMER sees it only when the organization shows scores to customers."
    )
    async def health(
        self, info: Info
    ) -> Annotated[HealthScore, strawberry.lazy("app.graphql.health.types")] | None:
        from app.graphql.health.types import HealthScore
        from app.health.service import check_visible

        await check_visible(info.context.viewer, self.row.id)
        view = await info.context.loaders.health.load(self.row.id)
        return HealthScore.of(view) if view else None

    @strawberry.field(description="Milestones with progress and when each was achieved.")
    async def milestones(
        self, info: Info
    ) -> list[Annotated[MilestoneProgress, strawberry.lazy("app.graphql.milestones.types")]]:
        from app.graphql.milestones.types import MilestoneProgress

        views = await info.context.loaders.milestones.load(self.row.id)
        return [MilestoneProgress.of(v) for v in views]

    @classmethod
    def of(
        cls,
        row: CustomerRow | ListedCustomer,
        workflow: WorkflowRecord | _NotRead | None = NOT_READ,
    ) -> Customer:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            company=row.company,
            external_id=row.external_id,
            user_type=row.user_type,
            acquisition_channel=row.acquisition_channel,
            tags=list(row.tags),
            signed_up_at=row.signed_up_at,
            created_at=row.created_at,
            listed_workflow=workflow,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, page: Any) -> PageInfo:
        """The page info of a page of rows (`Page` or `CustomerPage`)."""
        return cls(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        )


@strawberry.type
class CustomerEdge:
    cursor: str
    node: Customer


@strawberry.type(description="A page of customers (Relay connection; `first` is capped at 100).")
class CustomerConnection:
    page: strawberry.Private[CustomerPage]
    counted: strawberry.Private[list[asyncio.Future[Count]]]
    edges: list[CustomerEdge]
    page_info: PageInfo

    async def _count(self) -> Count:
        """One count per connection, however many of its count fields are asked for."""
        if not self.counted:
            self.counted.append(asyncio.ensure_future(self.page.count()))
        return await self.counted[0]

    @strawberry.field(
        description="How many customers match the filter, counted only when asked: exact up to "
        f"{EXACT_COUNT_LIMIT:,}, above that the planner's estimate (see `totalCountIsEstimate`)."
    )
    async def total_count(self) -> int:
        return (await self._count()).value

    @strawberry.field(description="Whether `totalCount` is an estimate (above the exact limit).")
    async def total_count_is_estimate(self) -> bool:
        return (await self._count()).estimated

    @classmethod
    def of(cls, page: CustomerPage, context: Context) -> CustomerConnection:
        """The connection of `page`; the workflows the page read prime the request's loader."""
        listed = page.workflows
        if listed is not None:
            context.loaders.workflow_by_customer.prime_many(listed)
        return cls(
            page=page,
            counted=[],
            edges=[
                CustomerEdge(
                    cursor=c, node=Customer.of(r, NOT_READ if listed is None else listed[r.id])
                )
                for r, c in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo.of(page),
        )


@strawberry.input(
    description="Which customers to list; analytics figures hand out theirs as `drillDown`."
)
class CustomerFilter:
    user_type: str | None = None
    acquisition_channel: str | None = None
    workflow_status: WorkflowStatus | None = None
    search: str | None = None
    signed_up_from: date | None = strawberry.field(default=None, description="First signup day.")
    signed_up_to: date | None = strawberry.field(default=None, description="Last signup day.")
    template_version: int | None = None
    stage_key: str | None = strawberry.field(default=None, description="With `outcome`.")
    task_key: str | None = strawberry.field(
        default=None, description="With `outcome`; omit for the stage itself."
    )
    outcome: StepOutcome | None = strawberry.field(
        default=None, description="Where the customer stands on the step `stageKey`/`taskKey`."
    )
    completed_within_weeks: int | None = strawberry.field(
        default=None, description="Completed by the end of week W+k after its signup week W."
    )
    active: bool | None = strawberry.field(
        default=None, description="Activity within the last 7 days (as analytics counts it)."
    )
    health_level: HealthLevel | None = strawberry.field(
        default=None, description="Current health level (an override's when one is active)."
    )
    health_below: float | None = strawberry.field(
        default=None, description="Current health score below this (0-100, exclusive)."
    )
    health_above: float | None = strawberry.field(
        default=None, description="Current health score above this (0-100, exclusive)."
    )


@strawberry.input
class CreateCustomerInput:
    email: str
    name: str
    company: str | None = None
    external_id: str | None = None
    user_type: str = "standard"
    acquisition_channel: str = "direct"
    signed_up_at: datetime | None = None
    template_id: strawberry.ID | None = None
