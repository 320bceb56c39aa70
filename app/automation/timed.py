"""Time in the engine: time-based triggers (once per qualifying episode, across any number of
workers) and runs resumed after their delay."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tortoise.connection import get_connection

from app.automation import facts as facts_mod
from app.automation import rules
from app.automation.conditions import as_datetime
from app.automation.engine import LoadedRule, execute, fire, loaded, of_definition, settle_run
from app.automation.models import (
    ActionExecution,
    ActionStatus,
    AutomationRule,
    AutomationRuleVersion,
    AutomationRun,
    RunStatus,
)
from app.db import retried_or_skipped, transaction
from app.events.channels import Published
from app.events.models import OutboxEvent
from app.kit.clock import utcnow

log = logging.getLogger(__name__)

BATCH = 500

_NO_PROGRESS = """SELECT w.customer_id, 'time:no_progress:' || w.customer_id || ':' ||
  to_char(w.last_activity_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS trigger
FROM workflow w
WHERE w.organization_id = $1 AND w.status = 'ACTIVE' AND NOT w.paused
  AND w.last_activity_at <= $2
  AND ($3::text IS NULL OR (SELECT s.key FROM workflow_stage s WHERE s.workflow_id = w.id
       AND s.status <> 'COMPLETED' ORDER BY s.position LIMIT 1) = $3)
  AND NOT EXISTS (SELECT 1 FROM automation_run r WHERE r.organization_id = $1
    AND r.rule_id = $4 AND r.trigger = 'time:no_progress:' || w.customer_id || ':' ||
    to_char(w.last_activity_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
LIMIT $5"""

_NO_USAGE = """SELECT c.id AS customer_id,
  'time:no_usage:' || c.id || ':' ||
  to_char(coalesce(a.last_usage_at, c.signed_up_at) AT TIME ZONE 'UTC',
    'YYYY-MM-DD"T"HH24:MI:SS.US') AS trigger
FROM customer c LEFT JOIN automation_customer_activity a ON a.customer_id = c.id
WHERE c.organization_id = $1 AND coalesce(a.last_usage_at, c.signed_up_at) <= $2
  AND NOT EXISTS (SELECT 1 FROM automation_run r WHERE r.organization_id = $1
    AND r.rule_id = $3 AND r.trigger = 'time:no_usage:' || c.id || ':' ||
    to_char(coalesce(a.last_usage_at, c.signed_up_at) AT TIME ZONE 'UTC',
      'YYYY-MM-DD"T"HH24:MI:SS.US'))
LIMIT $4"""

_AFTER_SIGNUP = """SELECT c.id AS customer_id, 'time:after_signup:' || c.id AS trigger
FROM customer c
WHERE c.organization_id = $1 AND c.signed_up_at <= $2 AND c.signed_up_at > $3
  AND NOT EXISTS (SELECT 1 FROM automation_run r WHERE r.organization_id = $1
    AND r.rule_id = $4 AND r.trigger = 'time:after_signup:' || c.id)
LIMIT $5"""

_WITH_PROPERTY = """SELECT c.id AS customer_id, c.properties ->> $2 AS value FROM customer c
WHERE c.organization_id = $1 AND c.properties ? $2
  AND NOT EXISTS (SELECT 1 FROM automation_run r WHERE r.organization_id = $1
    AND r.rule_id = $3
    AND r.trigger = 'time:date_property:' || c.id || ':' || $2 || '=' || (c.properties ->> $2))
LIMIT $4"""


async def due_customers(rule: LoadedRule, created_at: datetime, *, now: datetime) -> list[Any]:
    """(customer id, trigger) pairs whose episode qualifies and has not fired this rule yet."""
    t = rule.definition.trigger
    conn = get_connection("default")
    org = rule.organization_id
    if isinstance(t, rules.NoProgressTrigger):
        since = now - timedelta(days=t.days)
        rows = await conn.execute_query_dict(_NO_PROGRESS, [org, since, t.stage, rule.id, BATCH])
    elif isinstance(t, rules.NoUsageTrigger):
        since = now - timedelta(days=t.days)
        rows = await conn.execute_query_dict(_NO_USAGE, [org, since, rule.id, BATCH])
    elif isinstance(t, rules.AfterSignupTrigger):
        wait = timedelta(days=t.days)
        rows = await conn.execute_query_dict(
            _AFTER_SIGNUP, [org, now - wait, created_at - wait, rule.id, BATCH]
        )
    elif isinstance(t, rules.DatePropertyTrigger):
        found = await conn.execute_query_dict(_WITH_PROPERTY, [org, t.property, rule.id, BATCH])
        rows = []
        for row in found:
            date = as_datetime(row["value"])
            if date is None:
                continue
            at = date + timedelta(days=t.days)
            if created_at <= at <= now:
                trigger = f"time:date_property:{row['customer_id']}:{t.property}={row['value']}"
                rows.append({"customer_id": row["customer_id"], "trigger": trigger})
    else:
        return []
    return [(r["customer_id"], r["trigger"]) for r in rows]


async def fire_time_triggers(*, now: datetime | None = None) -> int:
    """Fire every enabled time-triggered rule for the customers whose episode qualifies, each
    firing in its own transaction: one the database rolls back to settle a conflict (a
    deadlock with a consumer batch) is done again, and one still rolled back after that is
    left for the next tick while the others go on."""
    now = now or utcnow()
    rows = await AutomationRule.filter(
        enabled=True, deleted_at__isnull=True, trigger_key__startswith="time:"
    ).order_by("-priority", "created_at")
    fired = 0
    for row in rows:
        rule = loaded(row)
        kind = rule.definition.trigger.type
        due = await due_customers(rule, row.created_at, now=now)
        if not due:
            continue
        base = await facts_mod.load_facts(rule.organization_id, {c for c, _ in due}, now=now)
        for customer_id, trigger in due:
            known = base.get(customer_id)
            if known is None:
                continue
            run = await retried_or_skipped(
                partial(
                    fire,
                    rule,
                    customer_id=customer_id,
                    trigger=trigger,
                    trigger_type=f"time.{kind}",
                    facts=facts_mod.with_event(known, None),
                    event_id=None,
                    depth=0,
                    now=now,
                ),
                what=f"time trigger {trigger} of rule {rule.id}",
            )
            fired += run is not None
    return fired


_WAITING = """SELECT id FROM automation_run WHERE status = 'WAITING' AND resume_at <= $1
ORDER BY resume_at LIMIT $2 FOR UPDATE SKIP LOCKED"""


async def resume_one(run_id: uuid.UUID, *, now: datetime) -> bool:
    """Continue one waiting run past its delay, in its own transaction; done again when the
    database rolls it back to settle a conflict, and left for the next tick (False) when that
    keeps happening."""
    resumed = await retried_or_skipped(
        partial(_resume, run_id, now=now), what=f"resuming run {run_id}"
    )
    return bool(resumed)


async def _resume(run_id: uuid.UUID, *, now: datetime) -> bool:
    """`resume_one` in the caller's transaction."""
    got = await get_connection("default").execute_query_dict(
        "SELECT id FROM automation_run WHERE id = $1 AND status = 'WAITING' FOR UPDATE SKIP LOCKED",
        [run_id],
    )
    if not got:
        return False
    run = await AutomationRun.get(id=run_id)
    row = await AutomationRule.get(id=run.rule_id)  # type: ignore[attr-defined]
    if not row.enabled or row.deleted_at is not None:
        await ActionExecution.filter(run_id=run.id, status=ActionStatus.WAITING).update(
            status=ActionStatus.FAILED,
            error="the rule was disabled before the delay ended",
            error_kind="rule_disabled",
            finished_at=now,
        )
        run.resume_at = None
        await run.save(update_fields=["resume_at"])
        await settle_run(run.id, now=now)
        return True
    version = await AutomationRuleVersion.get(rule_id=row.id, version=run.rule_version)
    rule = of_definition(row, version.version, rules.RuleDef.model_validate(version.definition))
    base = await facts_mod.load_facts(rule.organization_id, [run.customer_id], now=now)
    known = base.get(run.customer_id)
    if known is None:
        return False
    event = None
    if run.event_id is not None:
        outbox_row = await OutboxEvent.filter(id=run.event_id).values()
        if outbox_row:
            event = Published.of_row(outbox_row[0])
    facts = facts_mod.with_event(known, event)
    await execute(
        rule,
        run,
        variables=facts_mod.template_variables(facts, rule_name=rule.name),
        facts=facts,
        after=run.resume_after,
        now=now,
    )
    return True


async def resume_waiting(*, now: datetime | None = None, limit: int = 200) -> int:
    """Resume every run whose delay is over; each in its own transaction."""
    now = now or utcnow()
    async with transaction():
        due = [
            r["id"]
            for r in await get_connection("default").execute_query_dict(_WAITING, [now, limit])
        ]
    resumed = 0
    for run_id in due:
        resumed += await resume_one(run_id, now=now)
    return resumed


async def tick() -> int:
    """The scheduled job: resume delayed runs, then fire time-based triggers."""
    return await resume_waiting() + await fire_time_triggers()


__all__ = ["RunStatus", "fire_time_triggers", "resume_waiting", "tick"]
