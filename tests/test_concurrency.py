"""Concurrent requests on one workflow apply once each, in one order, with gap-free events.

Everything goes through the GraphQL view in-process against real PostgreSQL; the
requests really overlap (the `db` fixture's pool holds 20 connections, so up to 20
transactions wait on the workflow's row lock at once while the rest wait for the pool).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.states import StageStatus, TaskStatus
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.support.factories import Tenant

UPDATE_TASK = """
mutation Update($customerId: ID!, $key: String!, $action: TaskAction!) {
  updateTask(input: {customerId: $customerId, taskKey: $key, action: $action}) {
    task { key status }
    workflow { points badges { key } }
    completedStages { key }
    unlockedStages { key }
    unlockedTasks { key }
    pointsAwarded
    badgesAwarded { key }
    celebrations { kind stageKey }
  }
}
"""

N = 50


@pytest.fixture
def gql() -> InProcessGraphQL:
    return InProcessGraphQL(make_settings())


def _csm_token(gql: InProcessGraphQL, tenant: Tenant) -> str:
    return token_for(
        gql.settings, organization_id=tenant.id, role=Role.CSM, subject=tenant.csm.subject
    )


async def _update(
    gql: InProcessGraphQL, token: str, customer: Customer, key: str, action: str
) -> dict[str, Any]:
    return await gql.execute(
        UPDATE_TASK,
        {"customerId": str(customer.id), "key": key, "action": action},
        token=token,
    )


async def _events(customer: Customer) -> list[OutboxEvent]:
    return await OutboxEvent.filter(customer_id=customer.id).order_by("sequence")


def _assert_gap_free(events: list[OutboxEvent]) -> None:
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(events) + 1)), sequences
    assert len({e.stream for e in events}) == 1


def _assert_refusal(body: dict[str, Any], code: str) -> None:
    """A well-formed GraphQL error: null data, one error with path, message and code."""
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["path"] == ["updateTask"], error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert error["extensions"]["code"] == code, error
    assert "Traceback" not in error["message"]


async def test_fifty_concurrent_completes_of_one_task_apply_once(
    tenant: Tenant, gql: InProcessGraphQL
) -> None:
    customer = await tenant.customer()
    token = _csm_token(gql, tenant)
    first = await _update(gql, token, customer, "verify_email", "COMPLETE")
    assert "errors" not in first, first
    before = len(await _events(customer))

    # The completion of `complete_profile` completes stage Welcome (+15, +50, badge).
    bodies = await asyncio.gather(
        *(_update(gql, token, customer, "complete_profile", "COMPLETE") for _ in range(N))
    )
    assert gql.max_in_flight > 10, "the requests did not overlap"

    winners = [b for b in bodies if "errors" not in b]
    losers = [b for b in bodies if "errors" in b]
    assert len(winners) == 1, [b.get("errors") for b in bodies][:3]
    assert len(losers) == N - 1
    for body in losers:
        _assert_refusal(body, "INVALID_TRANSITION")

    won = winners[0]["data"]["updateTask"]
    assert won["task"] == {"key": "complete_profile", "status": "COMPLETED"}
    assert won["pointsAwarded"] == 15 + 50
    assert won["workflow"]["points"] == 10 + 15 + 50
    assert [s["key"] for s in won["completedStages"]] == ["welcome"]
    assert [s["key"] for s in won["unlockedStages"]] == ["setup"]
    assert [b["key"] for b in won["badgesAwarded"]] == ["first-steps"]
    assert [c["kind"] for c in won["celebrations"]] == ["STAGE_COMPLETED", "BADGE_EARNED"]

    workflow = await Workflow.get(customer_id=customer.id)
    assert workflow.points == 10 + 15 + 50
    assert [b["key"] for b in workflow.badges] == ["first-steps"]
    task = await WorkflowTask.get(workflow_id=workflow.id, key="complete_profile")
    assert task.status == TaskStatus.COMPLETED and task.completed_at is not None
    welcome = await WorkflowStage.get(workflow_id=workflow.id, key="welcome")
    assert welcome.status == StageStatus.COMPLETED

    events = await _events(customer)
    _assert_gap_free(events)
    new = events[before:]
    kinds = Counter(e.type for e in new)
    completed = [e for e in new if e.type == "task.completed"]
    assert [e.payload["task"] for e in completed] == ["complete_profile"]
    assert kinds["stage.completed"] == 1
    assert kinds["badge.earned"] == 1
    assert sum(e.payload["points"] for e in new if e.type == "points.awarded") == 15 + 50
    everything = Counter(e.type for e in events)
    assert everything["stage.completed"] == 1 and everything["badge.earned"] == 1


async def test_concurrent_actions_on_different_tasks_all_apply(
    tenant: Tenant, gql: InProcessGraphQL
) -> None:
    customer = await tenant.customer()
    token = _csm_token(gql, tenant)
    for key in ("verify_email", "complete_profile"):
        body = await _update(gql, token, customer, key, "COMPLETE")
        assert "errors" not in body, body

    # Three different moves, each sent five times, all at once. Whatever the order, the
    # end state is the same: Setup completes (+30 +20 +100, badge), Features unlocks
    # (it needs 150 points), the optional intro is skipped, and each move applies once.
    moves = [
        ("connect_data_source", "COMPLETE"),
        ("invite_team", "COMPLETE"),
        ("watch_intro", "SKIP"),
    ]
    requests = [move for move in moves for _ in range(5)]
    bodies = await asyncio.gather(
        *(_update(gql, token, customer, key, action) for key, action in requests)
    )

    applied: Counter[tuple[str, str]] = Counter()
    for (key, action), body in zip(requests, bodies, strict=True):
        if "errors" in body:
            _assert_refusal(body, "INVALID_TRANSITION")
        else:
            applied[(key, action)] += 1
    assert applied == Counter(dict.fromkeys(moves, 1)), applied

    expected_points = 10 + 15 + 50 + 30 + 20 + 100
    workflow = await Workflow.get(customer_id=customer.id)
    assert workflow.points == expected_points
    assert sorted(b["key"] for b in workflow.badges) == ["all-set", "first-steps"]
    statuses = {t.key: t.status for t in await WorkflowTask.filter(workflow_id=workflow.id)}
    assert statuses["connect_data_source"] == TaskStatus.COMPLETED
    assert statuses["invite_team"] == TaskStatus.COMPLETED
    assert statuses["watch_intro"] == TaskStatus.SKIPPED
    assert statuses["configure_notifications"] == TaskStatus.AVAILABLE
    assert statuses["create_first_project"] == TaskStatus.AVAILABLE
    stages = {s.key: s.status for s in await WorkflowStage.filter(workflow_id=workflow.id)}
    assert stages == {
        "welcome": StageStatus.COMPLETED,
        "setup": StageStatus.COMPLETED,
        "features": StageStatus.UNLOCKED,
        "mastery": StageStatus.LOCKED,
    }

    events = await _events(customer)
    _assert_gap_free(events)
    kinds = Counter(e.type for e in events)
    assert kinds["stage.completed"] == 2 and kinds["badge.earned"] == 2
    assert kinds["task.completed"] == 4 and kinds["task.skipped"] == 1
    unlocked = Counter(e.payload["task"] for e in events if e.type == "task.unlocked")
    assert all(n == 1 for n in unlocked.values()), unlocked
    assert sum(e.payload["points"] for e in events if e.type == "points.awarded") == (
        expected_points
    )
    # Sequence order is commit order: the points every event reports never go down,
    # and the last event reports the final total.
    reported = [e.payload["workflow"]["points"] for e in events if "workflow" in e.payload]
    assert reported == sorted(reported)
    assert reported[-1] == expected_points


async def test_concurrent_moves_for_different_customers_each_apply_once(
    tenant: Tenant, gql: InProcessGraphQL
) -> None:
    customers = [await tenant.customer() for _ in range(5)]
    token = _csm_token(gql, tenant)
    bodies = await asyncio.gather(
        *(_update(gql, token, c, "verify_email", "COMPLETE") for c in customers for _ in range(4))
    )
    assert sum("errors" not in b for b in bodies) == len(customers)
    for customer in customers:
        workflow = await Workflow.get(customer_id=customer.id)
        assert workflow.points == 10
        _assert_gap_free(await _events(customer))
