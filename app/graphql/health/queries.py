"""Health queries and mutations: each mutation opens the one transaction of its unit of work."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.db import transaction
from app.graphql.enums import HealthLevel
from app.graphql.health.types import (
    HealthDistributionReport,
    HealthJob,
    HealthModelVersion,
    HealthScore,
    HealthScoreDistribution,
    HealthSnapshot,
    Info,
)
from app.health import overrides, recompute, service, versions
from app.kit.clock import utcnow
from app.kit.ids import parse_id


@strawberry.input
class HealthDistributionFilter:
    user_type: str | None = None
    acquisition_channel: str | None = None


@strawberry.input(description="Which customers to recompute; all of them when empty.")
class HealthRecomputeFilter:
    user_type: str | None = None
    acquisition_channel: str | None = None
    level: HealthLevel | None = None
    customer_ids: list[strawberry.ID] | None = None


@strawberry.input
class InstallHealthModelInput:
    definition: str = strawberry.field(description="The model as YAML or JSON text.")


@strawberry.input
class OverrideHealthInput:
    customer_id: strawberry.ID
    reason: str = strawberry.field(description="Why; kept with the override and audited.")
    expires_at: datetime = strawberry.field(description="When it lapses (within 366 days).")
    score: float | None = strawberry.field(default=None, description="0-100.")
    level: HealthLevel | None = strawberry.field(
        default=None, description="Defaults to the level of `score` under the model."
    )


@strawberry.type
class Query:
    @strawberry.field(
        description="A customer's health score, explained. A CUSTOMER may read its own only "
        "when the organization's model has `customer_visible: true`."
    )
    async def health_score(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> HealthScore | None:
        view = await service.health_score(info.context.viewer, customer_id)
        return HealthScore.of(view) if view else None

    @strawberry.field(description="Snapshots of the last `days` days, oldest first, with why.")
    async def health_history(
        self, info: Info, customer_id: strawberry.ID | None = None, days: int = 30
    ) -> list[HealthSnapshot]:
        rows = await service.health_history(info.context.viewer, customer_id, days)
        return [HealthSnapshot.of(s) for s in rows]

    @strawberry.field(description="Counts per level and a histogram, overall and per segment.")
    async def health_distribution(
        self, info: Info, filter: HealthDistributionFilter | None = None
    ) -> HealthDistributionReport:
        f = filter or HealthDistributionFilter()
        overall, segments = await service.distribution(
            info.context.viewer, user_type=f.user_type, acquisition_channel=f.acquisition_channel
        )
        return HealthDistributionReport(
            overall=HealthScoreDistribution.of(overall),
            segments=[HealthScoreDistribution.of(s) for s in segments],
        )

    @strawberry.field(description="A recompute job and its progress (operators).")
    async def health_job(self, info: Info, id: strawberry.ID) -> HealthJob:
        return HealthJob.of(await recompute.get_job(info.context.viewer, id))

    @strawberry.field(description="Installed health model versions, newest first (operators).")
    async def health_models(self, info: Info) -> list[HealthModelVersion]:
        return [
            HealthModelVersion.of(r) for r in await versions.model_versions(info.context.viewer)
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Install the next version of the health model (ADMIN); it scores from "
        "the next recompute. Refused with INVALID_HEALTH_MODEL and every reason."
    )
    async def install_health_model(
        self, info: Info, input: InstallHealthModelInput
    ) -> HealthModelVersion:
        viewer = info.context.viewer
        async with transaction():
            row = await versions.install_model(
                viewer, definition=input.definition, created_by=viewer.label
            )
        return HealthModelVersion.of(row)

    @strawberry.mutation(
        description="Start a recompute of all or some customers (ADMIN); follow it with "
        "`healthJob` or the `healthJobProgress` subscription."
    )
    async def recalculate_health_scores(
        self, info: Info, filter: HealthRecomputeFilter | None = None
    ) -> HealthJob:
        f = filter or HealthRecomputeFilter()
        scope = recompute.Scope(
            user_type=f.user_type,
            acquisition_channel=f.acquisition_channel,
            level=HealthLevel(f.level) if f.level else None,
            customer_ids=tuple(parse_id(c, what="customer") for c in f.customer_ids or ()),
        )
        async with transaction():
            row = await recompute.start_job(info.context.viewer, scope)
        return HealthJob.of(row)

    @strawberry.mutation(
        description="Set a customer's score and/or level by hand until `expiresAt` (ADMIN, CSM)."
    )
    async def override_health_score(self, info: Info, input: OverrideHealthInput) -> HealthScore:
        viewer = info.context.viewer
        async with transaction():
            await overrides.set_override(
                viewer,
                customer_id=str(input.customer_id),
                score=input.score,
                level=HealthLevel(input.level) if input.level else None,
                reason=input.reason,
                expires_at=input.expires_at,
                now=utcnow(),
            )
        return await _score(info, input.customer_id)

    @strawberry.mutation(description="End a customer's override now (ADMIN, CSM).")
    async def clear_health_override(self, info: Info, customer_id: strawberry.ID) -> HealthScore:
        async with transaction():
            await overrides.clear_override(
                info.context.viewer, customer_id=str(customer_id), now=utcnow()
            )
        return await _score(info, customer_id)


async def _score(info: Info, customer_id: strawberry.ID) -> HealthScore:
    view = await service.health_score(info.context.viewer, customer_id)
    assert view is not None
    return HealthScore.of(view)
