"""GraphQL types of onboarding analytics. Rates are percentages on the 0-100 scale."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import strawberry

from app.analytics import forecast as forecasting
from app.analytics import recommend, report
from app.analytics.service import Report
from app.customers.service import CustomerFilter
from app.graphql.analytics.drill import CustomerDrillDown
from app.graphql.context import Context
from app.graphql.enums import StepOutcome, WorkflowStatus

Info = strawberry.Info[Context, None]


def hours(seconds: float | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


@strawberry.enum(description="How trends are bucketed.")
class TrendGranularity(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"


@strawberry.enum(description="A headline figure whose customers to list.")
class HeadlineFigure(StrEnum):
    CUSTOMERS = "CUSTOMERS"
    COMPLETED = "COMPLETED"
    IN_FLIGHT = "IN_FLIGHT"
    ACTIVE_LAST_7_DAYS = "ACTIVE_LAST_7_DAYS"


@strawberry.input(
    description="Which customers analytics covers: those who signed up in [from, to]."
)
class AnalyticsFilter:
    from_: date | None = strawberry.field(
        default=None, name="from", description="First signup day (default: 89 days before `to`)."
    )
    to: date | None = strawberry.field(
        default=None, description="Last signup day (default today, UTC)."
    )
    user_type: str | None = None
    acquisition_channel: str | None = None
    signup_cohort: date | None = strawberry.field(
        default=None, description="Any day of the signup week to keep (weeks start on Monday)."
    )
    template_version: int | None = None


def filter_args(f: AnalyticsFilter | None) -> dict[str, Any]:
    """The keyword arguments of `service.analytics` for a GraphQL filter."""
    f = f or AnalyticsFilter()
    return {
        "start": f.from_,
        "end": f.to,
        "user_type": f.user_type,
        "channel": f.acquisition_channel,
        "signup_cohort": f.signup_cohort,
        "template_version": f.template_version,
    }


@strawberry.type(description="The filter a report was computed for, with defaults resolved.")
class AnalyticsScope:
    from_: date = strawberry.field(name="from")
    to: date
    user_type: str | None
    acquisition_channel: str | None
    signup_cohort: date | None
    template_version: int | None


@strawberry.type(description="Headline figures of a group of customers.")
class SegmentFigures:
    label: str
    customers: int
    started: int = strawberry.field(description="Customers who moved at least one task.")
    completed: int
    completion_rate: float | None = strawberry.field(description="completed / customers, 0-100.")
    in_flight: int
    active_last7_days: int = strawberry.field(
        description="Customers with activity in the last 7 days."
    )
    median_hours_to_complete: float | None = strawberry.field(
        description="Signup to completion, from the duration histogram (nearest rank)."
    )
    p90_hours_to_complete: float | None
    points_awarded: int
    badges_awarded: int
    base: strawberry.Private[CustomerFilter]

    @strawberry.field(description="The customers behind one of these figures.")
    def drill_down(self, figure: HeadlineFigure = HeadlineFigure.CUSTOMERS) -> CustomerDrillDown:
        if figure is HeadlineFigure.COMPLETED:
            return CustomerDrillDown.of(
                replace(self.base, workflow_status=WorkflowStatus.COMPLETED)
            )
        if figure is HeadlineFigure.IN_FLIGHT:
            return CustomerDrillDown.of(replace(self.base, workflow_status=WorkflowStatus.ACTIVE))
        if figure is HeadlineFigure.ACTIVE_LAST_7_DAYS:
            return CustomerDrillDown.of(replace(self.base, active=True))
        return CustomerDrillDown.of(self.base)

    @classmethod
    def of(cls, f: report.Figures) -> SegmentFigures:
        t = f.totals
        return cls(
            label=f.label,
            customers=t.customers,
            started=t.started,
            completed=t.completed,
            completion_rate=t.completion_rate,
            in_flight=t.in_flight,
            active_last7_days=t.active,
            median_hours_to_complete=hours(t.median_seconds),
            p90_hours_to_complete=hours(t.p90_seconds),
            points_awarded=t.points,
            badges_awarded=t.badges,
            base=f.drill,
        )


@strawberry.type(description="One funnel step: a stage, or a task within it.")
class FunnelStep:
    step: strawberry.Private[report.StepFigures]
    stage_key: str
    task_key: str | None
    name: str
    reached: int
    completed: int
    skipped: int
    failed: int = strawberry.field(description="Customers for whom it failed at least once.")
    active_here: int = strawberry.field(
        description="Customers whose next open step this is, active."
    )
    dropped: int = strawberry.field(
        description="Customers whose next open step this is, idle for 7 days or more (drop-off)."
    )
    conversion: float | None = strawberry.field(
        description="reached / reached at the step before (the first stage: / customers), 0-100."
    )
    completion_rate: float | None = strawberry.field(description="completed / reached, 0-100.")
    drop_off_rate: float | None = strawberry.field(description="dropped / reached, 0-100.")
    median_hours: float | None = strawberry.field(description="Time spent until completed.")
    p90_hours: float | None
    tasks: list[FunnelStep]

    @strawberry.field(description="The customers behind one of this step's counts.")
    def drill_down(self, outcome: StepOutcome = StepOutcome.REACHED) -> CustomerDrillDown:
        return CustomerDrillDown.of(self.step.outcome_drill(_base(self.step), outcome))

    @classmethod
    def of(cls, s: report.StepFigures) -> FunnelStep:
        return cls(
            step=s,
            stage_key=s.stage_key,
            task_key=s.task_key,
            name=s.name,
            reached=s.reached,
            completed=s.completed,
            skipped=s.skipped,
            failed=s.failed,
            active_here=s.here,
            dropped=s.dropped,
            conversion=s.conversion,
            completion_rate=s.completion_rate,
            drop_off_rate=s.drop_off_rate,
            median_hours=hours(s.median_seconds),
            p90_hours=hours(s.p90_seconds),
            tasks=[cls.of(t) for t in s.tasks],
        )


def _base(step: report.StepFigures) -> CustomerFilter:
    assert step.drill is not None
    return step.drill


@strawberry.type(description="The stage funnel with its tasks, and where customers stall.")
class Funnel:
    stages: list[FunnelStep]
    stall_tasks: list[FunnelStep] = strawberry.field(
        description="Tasks with the most customers idle there for 7+ days, most first."
    )


@strawberry.type(description="Of the customers who signed up in `week`, completions by week W+k.")
class RetentionRow:
    week: date
    customers: int
    completed_by_week: list[int] = strawberry.field(
        description="Entry k: completed by the end of week W+k (k = 0..13, the last is 13+)."
    )
    completed_by_week_rate: list[float | None] = strawberry.field(description="The same, 0-100.")
    drill_down: CustomerDrillDown

    @strawberry.field(description="The customers of this row who completed by week W+k.")
    def completed_drill_down(self, weeks: int) -> CustomerDrillDown:
        return CustomerDrillDown.of(replace(self.row.drill, completed_within_weeks=weeks))

    row: strawberry.Private[report.RetentionRow]


@strawberry.type(description="Headline figures by user type, channel and signup week.")
class Cohorts:
    by_user_type: list[SegmentFigures]
    by_acquisition_channel: list[SegmentFigures]
    by_signup_week: list[RetentionRow]

    @classmethod
    def of(cls, c: report.Cohorts) -> Cohorts:
        return cls(
            by_user_type=[SegmentFigures.of(f) for f in c.by_user_type],
            by_acquisition_channel=[SegmentFigures.of(f) for f in c.by_channel],
            by_signup_week=[
                RetentionRow(
                    row=r,
                    week=r.week,
                    customers=r.customers,
                    completed_by_week=r.completed_by_week,
                    completed_by_week_rate=[
                        report.percent(n, r.customers) for n in r.completed_by_week
                    ],
                    drill_down=CustomerDrillDown.of(r.drill),
                )
                for r in c.by_signup_week
            ],
        )


@strawberry.type(description="One day or week of the period.")
class TrendPoint:
    start: date
    signups: int = strawberry.field(description="Customers who signed up in this bucket.")
    completions: int = strawberry.field(description="Workflows completed in this bucket.")
    completion_rate: float | None = strawberry.field(
        description="Of this bucket's signups, the share completed so far, 0-100."
    )
    median_hours_to_complete: float | None = strawberry.field(
        description="Of the workflows completed in this bucket."
    )
    drill_down: CustomerDrillDown


@strawberry.type(
    description="A figure of this period against the previous period of the same length."
)
class PeriodChange:
    metric: str
    current: float | None
    previous: float | None
    absolute_change: float | None
    relative_change: float | None = strawberry.field(description="Percent of the previous value.")


@strawberry.type
class Trends:
    granularity: TrendGranularity
    points: list[TrendPoint]
    changes: list[PeriodChange]

    @classmethod
    def of(cls, t: report.Trends) -> Trends:
        return cls(
            granularity=TrendGranularity(t.granularity),
            points=[
                TrendPoint(
                    start=p.start,
                    signups=p.signups,
                    completions=p.completions,
                    completion_rate=p.completion_rate,
                    median_hours_to_complete=hours(p.median_seconds),
                    drill_down=CustomerDrillDown.of(p.drill),
                )
                for p in t.points
            ],
            changes=[
                PeriodChange(
                    metric=c.metric,
                    current=c.current,
                    previous=c.previous,
                    absolute_change=c.absolute,
                    relative_change=c.relative,
                )
                for c in t.changes
            ],
        )


@strawberry.type(description="The survival estimate at one bucket bound.")
class SurvivalPoint:
    days: float
    still_onboarding: float = strawberry.field(description="S(t): share not yet completed, 0-100.")
    at_risk: int
    completed: int
    censored: int


def _curve(points: list[forecasting.CurvePoint]) -> list[SurvivalPoint]:
    return [
        SurvivalPoint(
            days=round(p.days, 3),
            still_onboarding=round(100 * p.survival, 2),
            at_risk=p.at_risk,
            completed=p.completed,
            censored=p.censored,
        )
        for p in points
    ]


@strawberry.type(description="The forecast of the customers in one stage, and what it rests on.")
class StageForecast:
    stage_key: str
    name: str
    in_flight: int = strawberry.field(description="Customers in this stage now.")
    completed_sample: int = strawberry.field(
        description="Passes through this stage completed, the events of its curve."
    )
    median_days_in_stage: float | None = strawberry.field(
        description="Unlock to completion, where the stage's curve falls to one half."
    )
    probability_stage_within30_days: float | None = strawberry.field(
        description="0-100: of those in this stage now, expected to finish it within 30 days."
    )
    probability_within30_days: float | None = strawberry.field(
        description="0-100: of those in this stage now, expected to finish onboarding within "
        "30 days."
    )
    expected_completions_within30_days: float | None
    curve: list[SurvivalPoint] = strawberry.field(
        description="Share still in the stage by days since it was unlocked."
    )
    base: strawberry.Private[CustomerFilter]

    @strawberry.field(description="The customers in this stage now, active or idle.")
    def drill_down(self, outcome: StepOutcome = StepOutcome.ACTIVE_HERE) -> CustomerDrillDown:
        if outcome not in (StepOutcome.ACTIVE_HERE, StepOutcome.DROPPED):
            outcome = StepOutcome.ACTIVE_HERE
        return CustomerDrillDown.of(
            replace(self.base, stage_key=self.stage_key, task_key="", outcome=outcome)
        )


@strawberry.type(description="For customers in flight: how likely they complete within 30 days.")
class Forecast:
    in_flight: int
    probability_within30_days: float | None = strawberry.field(description="0-100.")
    expected_completions_within30_days: float | None
    expected_date: date | None = strawberry.field(
        description="When half of the customers in flight are expected to have completed."
    )
    completed_sample: int
    censored_sample: int
    method: str
    stages: list[StageForecast] = strawberry.field(
        description="Per stage: its curve, its customers in flight and their probabilities."
    )
    curve: list[SurvivalPoint] = strawberry.field(
        description="Signup to completion over the same customers, in-flight ones censored at "
        "their age (for reference; the probabilities come from the stages)."
    )
    drill_down: CustomerDrillDown

    @classmethod
    def of(cls, f: forecasting.Forecast, *, today: date, drill: CustomerFilter) -> Forecast:
        return cls(
            in_flight=f.in_flight,
            probability_within30_days=f.probability,
            expected_completions_within30_days=f.expected_completions,
            expected_date=today + timedelta(days=round(f.expected_days))
            if f.expected_days is not None
            else None,
            completed_sample=f.completed_sample,
            censored_sample=f.censored_sample,
            method=f.method,
            stages=[
                StageForecast(
                    stage_key=s.key,
                    name=s.name,
                    in_flight=s.in_flight,
                    completed_sample=s.completed_sample,
                    median_days_in_stage=round(s.median_days, 3)
                    if s.median_days is not None
                    else None,
                    probability_stage_within30_days=s.stage_probability,
                    probability_within30_days=s.probability,
                    expected_completions_within30_days=s.expected_completions,
                    curve=_curve(s.curve),
                    base=drill,
                )
                for s in f.stages
            ],
            curve=_curve(f.curve),
            drill_down=CustomerDrillDown.of(drill),
        )


@strawberry.type
class Evidence:
    label: str
    value: str


@strawberry.type(description="A finding the figures support, with its evidence and effect size.")
class Recommendation:
    kind: str
    message: str
    evidence: list[Evidence]
    effect_size: float = strawberry.field(
        description="Relative gap in percent (segments), share in percent (stalls, failures), "
        "or change in percentage points (trend)."
    )
    sample_size: int
    drill_down: CustomerDrillDown

    @classmethod
    def of(cls, r: recommend.Recommendation) -> Recommendation:
        return cls(
            kind=r.kind,
            message=r.message,
            evidence=[Evidence(label=e.label, value=e.value) for e in r.evidence],
            effect_size=r.effect_size,
            sample_size=r.sample_size,
            drill_down=CustomerDrillDown.of(r.drill),
        )


@strawberry.type(description="Runs and outcomes of one automation rule.")
class AutomationPerformance:
    rule_id: strawberry.ID
    name: str
    runs: int
    success_rate: float | None
    goal_completion_rate: float | None


@strawberry.type(description="Customers per health level in one segment.")
class HealthDistribution:
    segment: str
    healthy: int
    at_risk: int
    critical: int


@strawberry.type(description="How many customers achieved one milestone.")
class MilestoneAchievement:
    key: str
    name: str
    achieved: int
    rate: float | None


@strawberry.type(description="Onboarding analytics of the customers a filter selects (operators).")
class OnboardingAnalytics:
    run: strawberry.Private[Report]
    generated_at: datetime

    @strawberry.field
    def filter(self) -> AnalyticsScope:
        s = self.run.scope
        return AnalyticsScope(
            from_=s.start,
            to=s.end,
            user_type=s.user_type,
            acquisition_channel=s.channel,
            signup_cohort=s.signup_cohort,
            template_version=s.template_version,
        )

    @strawberry.field
    async def overview(self) -> SegmentFigures:
        return SegmentFigures.of(await self.run.overview())

    @strawberry.field
    async def funnel(self) -> Funnel:
        f = await self.run.funnel()
        return Funnel(
            stages=[FunnelStep.of(s) for s in f.stages],
            stall_tasks=[FunnelStep.of(s) for s in f.stall_tasks],
        )

    @strawberry.field
    async def cohorts(self) -> Cohorts:
        return Cohorts.of(await self.run.cohorts())

    @strawberry.field
    async def trends(self, granularity: TrendGranularity = TrendGranularity.DAY) -> Trends:
        return Trends.of(await self.run.trends(granularity.value))

    @strawberry.field
    async def forecast(self) -> Forecast:
        drill = replace(report.base_drill(self.run.scope), workflow_status=WorkflowStatus.ACTIVE)
        return Forecast.of(await self.run.forecast(), today=self.run.now.date(), drill=drill)

    @strawberry.field
    async def recommendations(self) -> list[Recommendation]:
        return [Recommendation.of(r) for r in await self.run.recommendations()]

    @strawberry.field(
        description="Runs, success rate and goal completion rate of each automation rule since "
        "the start of the period (shares 0-1)."
    )
    async def automation_performance(self, info: Info) -> list[AutomationPerformance]:
        from app.automation.stats import automation_stats

        since = datetime.combine(self.run.scope.start, datetime.min.time(), tzinfo=UTC)
        rows = await automation_stats(info.context.viewer, rule_id=None, since=since)
        return [
            AutomationPerformance(
                rule_id=strawberry.ID(str(r.rule_id)),
                name=r.name,
                runs=r.runs,
                success_rate=r.success_rate,
                goal_completion_rate=r.goal_completion_rate,
            )
            for r in rows
        ]

    @strawberry.field(
        description="Current health levels per segment (user type) of the scored customers "
        "of the filter's user type and acquisition channel, largest segment first; null until "
        "scores exist. Health is a current state, so the signup period does not narrow it "
        "(`healthDistribution` has the histogram)."
    )
    async def health_distribution(self, info: Info) -> list[HealthDistribution] | None:
        from app.health.service import summarized

        s = self.run.scope
        overall, segments = await summarized(
            info.context.viewer, user_type=s.user_type, channel=s.channel
        )
        if not overall.total:
            return None
        return [
            HealthDistribution(
                segment=d.segment or "",
                healthy=d.levels.get("HEALTHY", 0),
                at_risk=d.levels.get("AT_RISK", 0),
                critical=d.levels.get("CRITICAL", 0),
            )
            for d in segments
        ]

    @strawberry.field(
        description="Customers who achieved each milestone of the current set, and their share, "
        "in the filter's user type or channel (over all time, not only the period); null "
        "without a milestone set. `milestoneStats` has the times to achieve."
    )
    async def milestone_achievements(self, info: Info) -> list[MilestoneAchievement] | None:
        from app.milestones.service import current_set

        current = await current_set(info.context.viewer)
        if current is None:
            return None
        achieved, customers = await self.run.milestone_counts()
        return [
            MilestoneAchievement(
                key=m.key,
                name=m.name,
                achieved=achieved.get(m.key, 0),
                rate=round(achieved.get(m.key, 0) / customers, 4) if customers else None,
            )
            for m in current.definition.milestones
        ]
