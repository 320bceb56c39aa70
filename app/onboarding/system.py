"""Workflow changes nobody clicked: tasks completed by usage events, and rewards earned
elsewhere (milestones). Consumers of the event spine call these inside their transaction;
they go through the same engine, persistence and outbox as a manual change, with actor
`system`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.errors import NotFound
from app.events import outbox
from app.kit.tenancy import Tenant
from app.onboarding import engine
from app.onboarding.engine import Outcome
from app.onboarding.records import Criterion
from app.onboarding.service import load, persist
from app.onboarding.snapshot import Loaded
from app.onboarding.states import DONE, TaskAction, TaskStatus

SYSTEM = "system"
_OPEN = (TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS, TaskStatus.FAILED)

_CANDIDATES = """SELECT DISTINCT w.customer_id FROM workflow_task t
JOIN workflow w ON w.id = t.workflow_id
WHERE t.organization_id = $1 AND w.customer_id = ANY($2::uuid[])
  AND t.success_criterion IS NOT NULL AND t.status IN ('AVAILABLE', 'IN_PROGRESS', 'FAILED')
  AND ($3::text[] IS NULL OR t.success_criterion->>'event' = ANY($3::text[]))
  AND w.status = 'ACTIVE' AND NOT w.paused"""
_USAGE = """SELECT name, day, count FROM usage_daily
WHERE organization_id = $1 AND customer_id = $2 AND name = ANY($3::text[]) AND day <= $4"""


async def customers_with_open_criteria(
    organization_id: uuid.UUID, customer_ids: Sequence[uuid.UUID], names: Sequence[str] | None
) -> list[uuid.UUID]:
    """The customers among `customer_ids` with an open task a usage event (one of `names`,
    or any) could complete."""
    rows = await get_connection("default").execute_query_dict(
        _CANDIDATES, [organization_id, list(customer_ids), None if names is None else list(names)]
    )
    return [r["customer_id"] for r in rows]


def criterion_count(days: dict[date, int], criterion: Criterion, *, now: datetime) -> int:
    """The events of `days` (UTC day -> count) that count toward `criterion` at `now`."""
    if criterion.within_days is None:
        return sum(days.values())
    first = (now - timedelta(days=criterion.within_days - 1)).date()
    return sum(n for d, n in days.items() if d >= first)


async def complete_by_usage(
    tenant: Tenant, customer_id: uuid.UUID, *, cause: int | None, now: datetime
) -> Outcome:
    """Complete every open task of the customer whose success criterion its usage meets,
    and what those completions unlock in turn. `cause` is the outbox event that asked."""
    try:
        loaded = await load(tenant, customer_id)
    except NotFound:
        return Outcome()
    if loaded.state.paused:
        return Outcome()
    criteria = {
        k: t.success_criterion
        for k, t in loaded.tasks.items()
        if t.success_criterion is not None and loaded.state.tasks[k].status not in DONE
    }
    if not criteria:
        return Outcome()
    names = sorted({c.event for c in criteria.values()})
    rows = await get_connection("default").execute_query_dict(
        _USAGE, [tenant.organization_id, customer_id, names, now.date()]
    )
    usage: dict[str, dict[date, int]] = {}
    for r in rows:
        usage.setdefault(r["name"], {})[r["day"]] = int(r["count"])
    counts = {k: criterion_count(usage.get(c.event, {}), c, now=now) for k, c in criteria.items()}
    out = Outcome()
    engine.settle(loaded.state, out, now=now)  # time-based unlocks that came due since
    while True:
        due = [
            k
            for k, c in criteria.items()
            if loaded.state.tasks[k].status in _OPEN and counts[k] >= c.count
        ]
        if not due:
            break
        for key in due:
            out = out.then(_complete(loaded, key, criteria[key], counts[key], cause, now))
    if out.events:
        await persist(loaded, out, now, actor=SYSTEM)
    return out


def _complete(
    loaded: Loaded, key: str, criterion: Criterion, count: int, cause: int | None, now: datetime
) -> Outcome:
    state = loaded.state
    out = Outcome()
    if state.tasks[key].status is TaskStatus.FAILED:
        out = engine.apply_task_action(state, key, TaskAction.RETRY, now=now)
    done = engine.apply_task_action(state, key, TaskAction.COMPLETE, now=now)
    trigger: dict[str, Any] = {"event": criterion.event, "count": count, "needed": criterion.count}
    if criterion.within_days is not None:
        trigger["withinDays"] = criterion.within_days
    if cause is not None:
        trigger["outboxEventId"] = cause
    for kind, payload in done.events:
        if kind == "task.completed" and payload.get("task") == key:
            payload["completedBy"] = "usage"
            payload["trigger"] = trigger
    return out.then(done)


async def award(
    tenant: Tenant,
    customer_id: uuid.UUID,
    *,
    points: int,
    badge: dict[str, Any] | None,
    source: str,
    events: Sequence[tuple[str, dict[str, Any]]],
    now: datetime,
) -> Outcome:
    """Add points and/or a badge to the customer's workflow through the engine, recording
    `events` (what earned them) before the workflow's own; with no workflow, only `events`."""
    try:
        loaded = await load(tenant, customer_id)
    except NotFound:
        await outbox.record(
            organization_id=tenant.organization_id,
            customer_id=customer_id,
            events=list(events),
            actor=SYSTEM,
        )
        return Outcome()
    out = engine.award(loaded.state, points=points, badge=badge, source=source, now=now)
    await persist(loaded, out, now, actor=SYSTEM, before=events)
    return out
