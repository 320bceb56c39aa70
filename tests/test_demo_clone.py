"""Large demos copy simulated customers in SQL: each copy is its original moved by whole days,
its states are ones the engine reaches, and the rollups count it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection

from app import demo
from app.analytics import maintain
from app.demo import DemoResult, seed_demo
from app.demo_clone import DEMO_DAYS
from app.kit.clock import utcnow
from tests.test_demo import test_states_are_ones_the_engine_reaches as engine_invariants

ORIGINALS = 40
CUSTOMERS = 100


@pytest.fixture(scope="module")
async def copied(db: str) -> AsyncIterator[DemoResult]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "ORIGINALS", ORIGINALS)
        yield await seed_demo(customers=CUSTOMERS, slug=f"demo-{uuid.uuid4().hex[:10]}")


async def rows(sql: str, *args: Any) -> list[dict[str, Any]]:
    return await get_connection("default").execute_query_dict(sql, list(args))


_WORKFLOWS = """SELECT c.id AS customer, w.id AS workflow, c.signed_up_at, w.status, w.points
FROM workflow w JOIN customer c ON c.id = w.customer_id WHERE w.organization_id = $1"""
_TASKS = """SELECT key, status, progress, attempts, failure_reason, started_at, completed_at
FROM workflow_task WHERE workflow_id = $1 ORDER BY key"""
_STAGES = """SELECT key, status, unlocked_at, completed_at FROM workflow_stage
WHERE workflow_id = $1
ORDER BY key"""
_HEAD = """SELECT c.signed_up_at, w.status, w.points, w.progress, w.minutes_remaining,
  w.current_stage_key, w.last_activity_at, w.completed_at, w.badges::text AS badges
FROM workflow w JOIN customer c ON c.id = w.customer_id WHERE w.id = $1"""
_USAGE = "SELECT day, name, count FROM usage_daily WHERE customer_id = $1 ORDER BY day, name"
_MILESTONES = """SELECT milestone_key, occurrence, points, achieved_at FROM milestone_achievement
WHERE customer_id = $1 ORDER BY milestone_key, occurrence"""


def moved(found: list[dict[str, Any]], by: timedelta) -> list[dict[str, Any]]:
    """Rows with every date and time moved by `by`."""
    return [
        {k: (v + by if hasattr(v, "year") and v is not None else v) for k, v in row.items()}
        for row in found
    ]


def is_copy(row: dict[str, Any]) -> bool:
    """A copy's workflow id is its customer id with the last two bytes 0x0100."""
    mine, parent = row["workflow"].bytes, row["customer"].bytes
    return mine[:14] == parent[:14] and mine[14:] == b"\x01\x00"


async def same_moved(copy: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether `copy` holds `source`'s rows moved by the whole days between their signups."""
    by = copy["signed_up_at"] - source["signed_up_at"]
    if by != timedelta(days=by.days) or (copy["status"], copy["points"]) != (
        source["status"],
        source["points"],
    ):
        return False
    (head,), (theirs,) = await rows(_HEAD, copy["workflow"]), await rows(_HEAD, source["workflow"])
    badges = (head.pop("badges"), theirs.pop("badges"))
    if head != moved([theirs], by)[0] or badges[0].count("awarded_at") != badges[1].count(
        "awarded_at"
    ):
        return False
    for sql, key in ((_TASKS, "workflow"), (_STAGES, "workflow"), (_USAGE, "customer")):
        if await rows(sql, copy[key]) != moved(await rows(sql, source[key]), by):
            return False
    return await rows(_MILESTONES, copy["customer"]) == moved(
        await rows(_MILESTONES, source["customer"]), by
    )


async def test_a_copy_is_its_original_moved_by_whole_days(copied: DemoResult) -> None:
    org = copied.organization.id
    now = utcnow()
    everyone = await rows(_WORKFLOWS, org)
    copies = [r for r in everyone if is_copy(r)]
    sources = [r for r in everyone if not is_copy(r)]
    assert (len(copies), len(sources)) == (CUSTOMERS - ORIGINALS, ORIGINALS)
    people = await rows(
        "SELECT count(DISTINCT email) AS emails, count(DISTINCT external_id) AS ids,"
        " count(*) AS n FROM customer WHERE organization_id = $1",
        org,
    )
    assert people[0]["emails"] == people[0]["ids"] == people[0]["n"] == CUSTOMERS
    used = set()
    for copy in copies:
        assert now - timedelta(days=DEMO_DAYS) <= copy["signed_up_at"] <= now
        found = [s for s in sources if await same_moved(copy, s)]
        assert found, copy
        used.add(found[0]["customer"])
        by = copy["signed_up_at"] - found[0]["signed_up_at"]
        assert abs(by.days) <= 4
    assert len(used) > 10  # drawn from many originals


async def test_copies_hold_states_the_engine_reaches(copied: DemoResult) -> None:
    await engine_invariants(copied)


async def test_everyone_has_today_s_health(copied: DemoResult) -> None:
    scored = await rows(
        "SELECT count(*) AS n FROM health_score WHERE organization_id = $1", copied.organization.id
    )
    assert scored[0]["n"] == CUSTOMERS


_ROLLUPS = [
    "SELECT * FROM analytics_cohort WHERE organization_id = $1",
    "SELECT * FROM analytics_step WHERE organization_id = $1",
    "SELECT * FROM analytics_completion WHERE organization_id = $1",
    "SELECT * FROM analytics_cohort_week WHERE organization_id = $1",
]


async def test_the_rollups_are_what_a_rebuild_computes(copied: DemoResult) -> None:
    org = copied.organization.id

    async def state() -> list[list[str]]:
        out = []
        for sql in _ROLLUPS:
            found = [{k: v for k, v in r.items() if k != "id"} for r in await rows(sql, org)]
            out.append(sorted(str(sorted(r.items())) for r in found if any_count(r)))
        return out

    seeded = await state()
    assert seeded[0]  # something was rolled up
    await maintain.rebuild(org, now=utcnow())
    assert await state() == seeded


def any_count(row: dict[str, Any]) -> bool:
    """A rollup row that still counts something (a rebuild drops rows that sum to zero)."""
    return any(isinstance(v, int) and not isinstance(v, bool) and v for v in row.values()) or any(
        isinstance(v, list) and any(v) for v in row.values()
    )


async def test_a_second_demo_of_the_same_seed_and_size_gets_ids_of_its_own(
    copied: DemoResult,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "ORIGINALS", ORIGINALS)
        second = await seed_demo(customers=CUSTOMERS, slug=f"demo-{uuid.uuid4().hex[:10]}")
    assert second.customers == CUSTOMERS
    [shared] = await rows(
        "SELECT count(*) FROM customer a JOIN customer b ON a.email = b.email"
        " WHERE a.organization_id = $1 AND b.organization_id = $2",
        copied.organization.id,
        second.organization.id,
    )
    assert shared["count"] == CUSTOMERS  # the same people, as the same seed gives
