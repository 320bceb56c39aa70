"""The demo's usage history and milestones, seeded against real PostgreSQL."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from tortoise.connection import get_connection

from app.customers.models import Customer
from app.demo import DemoResult, seed_demo
from app.kit.clock import utcnow
from app.milestones.models import MilestoneAchievement
from app.onboarding.models import WorkflowTask
from app.onboarding.states import TaskStatus
from app.usage.models import UsageDaily


@pytest.fixture(scope="module")
async def demo(db: str) -> DemoResult:
    return await seed_demo(customers=200, slug=f"demo-{uuid.uuid4().hex[:10]}")


async def test_usage_tells_different_stories(demo: DemoResult) -> None:
    org = demo.organization.id
    now = utcnow()
    customers = {c.id: c for c in await Customer.filter(organization_id=org)}
    logins: dict[uuid.UUID, list[int]] = defaultdict(list)  # days after signup
    for r in await UsageDaily.filter(organization_id=org, name="login").values(
        "customer_id", "day"
    ):
        signup = customers[r["customer_id"]].signed_up_at.date()
        logins[r["customer_id"]].append((r["day"] - signup).days)
    never = [c for c in customers if c not in logins]
    assert len(never) >= 5, "some customers never use the product"
    old = [c for c in customers.values() if now - c.signed_up_at > timedelta(days=60)]
    life = {c.id: (now - c.signed_up_at).days for c in old}
    fading = [c.id for c in old if logins[c.id] and
              sum(d < life[c.id] / 3 for d in logins[c.id]) >= 5 and
              not any(d > life[c.id] - 14 for d in logins[c.id])]  # fmt: skip
    recovering = [c.id for c in old if
                  sum(d < life[c.id] / 4 for d in logins[c.id]) >= 3 and
                  sum(life[c.id] * 0.3 < d < life[c.id] * 0.65 for d in logins[c.id]) <= 2 and
                  sum(d > life[c.id] * 0.75 for d in logins[c.id]) >= 5]  # fmt: skip
    assert fading and recovering, (len(fading), len(recovering))
    mix: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in await UsageDaily.filter(organization_id=org).values("customer_id", "name", "count"):
        mix[customers[r["customer_id"]].user_type][r["name"]] += r["count"]
    share = {t: m["report_shared"] / max(1, m["project_created"]) for t, m in mix.items()}
    assert share["enterprise"] > 1.2 > 0.5 > share["startup"], share


async def test_usage_agrees_with_onboarding(demo: DemoResult) -> None:
    org = demo.organization.id
    done = set(
        await WorkflowTask.filter(
            organization_id=org, key="connect_data_source", status=TaskStatus.COMPLETED
        ).values_list("workflow__customer_id", flat=True)
    )
    connected = set(
        await UsageDaily.filter(organization_id=org, name="data_source_connected").values_list(
            "customer_id", flat=True
        )
    )
    assert done and done == connected


async def test_milestones_are_achieved_over_time_with_rewards(demo: DemoResult) -> None:
    org = demo.organization.id
    rows = await MilestoneAchievement.filter(organization_id=org).values(
        "customer_id", "milestone_key", "achieved_at", "points", "customer__signed_up_at"
    )
    keys = {r["milestone_key"] for r in rows}
    assert {"first_project", "first_report_shared", "one_month"} <= keys and len(keys) >= 7
    assert all(r["customer__signed_up_at"] <= r["achieved_at"] <= utcnow() for r in rows)
    spread = {r["achieved_at"].date() for r in rows}
    assert len(spread) > 30  # not all at seeding time
    earned: dict[uuid.UUID, int] = defaultdict(int)
    for r in rows:
        earned[r["customer_id"]] += r["points"]
    checklist = await get_connection("default").execute_query_dict(
        "SELECT w.customer_id, w.points, w.badges::text AS badges,"
        " (SELECT coalesce(sum(points), 0) FROM workflow_task t"
        "   WHERE t.workflow_id = w.id AND t.status = 'COMPLETED')"
        " + (SELECT coalesce(sum(reward_points), 0) FROM workflow_stage s"
        "   WHERE s.workflow_id = w.id AND s.status = 'COMPLETED') AS onboarding"
        " FROM workflow w WHERE w.organization_id = $1",
        [org],
    )
    assert len(checklist) == 200
    for r in checklist:  # the rewards were added to the workflows, once each
        assert r["points"] == r["onboarding"] + earned[r["customer_id"]], r
    badged = {r["customer_id"] for r in rows if r["milestone_key"] == "first_report_shared"}
    assert badged and all(
        '"storyteller"' in r["badges"] for r in checklist if r["customer_id"] in badged
    )
