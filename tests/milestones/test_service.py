"""Milestones with real PostgreSQL: install, progress, evaluation from the spine, exactly
once under concurrency, rewards through the workflow, and stats of a known history."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from app.accounts.models import Role
from app.analytics import maintain as analytics_rollups
from app.db import transaction
from app.events.consumers import ensure_checkpoints, run_consumer
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.milestones import service, spine
from app.milestones.models import MilestoneAchievement
from app.onboarding.models import Workflow
from app.onboarding.states import TaskAction
from tests.graphql.client import error_codes, gql, tokens_of
from tests.milestones.support import drain, events, ingest, install
from tests.support.factories import Tenant
from tests.usage.test_ingest_api import ingest_with_key, new_key


def widgets(customer_id: object, n: int) -> list[dict[str, object]]:
    at = (utcnow() - timedelta(minutes=1)).isoformat()
    return [
        {"customerId": str(customer_id), "name": "widget_made", "occurredAt": at,
         "idempotencyKey": uuid.uuid4().hex}
        for _ in range(n)
    ]  # fmt: skip


BADGE = {"key": "centurion", "name": "Centurion", "description": "100 widgets.", "icon": "medal"}
HUNDRED = {
    "key": "hundred_widgets",
    "name": "Hundred widgets",
    "description": "You made 100 widgets.",
    "icon": "medal",
    "criteria": [{"kind": "event_count", "event": "widget_made", "count": 100}],
    "reward": {"points": 70, "badge": BADGE},
}
PROGRESS = """query($cid: ID) { milestones(customerId: $cid) { key name current target percent
  missing achieved achievedAt timesAchieved reward { points badge { key } } } }"""


async def test_install_is_validated_audited_and_progress_reads_in_words(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    bad = (
        "name: X\nmilestones:\n  - {key: a, name: A, criteria: [{kind: nope}]}\n"
        "  - {key: a, name: B, criteria: [{kind: tasks_completed, tasks: [ghost]}]}\n"
    )
    body = await gql(
        "mutation($d: String!) { installMilestoneSet(input: {definition: $d}) { id } }",
        {"d": bad},
        token=tokens[Role.ADMIN],
    )
    assert error_codes(body) == ["INVALID_MILESTONES"]
    reasons = body["errors"][0]["extensions"]["reasons"]
    assert len(reasons) == 3 and "'nope'" in reasons[0], reasons
    assert reasons[1:] == [
        "key 'a' is used by more than one milestone",
        "milestones.1 (a).criteria.0: unknown task 'ghost' (not in the default template)",
    ]
    text = (
        "name: Widgets\nmilestones:\n"
        "  - {key: hundred_widgets, name: Hundred widgets, criteria: "
        "[{kind: event_count, event: widget_made, count: 100}], reward: {points: 70}}\n"
        "  - {key: welcome_done, name: Welcome done, criteria: "
        "[{kind: stages_completed, stages: [welcome]}]}\n"
    )
    refused = await gql(
        "mutation($d: String!) { installMilestoneSet(input: {definition: $d}) { id } }",
        {"d": text},
        token=tokens[Role.CSM],
    )
    assert error_codes(refused) == ["FORBIDDEN"]
    done = await gql(
        "mutation($d: String!) { installMilestoneSet(input: {definition: $d}) "
        "{ version milestoneCount createdBy } }",
        {"d": text},
        token=tokens[Role.ADMIN],
    )
    assert done["data"]["installMilestoneSet"]["version"] == 2  # the default set was v1
    assert done["data"]["installMilestoneSet"]["milestoneCount"] == 2
    await ingest(tenant, events(customer.id, "widget_made", 37))
    own = await gql(PROGRESS, {"cid": None}, token=tokens[Role.CUSTOMER])
    got = {m["key"]: m for m in own["data"]["milestones"]}
    assert got["hundred_widgets"] == {
        "key": "hundred_widgets",
        "name": "Hundred widgets",
        "current": 37.0,
        "target": 100.0,
        "percent": 37.0,
        "missing": "63 more widget_made events.",
        "achieved": False,
        "achievedAt": None,
        "timesAchieved": 0,
        "reward": {"points": 70, "badge": None},
    }
    assert got["welcome_done"]["missing"] == "Finish the stage welcome."
    listed = await gql(
        "query($cid: ID!) { customer(id: $cid) { milestones { key percent } } }",
        {"cid": str(customer.id)},
        token=tokens[Role.CSM],
    )
    assert {m["key"]: m["percent"] for m in listed["data"]["customer"]["milestones"]} == {
        "hundred_widgets": 37.0,
        "welcome_done": 0.0,
    }


async def test_fifty_concurrent_ingests_achieve_it_exactly_once(tenant: Tenant) -> None:
    """50 concurrent `ingestEvents` calls (API key, real GraphQL view) of 3 events each, with
    the consumer running: the threshold of 100 is crossed once, by one of them."""
    await ensure_checkpoints([spine.CONSUMER])
    await install(tenant, HUNDRED)
    customer = await tenant.customer()
    before = (await Workflow.get(customer_id=customer.id)).points
    secret, _ = await new_key(tenant)
    stop, wake = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        run_consumer(spine.CONSUMER, stop=stop, wake=wake, poll_seconds=0.05)
    )
    try:
        answers = await asyncio.gather(
            *(ingest_with_key(secret, widgets(customer.id, 3)) for _ in range(50))
        )
        assert [a["data"]["ingestEvents"]["accepted"] for a in answers] == [3] * 50
        for _ in range(200):
            if await MilestoneAchievement.filter(customer_id=customer.id).exists():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the consumer handle what is left
    finally:
        stop.set()
        await running
    await drain(spine.CONSUMER)
    rows = await MilestoneAchievement.filter(customer_id=customer.id).values()
    assert [(r["milestone_key"], r["occurrence"]) for r in rows] == [("hundred_widgets", 1)]
    assert rows[0]["value"] >= 100
    workflow = await Workflow.get(customer_id=customer.id)
    assert workflow.points == before + 70
    assert [b["key"] for b in workflow.badges] == ["centurion"]
    stream = OutboxEvent.filter(customer_id=customer.id)
    assert await stream.filter(type="milestone.achieved").count() == 1
    celebration = await stream.filter(type="celebration").values("payload", "actor")
    assert [c["payload"]["kind"] for c in celebration] == ["MILESTONE_ACHIEVED"]
    assert celebration[0]["actor"] == "system"
    assert celebration[0]["payload"]["title"] == "Milestone reached: Hundred widgets"
    assert await stream.filter(type="points.awarded", payload__contains={"points": 70}).count() == 1


async def test_concurrent_evaluations_record_and_award_once(tenant: Tenant) -> None:
    await install(tenant, HUNDRED)
    customer = await tenant.customer()
    await ingest(tenant, events(customer.id, "widget_made", 100))
    before = (await Workflow.get(customer_id=customer.id)).points

    async def evaluate() -> int:
        async with transaction():
            return len(await service.evaluate_customers(tenant.id, [customer.id], now=utcnow()))

    results = await asyncio.gather(*(evaluate() for _ in range(12)))
    assert sorted(results) == [0] * 11 + [1]
    assert await MilestoneAchievement.filter(customer_id=customer.id).count() == 1
    assert (await Workflow.get(customer_id=customer.id)).points == before + 70


async def test_a_repeatable_milestone_is_awarded_at_each_multiple(tenant: Tenant) -> None:
    every = {
        "key": "every_ten",
        "name": "Ten more",
        "repeatable": True,
        "criteria": [{"kind": "event_count", "event": "widget_made", "count": 10}],
        "reward": {"points": 5},
    }
    await install(tenant, every)
    customer = await tenant.customer()
    before = (await Workflow.get(customer_id=customer.id)).points
    for count in (7, 18, 1):  # 7, 25, 26 in total: achieved twice
        await ingest(tenant, events(customer.id, "widget_made", count))
        async with transaction():
            await service.evaluate_customers(tenant.id, [customer.id], now=utcnow())
    rows = await MilestoneAchievement.filter(customer_id=customer.id).order_by("occurrence")
    assert [r.occurrence for r in rows] == [1, 2]
    assert (await Workflow.get(customer_id=customer.id)).points == before + 10
    (view,) = (await service.progress_of(tenant.admin, [customer.id]))[customer.id]
    assert (view.times, view.progress.current, view.progress.target) == (2, 26, 30)
    assert view.progress.missing == "4 more widget_made events."


async def test_rewards_go_through_the_workflow_and_can_unlock_a_stage(tenant: Tenant) -> None:
    """Points from a milestone count toward a stage that waits for points (engine settle)."""
    await install(tenant, {**HUNDRED, "reward": {"points": 1000}})
    customer = await tenant.customer()
    for key in ("verify_email", "complete_profile", "watch_intro"):
        await tenant.act(customer.id, key, TaskAction.COMPLETE)
    await ingest(tenant, events(customer.id, "widget_made", 100))
    async with transaction():
        await service.evaluate_customers(tenant.id, [customer.id], now=utcnow())
    wf = await Workflow.get(customer_id=customer.id)
    assert wf.points >= 1000
    kinds = (
        await OutboxEvent.filter(customer_id=customer.id)
        .order_by("sequence")
        .values_list("type", flat=True)
    )
    tail = kinds[-3:]
    assert tail[0] == "milestone.achieved" and "points.awarded" in tail


async def test_stats_of_a_known_history(tenant: Tenant) -> None:
    await install(tenant, HUNDRED)
    now = utcnow()
    signup = now - timedelta(days=60)
    people = [
        await tenant.customer(user_type=t, acquisition_channel=ch, signed_up_at=signup)
        for t, ch in [
            ("startup", "organic"),
            ("startup", "organic"),
            ("startup", "paid"),
            ("smb", "paid"),
            ("smb", "organic"),
        ]
    ]
    for customer, days in zip(people, (2, 4, 10, 20), strict=False):
        await MilestoneAchievement.create(
            organization_id=tenant.id,
            customer_id=customer.id,
            milestone_key="hundred_widgets",
            occurrence=1,
            set_version=2,
            name="Hundred widgets",
            value=100,
            achieved_at=signup + timedelta(days=days),
        )
    body = await gql(
        "{ milestoneStats { key overall { customers achieved rate medianDaysToAchieve "
        "p90DaysToAchieve } byUserType { label customers achieved rate medianDaysToAchieve } "
        "byAcquisitionChannel { label achieved rate } } }",
        token=tokens_of(tenant, people[0])[Role.CSM],
    )
    (stat,) = body["data"]["milestoneStats"]
    assert stat["overall"] == {
        "customers": 5,
        "achieved": 4,
        "rate": 0.8,
        "medianDaysToAchieve": 7.0,
        "p90DaysToAchieve": 17.0,
    }
    assert stat["byUserType"] == [
        {"label": "smb", "customers": 2, "achieved": 1, "rate": 0.5, "medianDaysToAchieve": 20.0},
        {
            "label": "startup",
            "customers": 3,
            "achieved": 3,
            "rate": 1.0,
            "medianDaysToAchieve": 4.0,
        },
    ]
    assert stat["byAcquisitionChannel"] == [
        {"label": "organic", "achieved": 2, "rate": 0.6667},
        {"label": "paid", "achieved": 2, "rate": 1.0},
    ]
    async with transaction():  # analytics counts customers from its rollups
        await analytics_rollups.refresh([p.id for p in people], now=utcnow())
    analytics = await gql(
        '{ analytics(filter: {userType: "smb"}) { milestoneAchievements { key achieved rate } } }',
        token=tokens_of(tenant, people[0])[Role.CSM],
    )
    assert analytics["data"]["analytics"]["milestoneAchievements"] == [
        {"key": "hundred_widgets", "achieved": 1, "rate": 0.5}
    ]
    refused = await gql(
        "{ milestoneStats { key } }", token=tokens_of(tenant, people[0])[Role.CUSTOMER]
    )
    assert error_codes(refused) == ["FORBIDDEN"]
