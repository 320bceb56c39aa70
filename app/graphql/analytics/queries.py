"""Analytics queries."""

from __future__ import annotations

import strawberry

from app.analytics import service
from app.graphql.analytics.types import (
    AnalyticsFilter,
    Info,
    OnboardingAnalytics,
    filter_args,
)


@strawberry.type
class Query:
    @strawberry.field(description="Onboarding analytics from the rollups (operators).")
    def analytics(self, info: Info, filter: AnalyticsFilter | None = None) -> OnboardingAnalytics:
        run = service.analytics(
            info.context.viewer, **filter_args(filter), keep=info.context.keep_reports
        )
        return OnboardingAnalytics(run=run, generated_at=run.now)
