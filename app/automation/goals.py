"""Goal tracking: a run's goal is met when its event follows within the rule's window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection

from app.automation import facts as facts_mod
from app.automation import rules
from app.automation.conditions import evaluate
from app.automation.models import AutomationRule
from app.events.channels import Published

_PENDING = """SELECT id, rule_id, customer_id, event_id, created_at, goal_deadline
FROM automation_run
WHERE customer_id = ANY($1::uuid[]) AND goal_deadline IS NOT NULL AND goal_met_at IS NULL
AND goal_deadline >= $2"""


def goal_met(goal: rules.Goal, event: Published) -> bool:
    """Whether an event is the outcome a goal waits for."""
    if not rules.event_matches(goal.event, event.type):
        return False
    if goal.conditions is None:
        return True
    return evaluate(goal.conditions, {"event": facts_mod.event_facts(event)}).held


async def observe(events: Sequence[Published], *, now: datetime) -> int:
    """Mark the runs whose goal one of these events meets; return how many."""
    customers = list({e.customer_id for e in events if e.customer_id is not None})
    if not customers:
        return 0
    earliest = min(e.created_at for e in events)
    conn = get_connection("default")
    pending = await conn.execute_query_dict(_PENDING, [customers, earliest])
    if not pending:
        return 0
    goals: dict[uuid.UUID, rules.Goal | None] = {}
    for row in await AutomationRule.filter(id__in=list({r["rule_id"] for r in pending})):
        goal = row.definition.get("goal")
        goals[row.id] = rules.Goal.model_validate(goal) if goal else None
    met: dict[Any, datetime] = {}
    for run in pending:
        goal = goals.get(run["rule_id"])
        if goal is None:
            continue
        for event in events:
            after = (
                event.id > run["event_id"]
                if run["event_id"] is not None
                else event.created_at >= run["created_at"]
            )
            if (
                event.customer_id == run["customer_id"]
                and after
                and event.created_at <= run["goal_deadline"]
                and goal_met(goal, event)
            ):
                met[run["id"]] = event.created_at
                break
    for run_id, at in met.items():
        await conn.execute_query(
            "UPDATE automation_run SET goal_met_at = $2 WHERE id = $1 AND goal_met_at IS NULL",
            [run_id, at],
        )
    return len(met)
