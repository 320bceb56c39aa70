"""The live dashboard subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from app.analytics import live, service
from app.graphql.analytics.types import (
    AnalyticsFilter,
    FunnelStep,
    Info,
    SegmentFigures,
    filter_args,
)


@strawberry.type(description="Overview and funnel counts of a dashboard, pushed when they change.")
class DashboardMetrics:
    generated_at: datetime
    overview: SegmentFigures
    funnel: list[FunnelStep]
    stall_tasks: list[FunnelStep]

    @classmethod
    def of(cls, m: live.Metrics) -> DashboardMetrics:
        return cls(
            generated_at=m.generated_at,
            overview=SegmentFigures.of(m.overview),
            funnel=[FunnelStep.of(s) for s in m.funnel.stages],
            stall_tasks=[FunnelStep.of(s) for s in m.funnel.stall_tasks],
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live overview and funnel counts (operators): the current figures at once, "
        "then whenever they change, at most one message per second per organization and "
        "filter; computed once per organization and filter for all its subscribers."
    )
    async def dashboard_metrics(
        self, info: Info, filter: AnalyticsFilter | None = None
    ) -> AsyncGenerator[DashboardMetrics, None]:
        run = service.analytics(info.context.viewer, **filter_args(filter))
        async for metrics in info.context.live.subscribe(run.scope):
            yield DashboardMetrics.of(metrics)
