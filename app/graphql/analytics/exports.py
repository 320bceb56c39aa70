"""The exportAnalytics mutation and the exportJob query (ADMIN)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry

from app.analytics import exports, render, service
from app.analytics.models import ExportJob as ExportRow
from app.db import transaction
from app.errors import DomainError, ValidationFailed
from app.graphql.analytics.types import AnalyticsFilter, Info, TrendGranularity, filter_args
from app.kit.clock import utcnow

_STEP = """stageKey taskKey name reached completed skipped failed activeHere dropped conversion
  completionRate dropOffRate medianHours p90Hours"""
_DRILL = """drillDown { userType acquisitionChannel workflowStatus signedUpFrom signedUpTo
  templateVersion stageKey taskKey outcome completedWithinWeeks active }"""
_FIGURES = f"""label customers started completed completionRate inFlight activeLast7Days
  medianHoursToComplete p90HoursToComplete pointsAwarded badgesAwarded {_DRILL}"""
EXPORT_DOCUMENT = f"""query Export($filter: AnalyticsFilter, $granularity: TrendGranularity!,
  $overview: Boolean!, $funnel: Boolean!, $cohorts: Boolean!, $trends: Boolean!,
  $forecast: Boolean!, $recommendations: Boolean!) {{
  analytics(filter: $filter) {{
    generatedAt
    filter {{ from to userType acquisitionChannel signupCohort templateVersion }}
    overview @include(if: $overview) {{ {_FIGURES} }}
    funnel @include(if: $funnel) {{
      stages {{ {_STEP} {_DRILL} tasks {{ {_STEP} {_DRILL} }} }}
      stallTasks {{ {_STEP} }} }}
    cohorts @include(if: $cohorts) {{
      byUserType {{ {_FIGURES} }} byAcquisitionChannel {{ {_FIGURES} }}
      bySignupWeek {{ week customers completedByWeek completedByWeekRate {_DRILL} }} }}
    trends(granularity: $granularity) @include(if: $trends) {{ granularity
      points {{ start signups completions completionRate medianHoursToComplete }}
      changes {{ metric current previous absoluteChange relativeChange }} }}
    forecast @include(if: $forecast) {{ inFlight probabilityWithin30Days
      expectedCompletionsWithin30Days expectedDate completedSample censoredSample method
      stages {{ stageKey name inFlight completedSample medianDaysInStage
        probabilityStageWithin30Days probabilityWithin30Days expectedCompletionsWithin30Days }}
      curve {{ days stillOnboarding atRisk completed censored }} }}
    recommendations @include(if: $recommendations) {{
      kind message evidence {{ label value }} effectSize sampleSize {_DRILL} }}
  }}
}}"""


@strawberry.enum(description="How an export is written.")
class ExportFormat(StrEnum):
    CSV = "CSV"
    JSON = "JSON"
    PDF = "PDF"


@strawberry.enum(description="A part of the analytics to export.")
class AnalyticsSection(StrEnum):
    OVERVIEW = "OVERVIEW"
    FUNNEL = "FUNNEL"
    COHORTS = "COHORTS"
    TRENDS = "TRENDS"
    FORECAST = "FORECAST"
    RECOMMENDATIONS = "RECOMMENDATIONS"
    CUSTOMERS = "CUSTOMERS"


@strawberry.input
class ExportAnalyticsInput:
    format: ExportFormat
    sections: list[AnalyticsSection] = strawberry.field(
        description="CSV: one file per section, zipped when several. CUSTOMERS lists every "
        "customer of the filter with its progress (CSV or JSON; streamed at download)."
    )
    filter: AnalyticsFilter | None = None
    granularity: TrendGranularity = TrendGranularity.WEEK


@strawberry.type(description="An analytics export: small ones finish at once, PDFs in the worker.")
class ExportJob:
    row: strawberry.Private[ExportRow]
    id: strawberry.ID
    status: str = strawberry.field(description="PENDING, RUNNING, DONE or FAILED.")
    progress: float = strawberry.field(description="0-100.")
    format: ExportFormat
    sections: list[AnalyticsSection]
    row_count: int
    filename: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None

    @strawberry.field(
        description="Where to download it while DONE: no bearer needed, valid 10 minutes."
    )
    def download_url(self, info: Info) -> str | None:
        if self.row.status != "DONE":
            return None
        token = exports.download_token(
            secret=info.context.settings.resolved_secret_key(), job=self.row
        )
        settings = info.context.settings
        base = settings.public_url or str(info.context.request.base_url)
        base = base.rstrip("/")
        return f"{base}/exports/{self.row.id}/download?token={token}"

    @classmethod
    def of(cls, row: ExportRow) -> ExportJob:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            status=row.status,
            progress=row.progress,
            format=ExportFormat(row.format),
            sections=[AnalyticsSection(s) for s in row.sections],
            row_count=row.row_count,
            filename=row.filename,
            requested_by=row.requested_by,
            created_at=row.created_at,
            finished_at=row.finished_at,
            error=row.error,
        )


async def export_data(info: Info, data: ExportAnalyticsInput) -> dict[str, Any]:
    """The sections as the analytics query returns them, for the same caller."""
    wanted = {s.value for s in data.sections}
    variables: dict[str, Any] = {
        "filter": None,
        "granularity": data.granularity.value,
        **{s.lower(): s in wanted for s in render.SECTIONS if s != "CUSTOMERS"},
    }
    if data.filter is not None:
        args = filter_args(data.filter)
        variables["filter"] = {
            "from": args["start"].isoformat() if args["start"] else None,
            "to": args["end"].isoformat() if args["end"] else None,
            "userType": args["user_type"],
            "acquisitionChannel": args["channel"],
            "signupCohort": args["signup_cohort"].isoformat() if args["signup_cohort"] else None,
            "templateVersion": args["template_version"],
        }
    result = await info.schema.execute(
        EXPORT_DOCUMENT, variable_values=variables, context_value=info.context
    )
    if result.errors:
        original = result.errors[0].original_error
        if isinstance(original, DomainError):
            raise original
        raise ValidationFailed(result.errors[0].message)
    assert result.data is not None
    analytics: dict[str, Any] = result.data["analytics"]
    return {k: v for k, v in analytics.items() if v is not None or k == "forecast"}


@strawberry.type
class Query:
    @strawberry.field(description="An export job of the organization (ADMIN).")
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJob:
        return ExportJob.of(await exports.get_job(info.context.viewer, id))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Export analytics as CSV, JSON or PDF (ADMIN; audited). Returns the job; "
        "poll `exportJob(id)` until DONE, then fetch its `downloadUrl`."
    )
    async def export_analytics(self, info: Info, input: ExportAnalyticsInput) -> ExportJob:
        viewer = info.context.viewer
        sections = [s.value for s in input.sections]
        exports.check_request(viewer, format=input.format.value, sections=sections)
        data = await export_data(info, input)
        scope = service.analytics(viewer, **filter_args(input.filter)).scope
        async with transaction():
            row = await exports.create(
                viewer,
                format=input.format.value,
                sections=sections,
                scope=scope,
                data=data,
                now=utcnow(),
            )
        return ExportJob.of(row)
