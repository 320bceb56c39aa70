"""Milestone queries and the install mutation (one transaction per mutation)."""

from __future__ import annotations

import strawberry

from app.db import transaction
from app.graphql.milestones.types import Info, MilestoneProgress, MilestoneSet, MilestoneStats
from app.milestones import service, stats


@strawberry.input
class InstallMilestoneSetInput:
    definition: str = strawberry.field(description="The set as YAML or JSON text.")


@strawberry.type
class Query:
    @strawberry.field(
        description="A customer's milestones with progress and when each was achieved "
        "(a CUSTOMER may omit `customerId`)."
    )
    async def milestones(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> list[MilestoneProgress]:
        views = await service.milestones_for(info.context.viewer, customer_id)
        return [MilestoneProgress.of(v) for v in views]

    @strawberry.field(description="Installed milestone set versions, newest first (operators).")
    async def milestone_sets(self, info: Info) -> list[MilestoneSet]:
        return [MilestoneSet.of(r) for r in await service.list_sets(info.context.viewer)]

    @strawberry.field(
        description="Per milestone: achievement rate and days from signup to achieve it "
        "(median, p90), overall and by user type and acquisition channel (operators)."
    )
    async def milestone_stats(self, info: Info) -> list[MilestoneStats]:
        return [MilestoneStats.of(s) for s in await stats.milestone_stats(info.context.viewer)]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Install the next version of the organization's milestones (ADMIN); it is "
        "evaluated from the next event on. Refused with INVALID_MILESTONES and every reason."
    )
    async def install_milestone_set(
        self, info: Info, input: InstallMilestoneSetInput
    ) -> MilestoneSet:
        viewer = info.context.viewer
        async with transaction():
            row = await service.install_set(
                viewer, definition=input.definition, created_by=viewer.label
            )
        return MilestoneSet.of(row)
