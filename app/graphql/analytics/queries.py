"""Analytics queries."""

from __future__ import annotations

import strawberry

from app.analytics import service
from app.graphql.analytics.types import AnalyticsFilter, Info, OnboardingAnalytics


@strawberry.type
class Query:
    @strawberry.field(description="Onboarding analytics from the rollups (operators).")
    def analytics(self, info: Info, filter: AnalyticsFilter | None = None) -> OnboardingAnalytics:
        f = filter or AnalyticsFilter()
        run = service.analytics(
            info.context.viewer,
            start=f.from_,
            end=f.to,
            user_type=f.user_type,
            channel=f.acquisition_channel,
            signup_cohort=f.signup_cohort,
            template_version=f.template_version,
        )
        return OnboardingAnalytics(run=run, generated_at=run.now)
