"""Reading the rollups for a filter: three grouped queries whose cost follows the period and
the number of segments, never the number of customers."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.analytics.rules import COHORT, COHORT_COLUMNS, COMPLETION, FLIGHT, STEP, counter_columns
from app.errors import ValidationFailed

DEFAULT_DAYS = 90
MAX_DAYS = 731


@dataclass(frozen=True)
class Scope:
    """The customers a report covers: signed up within [start, end] in the given segment."""

    organization_id: uuid.UUID
    start: date
    end: date
    user_type: str | None = None
    channel: str | None = None
    signup_cohort: date | None = None
    template_version: int | None = None

    @classmethod
    def of(
        cls,
        organization_id: uuid.UUID,
        *,
        today: date,
        start: date | None = None,
        end: date | None = None,
        user_type: str | None = None,
        channel: str | None = None,
        signup_cohort: date | None = None,
        template_version: int | None = None,
    ) -> Scope:
        """A checked scope; the period defaults to the last 90 days up to today."""
        end = end or today
        start = start or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise ValidationFailed("`from` must not be after `to`.", field="from")
        if (end - start).days >= MAX_DAYS:
            raise ValidationFailed(f"A period covers at most {MAX_DAYS} days.", field="from")
        week = signup_cohort - timedelta(days=signup_cohort.weekday()) if signup_cohort else None
        return cls(
            organization_id=organization_id,
            start=start,
            end=end,
            user_type=user_type.strip().lower() if user_type else None,
            channel=channel.strip().lower() if channel else None,
            signup_cohort=week,
            template_version=template_version,
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Scope:
        """The period of the same length just before this one."""
        return replace(
            self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "userType": self.user_type,
            "acquisitionChannel": self.channel,
            "signupCohort": self.signup_cohort.isoformat() if self.signup_cohort else None,
            "templateVersion": self.template_version,
        }


def _sums(kind: str) -> str:
    """The sums of a rollup table's counters, in its layout's order (`v0`, `v1`, ...)."""
    return ", ".join(f"sum({c})::bigint AS v{i}" for i, c in enumerate(counter_columns(kind)))


def _where(scope: Scope, start: date, *, signup: str) -> tuple[str, list[Any]]:
    clauses = ["organization_id = $1", "day BETWEEN $2 AND $3"]
    params: list[Any] = [scope.organization_id, start, scope.end]
    for column, value in (
        ("user_type", scope.user_type),
        ("channel", scope.channel),
        ("template_version", scope.template_version),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} = ${len(params)}")
    if scope.signup_cohort is not None:
        params.append(scope.signup_cohort)
        n = len(params)
        clauses.append(
            f"{signup} = ${n}" if signup == "signup_week" else f"day BETWEEN ${n} AND ${n} + 6"
        )
    return " AND ".join(clauses), params


def whole_weeks(start: date, end: date) -> tuple[date, date] | None:
    """The Mondays of the first and last whole week (Monday to Sunday) inside [start, end]."""
    first = start + timedelta(days=(7 - start.weekday()) % 7)
    last = end - timedelta(days=(end.weekday() + 1) % 7) - timedelta(days=6)
    return (first, last) if first <= last else None


def _by_weeks(scope: Scope, columns: str, daily: str, weekly: str) -> tuple[str, list[Any]]:
    """A FROM item with the period's rows: whole weeks from the weekly table, the days of the
    partial weeks at either end from the daily one; the number of rows read follows the
    weeks of the period, not its days."""
    where, params = _where(scope, scope.start, signup="day")
    first, last = whole_weeks(scope.start, scope.end) or (scope.end + timedelta(1), scope.end)
    params += [first, last]
    a, b = f"${len(params) - 1}", f"${len(params)}"
    return (
        f"(SELECT {columns} FROM {weekly} WHERE {where} AND day BETWEEN {a} AND {b}"
        f" UNION ALL SELECT {columns} FROM {daily} WHERE {where}"
        f" AND NOT day BETWEEN {a} AND {b} + 6) AS u"
    ), params


COHORT_SUMS = _sums(COHORT)
STEP_SUMS = _sums(STEP)
COMPLETION_SUMS = _sums(COMPLETION)
FLIGHT_SUMS = _sums(FLIGHT)


def _values(row: dict[str, Any], skip: int) -> list[int]:
    return [int(v) for v in list(row.values())[skip:]]


@dataclass(frozen=True)
class CohortSums:
    """Sums of the signup cells: the headline counts (no histograms) per signup day of this
    period and the previous one; every sum per user type, per channel and per signup week
    of this period."""

    days: list[tuple[date, list[int]]]
    user_types: list[tuple[str, list[int]]]
    channels: list[tuple[str, list[int]]]
    weeks: list[tuple[date, list[int]]]


DAY_SUMS = ", ".join(f"sum({c})::bigint AS v{i}" for i, c in enumerate(COHORT_COLUMNS))
_WEEK = "(day - (extract(isodow FROM day)::int - 1))"


async def cohort_sums(scope: Scope) -> CohortSums:
    """Two grouped queries: daily headline counts over both periods from the daily rows, and
    the histograms by segment and week from whole weeks plus the partial weeks' days."""
    conn = get_connection("default")
    where, params = _where(scope, scope.previous().start, signup="day")
    daily = f"SELECT day, {DAY_SUMS} FROM analytics_cohort WHERE {where} GROUP BY day"
    source, week_params = _by_weeks(
        scope,
        f"day, user_type, channel, {', '.join(counter_columns(COHORT))}",
        "analytics_cohort",
        "analytics_cohort_week",
    )
    grouped = (
        f"SELECT {_WEEK} AS week, user_type, channel,"
        f" GROUPING({_WEEK}, user_type, channel) AS g, {COHORT_SUMS} FROM {source}"
        f" GROUP BY GROUPING SETS (({_WEEK}), (user_type), (channel))"
    )
    day_rows, rows = await asyncio.gather(
        conn.execute_query_dict(daily, params), conn.execute_query_dict(grouped, week_params)
    )
    weeks, types, channels = [], [], []
    for r in rows:
        values = _values(r, 4)
        if r["g"] == 0b011:
            weeks.append((r["week"], values))
        elif r["g"] == 0b101:
            types.append((r["user_type"], values))
        elif r["g"] == 0b110:
            channels.append((r["channel"], values))
    return CohortSums(
        days=[(r["day"], _values(r, 1)) for r in day_rows],
        user_types=types,
        channels=channels,
        weeks=weeks,
    )


async def step_rows(scope: Scope) -> list[tuple[str, str, str, str, int, list[int]]]:
    """Funnel sums per (user type, channel, stage, task) for the period."""
    source, params = _by_weeks(
        scope,
        "user_type, channel, stage_key, task_key, position, " + ", ".join(counter_columns(STEP)),
        "analytics_step",
        "analytics_step_week",
    )
    sql = (
        f"SELECT user_type, channel, stage_key, task_key, min(position) AS position, {STEP_SUMS}"
        f" FROM {source} GROUP BY user_type, channel, stage_key, task_key"
    )
    rows = await get_connection("default").execute_query_dict(sql, params)
    return [
        (r["user_type"], r["channel"], r["stage_key"], r["task_key"], r["position"], _values(r, 5))
        for r in rows
    ]


async def stage_flight(scope: Scope) -> list[tuple[date, str, list[int]]]:
    """Customers in each stage now, per signup day, by time from signup to entering it."""
    where, params = _where(scope, scope.start, signup="day")
    sql = (
        f"SELECT day, stage_key, {FLIGHT_SUMS} FROM analytics_flight"
        f" WHERE {where} GROUP BY day, stage_key"
    )
    rows = await get_connection("default").execute_query_dict(sql, params)
    return [(r["day"], r["stage_key"], _values(r, 2)) for r in rows]


async def completion_rows(scope: Scope) -> list[tuple[date, list[int]]]:
    """Completions per completion day over this period and the previous one (by signup week
    only when the filter names a signup cohort)."""
    where, params = _where(scope, scope.previous().start, signup="signup_week")
    table = "analytics_completion_day" if scope.signup_cohort is None else "analytics_completion"
    sql = f"SELECT day, {COMPLETION_SUMS} FROM {table} WHERE {where} GROUP BY day"
    rows = await get_connection("default").execute_query_dict(sql, params)
    return [(r["day"], _values(r, 1)) for r in rows]


def _segment(scope: Scope) -> tuple[str | None, str | None]:
    """The one segment all-time figures follow: the user type if the filter names one, else
    its channel, else every customer."""
    return (scope.user_type, None) if scope.user_type is not None else (None, scope.channel)


async def segment_customers(scope: Scope) -> int:
    """Customers ever signed up in the scope's segment (`_segment`), from the weekly rollup."""
    user_type, channel = _segment(scope)
    rows = await get_connection("default").execute_query_dict(
        "SELECT coalesce(sum(customers), 0) AS n FROM analytics_cohort_week"
        " WHERE organization_id = $1 AND ($2::text IS NULL OR user_type = $2)"
        " AND ($3::text IS NULL OR channel = $3)",
        [scope.organization_id, user_type, channel],
    )
    return int(rows[0]["n"])


async def milestone_achievers(scope: Scope) -> dict[str, int]:
    """Customers of the scope's segment who achieved each milestone (first achievements)."""
    user_type, channel = _segment(scope)
    join = (
        ""
        if user_type is None and channel is None
        else " JOIN customer c ON c.id = a.customer_id AND c.organization_id = $1"
        " AND ($2::text IS NULL OR c.user_type = $2)"
        " AND ($3::text IS NULL OR c.acquisition_channel = $3)"
    )
    params: list[Any] = [scope.organization_id]
    if join:
        params += [user_type, channel]
    rows = await get_connection("default").execute_query_dict(
        f"SELECT a.milestone_key, count(*) AS n FROM milestone_achievement a{join}"
        " WHERE a.organization_id = $1 AND a.occurrence = 1 GROUP BY a.milestone_key",
        params,
    )
    return {r["milestone_key"]: int(r["n"]) for r in rows}


async def names(organization_id: uuid.UUID) -> dict[tuple[str, str], str]:
    """Display names of stages (stage, '') and tasks (stage, task) over the template versions."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT definition FROM workflow_template WHERE organization_id = $1 ORDER BY version",
        [organization_id],
    )
    out: dict[tuple[str, str], str] = {}
    for r in rows:
        definition = r["definition"]
        if isinstance(definition, str):
            import json

            definition = json.loads(definition)
        for stage in definition.get("stages", []):
            out[(stage["key"], "")] = stage.get("name", stage["key"])
            for task in stage.get("tasks", []):
                out[(stage["key"], task["key"])] = task.get("title", task["key"])
    return out
