"""Demo seeding against real PostgreSQL: spread, engine-consistent states, idempotency, events."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest

from app.accounts.models import Role
from app.customers.models import Customer
from app.demo import CHANNELS, USER_TYPES, DemoResult, seed_demo
from app.events.models import EventStream, OutboxEvent
from app.kit.clock import utcnow
from app.milestones.models import MilestoneAchievement
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.states import StageStatus, TaskStatus, WorkflowStatus


def unique_slug() -> str:
    return f"demo-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def demo(db: str) -> DemoResult:
    """150 demo customers, seeded once for the module."""
    return await seed_demo(customers=150, slug=unique_slug())


async def situations(org_id: uuid.UUID) -> Counter[str]:
    """How many workflows are completed, in flight, stalled, or hold a FAILED/SKIPPED task."""
    now = utcnow()
    counts: Counter[str] = Counter()
    for wf in await Workflow.filter(organization_id=org_id).values("status", "last_activity_at"):
        if wf["status"] == WorkflowStatus.COMPLETED:
            counts["completed"] += 1
        elif wf["last_activity_at"] < now - timedelta(days=10):
            counts["stalled"] += 1
        else:
            counts["in_flight"] += 1
    for status in (TaskStatus.FAILED, TaskStatus.SKIPPED):
        rows = await WorkflowTask.filter(organization_id=org_id, status=status).values_list(
            "workflow_id", flat=True
        )
        counts[status.value.lower()] = len(set(rows))
    return counts


async def test_seeds_the_requested_customers_spread_over_types_and_channels(
    demo: DemoResult,
) -> None:
    org_id = demo.organization.id
    customers = await Customer.filter(organization_id=org_id).values()
    assert demo.customers == len(customers) == 150
    assert await Workflow.filter(organization_id=org_id).count() == 150
    assert len({c["user_type"] for c in customers}) >= 4
    assert len({c["acquisition_channel"] for c in customers}) >= 5
    now = utcnow()
    assert all(now - timedelta(days=90) <= c["signed_up_at"] <= now for c in customers)
    assert len({c["email"] for c in customers}) == 150
    assert all(len(c["name"].split()) == 2 and c["company"] for c in customers)
    assert demo.organization.name == "Acme Analytics"
    assert (demo.admin.role, demo.csm.role) == (Role.ADMIN, Role.CSM)


async def test_every_situation_is_present(demo: DemoResult) -> None:
    counts = await situations(demo.organization.id)
    for situation in ("completed", "in_flight", "stalled", "failed", "skipped"):
        assert counts[situation] >= 1, (situation, counts)
    sample = await Workflow.get(customer_id=demo.sample_customer.id)
    assert sample.status == WorkflowStatus.ACTIVE and sample.points > 0
    assert sample.last_activity_at > utcnow() - timedelta(days=10)
    statuses = set(
        await WorkflowTask.filter(workflow_id=sample.id).values_list("status", flat=True)
    )
    assert TaskStatus.FAILED not in statuses
    assert statuses & {TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS}


async def test_states_are_ones_the_engine_reaches(demo: DemoResult) -> None:
    org_id = demo.organization.id
    now = utcnow()
    signups = dict(await Customer.filter(organization_id=org_id).values_list("id", "signed_up_at"))
    tasks: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for task in await WorkflowTask.filter(organization_id=org_id).values():
        tasks[task["workflow_id"]].append(task)
    stages: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for stage in await WorkflowStage.filter(organization_id=org_id).values():
        stages[stage["workflow_id"]].append(stage)
    rewards: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)  # milestones reached
    for got in await MilestoneAchievement.filter(organization_id=org_id).values():
        rewards[got["customer_id"]].append(got)
    for wf in await Workflow.filter(organization_id=org_id).values():
        mine, mine_stages = tasks[wf["id"]], stages[wf["id"]]
        done = [s for s in mine_stages if s["status"] == StageStatus.COMPLETED]
        earned = sum(t["points"] for t in mine if t["status"] == TaskStatus.COMPLETED)
        reached = rewards[wf["customer_id"]]
        assert wf["points"] == earned + sum(s["reward_points"] for s in done) + sum(
            m["points"] for m in reached
        )
        assert sorted(b["key"] for b in wf["badges"]) == sorted(
            [s["reward_badge"]["key"] for s in done if s["reward_badge"]]
            + [m["badge"]["key"] for m in reached if m["badge"]]
        )
        all_done = len(done) == len(mine_stages)
        assert (wf["status"] == WorkflowStatus.COMPLETED) == all_done
        signup = signups[wf["customer_id"]]
        assert wf["started_at"] == signup <= wf["last_activity_at"] <= now
        for stage in mine_stages:
            own = [t for t in mine if t["stage_id"] == stage["id"]]
            if stage["status"] == StageStatus.LOCKED:
                assert all(t["status"] == TaskStatus.LOCKED for t in own)
            if stage["status"] == StageStatus.COMPLETED:
                required = [t for t in own if t["required"]]
                assert all(t["status"] == TaskStatus.COMPLETED for t in required)
        for task in mine:
            for moment in (task["started_at"], task["completed_at"]):
                assert moment is None or signup <= moment <= wf["last_activity_at"]


async def test_outbox_sequences_are_gap_free_and_already_published(demo: DemoResult) -> None:
    org_id = demo.organization.id
    events = await OutboxEvent.filter(
        organization_id=org_id, customer_id__not_isnull=True
    ).order_by("stream", "sequence")
    by_stream: dict[uuid.UUID, list[OutboxEvent]] = defaultdict(list)
    for event in events:
        by_stream[event.stream].append(event)
    assert len(by_stream) == 150
    last = dict(await EventStream.filter(organization_id=org_id).values_list("id", "last_sequence"))
    for stream, mine in by_stream.items():
        assert [e.sequence for e in mine] == list(range(1, len(mine) + 1))
        assert last[stream] == len(mine)
        assert [e.type for e in mine[:2]] == ["customer.created", "workflow.started"]
        assert all(e.customer_id == stream and e.published_at is not None for e in mine)
        assert [e.created_at for e in mine] == sorted(e.created_at for e in mine)
    assert len(events) > 2 * 150  # task history beyond created + started


async def test_seeding_twice_does_not_duplicate(demo: DemoResult) -> None:
    again = await seed_demo(customers=150, slug=demo.organization.slug)
    assert again.organization.id == demo.organization.id
    assert again.sample_customer.id == demo.sample_customer.id
    assert again.customers == 150
    assert await Customer.filter(organization_id=demo.organization.id).count() == 150


async def test_the_sample_customer_stays_the_same_and_has_a_task_to_do(demo: DemoResult) -> None:
    sample = demo.sample_customer
    assert demo.sample_task is not None
    task = await WorkflowTask.get(workflow__customer_id=sample.id, key=demo.sample_task)
    assert task.status == TaskStatus.AVAILABLE
    # Time passes and the sample goes quiet: it no longer looks like the best sample, yet stays.
    quiet = utcnow() - timedelta(days=40)
    await Workflow.filter(customer_id=sample.id).update(last_activity_at=quiet)
    later = await seed_demo(customers=150, slug=demo.organization.slug)
    assert later.sample_customer.id == sample.id
    assert later.sample_task == demo.sample_task


async def test_same_seed_gives_the_same_demo(db: str) -> None:
    async def shape(result: DemoResult) -> list[tuple[Any, ...]]:
        rows = await Workflow.filter(organization_id=result.organization.id).values_list(
            "customer__email", "customer__user_type", "customer__acquisition_channel", "points"
        )
        return sorted(rows)

    first = await seed_demo(customers=40, seed=11, slug=unique_slug())
    second = await seed_demo(customers=40, seed=11, slug=unique_slug())
    assert await shape(first) == await shape(second)


async def test_full_demo_of_1200_customers(db: str) -> None:
    calls: list[tuple[int, int]] = []
    result = await seed_demo(slug=unique_slug(), progress=lambda d, t: calls.append((d, t)))
    org_id = result.organization.id
    assert result.customers == await Customer.filter(organization_id=org_id).count() == 1200
    assert calls[-1] == (1200, 1200) and calls == sorted(calls)
    customers = await Customer.filter(organization_id=org_id).values(
        "user_type", "acquisition_channel"
    )
    types = Counter(c["user_type"] for c in customers)
    channels = Counter(c["acquisition_channel"] for c in customers)
    assert set(types) == set(USER_TYPES) and min(types.values()) >= 60
    assert set(channels) == set(CHANNELS) and min(channels.values()) >= 60
    counts = await situations(org_id)
    assert counts["completed"] + counts["in_flight"] + counts["stalled"] == 1200
    assert counts["in_flight"] >= 240 and counts["completed"] >= 120 and counts["stalled"] >= 60
    assert counts["failed"] >= 12 and counts["skipped"] >= 60
