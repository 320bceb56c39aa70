"""The facts milestone criteria read, for many customers at once: a fixed number of queries
per call whatever the number of customers, each reading only what the set's criteria need.

Usage comes from the daily rollups (`usage_daily`); only property-filtered counts read raw
events. With `as_of` in the past (the demo's history), nothing after it is counted and
points are summed from what was completed by then.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.milestones.criteria import Facts, filter_key, window_start
from app.milestones.definitions import (
    ActiveDays,
    EventCount,
    HealthLevelHeld,
    MilestoneSetDef,
    PointsReached,
    StagesCompleted,
    TasksCompleted,
    WorkflowCompletedWithin,
)

_CUSTOMERS = """SELECT c.id, c.signed_up_at, w.points, w.completed_at
FROM customer c
LEFT JOIN workflow w ON w.customer_id = c.id AND w.organization_id = c.organization_id
WHERE c.organization_id = $1 AND c.id = ANY($2::uuid[])"""
_TASKS = """SELECT w.customer_id, t.key, t.points, t.completed_at FROM workflow_task t
JOIN workflow w ON w.id = t.workflow_id
WHERE t.organization_id = $1 AND w.customer_id = ANY($2::uuid[]) AND t.status = 'COMPLETED'
  AND t.completed_at <= $3"""
_STAGES = """SELECT w.customer_id, s.key, s.reward_points, s.completed_at FROM workflow_stage s
JOIN workflow w ON w.id = s.workflow_id
WHERE s.organization_id = $1 AND w.customer_id = ANY($2::uuid[]) AND s.status = 'COMPLETED'
  AND s.completed_at <= $3"""
_USAGE = """SELECT customer_id, name, day, count FROM usage_daily
WHERE organization_id = $1 AND customer_id = ANY($2::uuid[]) AND day <= $3
  AND ($4::text[] IS NULL OR name = ANY($4::text[])) AND ($5::date IS NULL OR day >= $5)"""
_FILTERED = """SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
FROM usage_event
WHERE organization_id = $1 AND customer_id = ANY($2::uuid[]) AND name = $3
  AND occurred_at <= $4 AND ($5::timestamptz IS NULL OR occurred_at >= $5)
  AND properties @> $6::jsonb
GROUP BY 1, 2"""
_HEALTH = """SELECT customer_id, level, taken_at FROM health_snapshot
WHERE organization_id = $1 AND customer_id = ANY($2::uuid[]) AND taken_at <= $3
  AND taken_at >= $4
ORDER BY customer_id, taken_at"""


def _needs(defs: MilestoneSetDef) -> dict[str, Any]:
    criteria = [c for m in defs.milestones for c in m.criteria]
    names: set[str] | None = set()
    oldest: int | None = 0  # days back the usage must reach (None: all of it)
    for c in criteria:
        if (isinstance(c, EventCount) and not c.where) or isinstance(c, ActiveDays):
            if c.event is None:
                names = None
            elif names is not None:
                names.add(c.event)
            if c.within_days is None:
                oldest = None
            elif oldest is not None:
                oldest = max(oldest, c.within_days)
    return {
        "names": names,
        "oldest": oldest,
        "filtered": [c for c in criteria if isinstance(c, EventCount) and c.where],
        "workflow": any(
            isinstance(
                c, TasksCompleted | StagesCompleted | WorkflowCompletedWithin | PointsReached
            )
            for c in criteria
        ),
        "health": max((c.days for c in criteria if isinstance(c, HealthLevelHeld)), default=0),
    }


async def load_facts(
    organization_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    defs: MilestoneSetDef,
    *,
    now: datetime,
    history: bool = False,
) -> dict[uuid.UUID, Facts]:
    """Facts of each customer that exists in the organization, as of `now`; with `history`,
    points are summed from what earned them, so `Facts.at` can go back in time."""
    conn = get_connection("default")
    ids = list(customer_ids)
    need = _needs(defs)
    facts: dict[uuid.UUID, Facts] = {}
    for r in await conn.execute_query_dict(_CUSTOMERS, [organization_id, ids]):
        done = r["completed_at"]
        facts[r["id"]] = Facts(
            now=now,
            signed_up_at=r["signed_up_at"],
            workflow_completed_at=done if done is not None and done <= now else None,
            points=int(r["points"] or 0),
            points_log=[] if history else None,
        )
    if not facts:
        return facts
    ids = list(facts)
    if need["workflow"]:
        for r in await conn.execute_query_dict(_TASKS, [organization_id, ids, now]):
            f = facts[r["customer_id"]]
            f.tasks_completed[r["key"]] = r["completed_at"]
            if f.points_log is not None:
                f.points_log.append((r["completed_at"], int(r["points"])))
        for r in await conn.execute_query_dict(_STAGES, [organization_id, ids, now]):
            f = facts[r["customer_id"]]
            f.stages_completed[r["key"]] = r["completed_at"]
            if f.points_log is not None:
                f.points_log.append((r["completed_at"], int(r["reward_points"])))
    names = need["names"]
    if names is None or names:
        start = window_start(now, need["oldest"]) if need["oldest"] is not None else None
        rows = await conn.execute_query_dict(
            _USAGE,
            [organization_id, ids, now.date(), None if names is None else sorted(names), start],
        )
        for r in rows:
            facts[r["customer_id"]].usage.setdefault(r["name"], {})[r["day"]] = int(r["count"])
    for c in need["filtered"]:
        since = None if c.within_days is None else now - timedelta(days=c.within_days)
        rows = await conn.execute_query_dict(
            _FILTERED, [organization_id, ids, c.event, now, since, json.dumps(c.where)]
        )
        for r in rows:
            days = facts[r["customer_id"]].filtered.setdefault(filter_key(c), {})
            days[r["day"]] = int(r["n"])
    if need["health"]:
        await _health(facts, organization_id, ids, now=now, days=400 if history else need["health"])
    return facts


async def _health(
    facts: dict[uuid.UUID, Facts],
    organization_id: uuid.UUID,
    ids: list[uuid.UUID],
    *,
    now: datetime,
    days: int,
) -> None:
    """The latest health level of each customer and since when it has held (as far back
    as the longest `health_level_held` criterion looks)."""
    since = now - timedelta(days=days + 1)
    rows = await get_connection("default").execute_query_dict(
        _HEALTH, [organization_id, ids, now, since]
    )
    for r in rows:  # ordered by customer and time
        facts[r["customer_id"]].health_log.append((r["taken_at"], r["level"]))
