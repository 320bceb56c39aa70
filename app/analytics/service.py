"""Analytics use cases: one report per request, sections computed on demand from the rollups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.analytics import forecast as forecasting
from app.analytics import query, recommend, report
from app.analytics.query import Scope
from app.analytics.report import Cohorts, Figures, Funnel, StepFigures, Trends
from app.kit.clock import utcnow

T = TypeVar("T")
GRANULARITIES = ("DAY", "WEEK")
Keep = Callable[["Scope", Callable[[], "Report"]], "Report"]
"""A report cache: the kept report of a scope, or the one `make` makes."""


class Report:
    """The sections of one analytics query; each rollup read happens at most once."""

    def __init__(self, scope: Scope, *, now: datetime) -> None:
        self.scope = scope
        self.now = now
        self._memo: dict[str, asyncio.Future[Any]] = {}

    async def _once(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        """The section's one computation, shared by every request the report answers: a
        request that goes away does not cancel it, and a failed one is tried again."""
        found = self._memo.get(key)
        if found is None or (found.done() and (found.cancelled() or found.exception())):
            found = self._memo[key] = asyncio.ensure_future(make())
        result: T = await asyncio.shield(found)
        return result

    async def cohort_sums(self) -> query.CohortSums:
        return await self._once("cohort", lambda: query.cohort_sums(self.scope))

    async def step_rows(self) -> list[report.StepRow]:
        return await self._once("steps", lambda: query.step_rows(self.scope))

    async def completion_rows(self) -> list[tuple[date, list[int]]]:
        return await self._once("completions", lambda: query.completion_rows(self.scope))

    async def names(self) -> dict[tuple[str, str], str]:
        return await self._once("names", lambda: query.names(self.scope.organization_id))

    async def milestone_counts(self) -> tuple[dict[str, int], int]:
        """Achievers per milestone and customers, all time, in the filter's segment."""

        async def make() -> tuple[dict[str, int], int]:
            achieved, customers = await asyncio.gather(
                query.milestone_achievers(self.scope), query.segment_customers(self.scope)
            )
            return achieved, customers

        return await self._once("milestones", make)

    async def overview(self) -> Figures:
        async def make() -> Figures:
            return report.overview(self.scope, await self.cohort_sums())

        return await self._once("overview", make)

    async def funnel(self) -> Funnel:
        async def make() -> Funnel:
            customers = (await self.overview()).totals.customers
            steps, names = await self.step_rows(), await self.names()
            return report.funnel(self.scope, customers, steps, names)

        return await self._once("funnel", make)

    async def cohorts(self) -> Cohorts:
        async def make() -> Cohorts:
            return report.cohorts(self.scope, await self.cohort_sums())

        return await self._once("cohorts", make)

    async def trends(self, granularity: str = "DAY") -> Trends:
        if granularity not in GRANULARITIES:
            granularity = "DAY"

        async def make() -> Trends:
            cohort, done = await self.cohort_sums(), await self.completion_rows()
            return report.trends(self.scope, granularity, cohort, done)

        return await self._once(f"trends-{granularity}", make)

    async def stage_flight(self) -> list[tuple[date, str, list[int]]]:
        return await self._once("flight", lambda: query.stage_flight(self.scope))

    def _age(self, day: date) -> float:
        """Seconds since the middle of a signup day."""
        return max(0.0, (self.now - datetime.combine(day, time(12, tzinfo=UTC))).total_seconds())

    async def forecast(self) -> forecasting.Forecast:
        days = report.within(self.scope, (await self.cohort_sums()).days)
        done = (await self.overview()).totals.done_hist
        ages: dict[date, int] = {}
        for day, values in days:
            ages[day] = ages.get(day, 0) + values[0] - values[2]
        stages = report.stage_inputs(
            await self.step_rows(), await self.stage_flight(), await self.names(), self._age
        )
        return forecasting.forecast(
            done, [(self._age(d), n) for d, n in sorted(ages.items()) if n > 0], stages
        )

    async def _stall_by(self, index: int) -> dict[str, StepFigures]:
        names = await self.names()
        groups: dict[str, list[report.StepRow]] = {}
        for r in await self.step_rows():
            if r[3]:
                groups.setdefault(str(r[index]), []).append(r)
        out = {}
        for label, rows in groups.items():
            worst = _worst_task(rows, names)
            if worst is not None:
                out[label] = worst
        return out

    async def recommendations(self) -> list[recommend.Recommendation]:
        cohorts = await self.cohorts()
        trends = await self.trends()
        sums = await self.cohort_sums()
        now_t = report.period_totals(self.scope, sums)
        before = report.period_totals(self.scope.previous(), sums)
        return recommend.recommendations(
            base=report.base_drill(self.scope),
            funnel=await self.funnel(),
            by_user_type=cohorts.by_user_type,
            by_channel=cohorts.by_channel,
            stall_by_user_type=await self._stall_by(0),
            stall_by_channel=await self._stall_by(1),
            changes=trends.changes,
            current=(now_t.completed, now_t.customers),
            previous=(before.completed, before.customers),
        )


def _worst_task(
    rows: list[report.StepRow], names: dict[tuple[str, str], str]
) -> StepFigures | None:
    """The task where most of these rows' customers stall."""
    dropped: dict[tuple[str, str], int] = {}
    for r in rows:
        dropped[(r[2], r[3])] = dropped.get((r[2], r[3]), 0) + r[5][5]
    if not dropped:
        return None
    key = max(dropped, key=lambda k: dropped[k])
    mine = [r for r in rows if (r[2], r[3]) == key]
    return report.step_of(mine, key, names.get(key, key[1]))


def analytics(
    viewer: Viewer,
    *,
    start: date | None = None,
    end: date | None = None,
    user_type: str | None = None,
    channel: str | None = None,
    signup_cohort: date | None = None,
    template_version: int | None = None,
    now: datetime | None = None,
    keep: Keep | None = None,
) -> Report:
    """The analytics of the viewer's organization for a filter (operators only); with
    `keep` (the process's report cache), a report kept since the rollups last changed."""
    viewer.require(Role.ADMIN, Role.CSM)
    at = now or utcnow()
    scope = Scope.of(
        viewer.organization_id,
        today=at.date(),
        start=start,
        end=end,
        user_type=user_type,
        channel=channel,
        signup_cohort=signup_cohort,
        template_version=template_version,
    )
    if keep is None or now is not None:
        return Report(scope, now=at)
    return keep(scope, lambda: Report(scope, now=utcnow()))
