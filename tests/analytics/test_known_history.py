"""Analytics of a small hand-computed history: five customers, three of whom complete."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.accounts.models import Role
from app.analytics import maintain, query, report, service
from app.analytics.rules import week_of
from app.db import transaction
from app.errors import Forbidden
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from tests.analytics.support import drain
from tests.graphql.client import gql, token
from tests.support.factories import Tenant

REQUIRED = [
    "verify_email",
    "complete_profile",
    "connect_data_source",
    "invite_team",
    "create_first_project",
    "add_client",
    "build_report",
    "set_up_integration",
    "schedule_review",
]
DAY = timedelta(days=1)


async def _history(tenant: Tenant) -> tuple[datetime, dict[str, object]]:
    """A, B, C (startup, organic) complete after 3, 4 and 7 days; D (smb, paid_search) stops
    after verifying its email; E (smb, paid_search) finishes Welcome, then fails to connect
    its data source."""
    signup = utcnow().replace(microsecond=0) - timedelta(seconds=5)
    people = {}
    for name, user_type, channel in [
        ("A", "startup", "organic"),
        ("B", "startup", "organic"),
        ("C", "startup", "organic"),
        ("D", "smb", "paid_search"),
        ("E", "smb", "paid_search"),
    ]:
        people[name] = await tenant.customer(
            user_type=user_type, acquisition_channel=channel, signed_up_at=signup
        )
    for name, days in (("A", 3), ("B", 4), ("C", 7)):
        for i, key in enumerate(REQUIRED):
            at = signup + (days * DAY if i == 8 else 3 * DAY if i == 7 else DAY * i / 24)
            await tenant.act(people[name].id, key, TaskAction.COMPLETE, now=at)
    await tenant.act(people["D"].id, "verify_email", TaskAction.COMPLETE, now=signup + DAY / 24)
    for key in REQUIRED[:2]:
        await tenant.act(people["E"].id, key, TaskAction.COMPLETE, now=signup + DAY / 2)
    await tenant.act(people["E"].id, "connect_data_source", TaskAction.START, now=signup + DAY)
    await tenant.act(
        people["E"].id, "connect_data_source", TaskAction.FAIL, now=signup + DAY, reason="token"
    )
    await drain(tenant)
    later = signup + 30 * DAY
    async with transaction():
        await maintain.refresh([c.id for c in people.values()], now=later)
    return later, people


async def test_figures_equal_hand_computed_values(tenant: Tenant) -> None:
    later, _ = await _history(tenant)
    run = service.analytics(tenant.csm, now=later)
    overview = (await run.overview()).totals
    assert (overview.customers, overview.started, overview.completed) == (5, 5, 3)
    assert overview.completion_rate == 60.0
    assert overview.median_seconds == 4 * 86400  # 3, 4, 7 days: nearest rank 2 of 3
    assert overview.p90_seconds == 7 * 86400  # rank ceil(2.7) = 3
    assert overview.active == 0  # nobody moved in the 7 days before `later`
    # required tasks and stage rewards: 75 + 150 + 235 + 320 = 780 each; D 10; E 25 + 50
    assert overview.points == 3 * 780 + 10 + 75
    assert overview.badges == 3 * 4 + 1

    funnel = await run.funnel()
    stages = {s.stage_key: s for s in funnel.stages}
    assert [s.stage_key for s in funnel.stages] == ["welcome", "setup", "features", "mastery"]
    welcome, setup = stages["welcome"], stages["setup"]
    assert (welcome.reached, welcome.completed, welcome.conversion) == (5, 4, 100.0)
    assert (setup.reached, setup.completed, setup.conversion, setup.failed) == (4, 3, 80.0, 1)
    assert (stages["mastery"].reached, stages["mastery"].completed) == (3, 3)
    tasks = {t.task_key: t for t in welcome.tasks + setup.tasks}
    assert (tasks["complete_profile"].reached, tasks["complete_profile"].dropped) == (5, 1)
    connect = tasks["connect_data_source"]
    assert (connect.reached, connect.completed, connect.failed, connect.dropped) == (4, 3, 1, 1)
    assert connect.completion_rate == 75.0 and connect.drop_off_rate == 25.0
    assert {t.task_key for t in funnel.stall_tasks} == {"complete_profile", "connect_data_source"}

    cohorts = await run.cohorts()
    by_type = {f.label: f.totals for f in cohorts.by_user_type}
    assert (by_type["startup"].customers, by_type["startup"].completion_rate) == (3, 100.0)
    assert (by_type["smb"].customers, by_type["smb"].completion_rate) == (2, 0.0)
    assert [f.label for f in cohorts.by_channel] == ["organic", "paid_search"]
    [row] = cohorts.by_signup_week
    signup_day = (later - 30 * DAY).date()
    offsets = [(week_of(signup_day + d * DAY) - week_of(signup_day)).days // 7 for d in (3, 4, 7)]
    expected = [sum(1 for o in offsets if o <= k) for k in range(14)]
    assert row.customers == 5 and row.completed_by_week == expected

    forecast = await run.forecast()
    assert forecast.in_flight == 2 and forecast.completed_sample == 3
    assert forecast.probability == 0.0  # nobody in this history completed after 7 days
    survival = {round(p.days, 3): round(p.survival, 3) for p in forecast.curve}
    assert (survival[3.0], survival[4.0], survival[7.0]) == (0.8, 0.6, 0.4)
    stages = {s.key: s for s in forecast.stages}
    assert {k: s.in_flight for k, s in stages.items()} == {
        "welcome": 1,  # D, 30 days there
        "setup": 1,  # E, since half a day after signup
        "features": 0,
        "mastery": 0,
    }
    assert (stages["welcome"].completed_sample, stages["setup"].completed_sample) == (4, 3)
    assert stages["welcome"].probability == 0.0 and stages["setup"].probability == 0.0
    assert await run.recommendations() == []  # five customers are below every minimum sample


async def test_graphql_figures_and_drill_down(tenant: Tenant) -> None:
    _, people = await _history(tenant)
    csm = token(tenant.id, Role.CSM)
    body = await gql(
        """{ analytics { overview { customers completed completionRate medianHoursToComplete
               done: drillDown(figure: COMPLETED) { workflowStatus signedUpFrom signedUpTo } }
             funnel { stages { stageKey reached tasks { taskKey failed
               drillDown(outcome: FAILED) { stageKey taskKey outcome signedUpFrom } } } }
             automationPerformance { runs } healthDistribution { segment } } }""",
        token=csm,
    )
    assert "errors" not in body, body
    data = body["data"]["analytics"]
    done = data["overview"].pop("done")
    completed = await gql(
        "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }", {"f": done}, token=csm
    )
    assert completed["data"]["customers"]["totalCount"] == 3
    assert data["overview"] == {
        "customers": 5,
        "completed": 3,
        "completionRate": 60.0,
        "medianHoursToComplete": 96.0,
    }
    assert {r["runs"] for r in data["automationPerformance"]} == {0}  # default rules, off
    assert data["healthDistribution"] is None
    connect = next(
        t
        for s in data["funnel"]["stages"]
        for t in s["tasks"]
        if t["taskKey"] == "connect_data_source"
    )
    assert connect["failed"] == 1
    listed = await gql(
        "query($f: CustomerFilter) { customers(filter: $f) { totalCount edges { node { id } } } }",
        {"f": connect["drillDown"]},
        token=csm,
    )
    assert listed["data"]["customers"]["totalCount"] == 1
    assert listed["data"]["customers"]["edges"][0]["node"]["id"] == str(people["E"].id)  # type: ignore[attr-defined]


async def test_customers_cannot_read_analytics(tenant: Tenant) -> None:
    customer = await tenant.customer()
    with pytest.raises(Forbidden):
        service.analytics(tenant.customer_viewer(customer))


async def test_figures_are_the_same_from_daily_and_from_weekly_rows(tenant: Tenant) -> None:
    """A period of one day reads the daily step and cohort rows; one whole week reads the
    weekly ones (both kept by the consumer); a period with a partial week at either end
    reads both."""
    later, _ = await _history(tenant)
    day = (later - 30 * DAY).date()
    week = week_of(day)

    def figures(f: report.Funnel) -> list[tuple[object, ...]]:
        return [
            (s.stage_key, s.task_key, s.reached, s.completed, s.skipped, s.failed, s.here,
             s.dropped, s.time_hist)
            for stage in f.stages
            for s in (stage, *stage.tasks)
        ]  # fmt: skip

    whole = service.analytics(tenant.csm, start=week, end=week + 6 * DAY, now=later)
    assert query.whole_weeks(whole.scope.start, whole.scope.end) == (week, week)
    one_day = service.analytics(tenant.csm, start=day, end=day, now=later)
    assert query.whole_weeks(one_day.scope.start, one_day.scope.end) is None
    edges = service.analytics(tenant.csm, start=week - 3 * DAY, end=week + 9 * DAY, now=later)
    default = service.analytics(tenant.csm, now=later)
    expected = figures(await default.funnel())
    assert expected[0][2] == 5  # welcome reached by all five
    overview = (await default.overview()).totals
    [retention] = (await default.cohorts()).by_signup_week
    for run in (whole, one_day, edges):
        assert figures(await run.funnel()) == expected
        assert (await run.overview()).totals == overview
        assert (await run.cohorts()).by_signup_week[0].completed_by_week == (
            retention.completed_by_week
        )
