"""The automation engine: rules fire on committed events (as an outbox consumer) and on time;
each firing is one run, each action is executed once per (rule, trigger, action path)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from app.automation import facts as facts_mod
from app.automation import rules
from app.automation.actions import ActionFailed, Context, perform
from app.automation.conditions import (
    Check,
    compile_condition,
    discriminator,
    evaluate,
    fact_value,
)
from app.automation.goals import observe
from app.automation.models import (
    ActionExecution,
    ActionStatus,
    AutomationRule,
    AutomationRun,
    RunStatus,
)
from app.db import rolled_back
from app.events.channels import Published
from app.kit.clock import utcnow
from app.kit.connections import connection_lost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedRule:
    """An enabled rule with its parsed definition."""

    id: uuid.UUID
    organization_id: uuid.UUID
    version: int
    priority: int
    definition: rules.RuleDef
    check: Check

    @property
    def name(self) -> str:
        return self.definition.name


_PARSED: dict[tuple[uuid.UUID, int], tuple[rules.RuleDef, Check]] = {}


def loaded(row: AutomationRule) -> LoadedRule:
    """A rule row with its definition parsed once per version and process."""
    key = (row.id, row.version)
    found = _PARSED.get(key)
    if found is None:
        parsed = rules.RuleDef.model_validate(row.definition)
        found = (parsed, compile_condition(parsed.conditions))
        if len(_PARSED) > 10_000:
            _PARSED.clear()
        _PARSED[key] = found
    return of_definition(row, row.version, found[0], found[1])


def of_definition(
    row: AutomationRule, version: int, definition: rules.RuleDef, check: Check | None = None
) -> LoadedRule:
    """A rule row with a given version of its definition."""
    return LoadedRule(
        id=row.id,
        organization_id=row.organization_id,  # type: ignore[attr-defined]
        version=version,
        priority=row.priority,
        definition=definition,
        check=check or compile_condition(definition.conditions),
    )


async def enabled_rules(organization_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[LoadedRule]]:
    """Enabled rules per organization, highest priority first."""
    rows = await AutomationRule.filter(
        organization_id__in=list(organization_ids), enabled=True, deleted_at__isnull=True
    ).order_by("-priority", "created_at")
    out: dict[uuid.UUID, list[LoadedRule]] = defaultdict(list)
    for row in rows:
        rule = loaded(row)
        out[rule.organization_id].append(rule)
    return out


class RuleIndex:
    """An organization's event-triggered rules by the event types they match; within a type,
    rules whose conditions need a fact to have given values are indexed by that fact, so an
    event only meets the rules its facts can satisfy."""

    def __init__(self, found: Sequence[LoadedRule]) -> None:
        self.rules = [r for r in found if isinstance(r.definition.trigger, rules.EventTrigger)]
        self.order = {r.id: i for i, r in enumerate(self.rules)}
        self._by_type: dict[str, TypeIndex] = {}

    def of_type(self, event_type: str) -> TypeIndex:
        """The index of the rules an event of this type triggers."""
        index = self._by_type.get(event_type)
        if index is None:
            index = TypeIndex(
                [
                    r
                    for r in self.rules
                    if rules.event_matches(
                        r.definition.trigger.event,  # type: ignore[union-attr]
                        event_type,
                    )
                ],
                self.order,
            )
            self._by_type[event_type] = index
        return index


class TypeIndex:
    """The rules of one event type: unindexed ones, and the others by fact and value."""

    def __init__(self, found: list[LoadedRule], order: dict[uuid.UUID, int]) -> None:
        self.order = order
        self.any = bool(found)
        self.plain: list[LoadedRule] = []
        self.by_fact: dict[str, dict[str, list[LoadedRule]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for rule in found:
            key = discriminator(rule.definition.conditions)
            if key is None:
                self.plain.append(rule)
            else:
                for value in key[1]:
                    self.by_fact[key[0]][value].append(rule)

    def candidates(self, facts: dict[str, Any]) -> list[LoadedRule]:
        """The rules worth evaluating on these facts, in priority order."""
        out = list(self.plain)
        for fact, values in self.by_fact.items():
            seen = fact_value(facts, fact)
            if isinstance(seen, str):
                out.extend(values.get(seen, ()))
        if len(out) > 1:
            out.sort(key=lambda r: self.order[r.id])
        return out


# --- the consumer ----------------------------------------------------------------------------

_TOUCH_USAGE = """INSERT INTO automation_customer_activity
(customer_id, organization_id, last_usage_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
ON CONFLICT (customer_id) DO UPDATE
SET last_usage_at = GREATEST(automation_customer_activity.last_usage_at, EXCLUDED.last_usage_at)"""


USAGE_BATCH = "usage.event_ingested"


def occurrences(events: Sequence[Published]) -> list[tuple[str, Published]]:
    """Per-customer trigger occurrences with their trigger id: customer events as they are,
    and each (customer, name) of an ingested usage batch as a `usage.<name>` event."""
    out: list[tuple[str, Published]] = []
    for e in events:
        if e.customer_id is not None:
            out.append((f"event:{e.id}", e))
        elif e.type == USAGE_BATCH:
            for item in e.payload.get("customers") or []:
                try:
                    cid = uuid.UUID(str(item["customerId"]))
                except (KeyError, ValueError):
                    continue
                for name, count in (item.get("names") or {}).items():
                    payload = {"name": name, "count": count, "lastAt": item.get("lastAt")}
                    synthetic = replace(e, customer_id=cid, type=f"usage.{name}", payload=payload)
                    out.append((f"event:{e.id}:{cid}:{name}", synthetic))
    return out


async def handle(events: Sequence[Published]) -> None:
    """Consumer entry point, inside the consumer's transaction: track usage, mark goals met,
    and fire every enabled rule whose event trigger matches."""
    mine = occurrences(events)
    if not mine:
        return
    now = utcnow()
    await _track_usage([e for _, e in mine])
    by_org = await enabled_rules(list({e.organization_id for _, e in mine}))
    indexes = {org: RuleIndex(found) for org, found in by_org.items()}
    matches: dict[uuid.UUID, list[tuple[str, Published, TypeIndex]]] = defaultdict(list)
    for trigger, event in mine:
        index = indexes.get(event.organization_id)
        found = index.of_type(event.type) if index else None
        if found is not None and found.any:
            matches[event.organization_id].append((trigger, event, found))
    for org, pending in matches.items():
        customers = {e.customer_id for _, e, _ in pending if e.customer_id}
        base = await facts_mod.load_facts(org, customers, now=now)  # type: ignore[arg-type]
        for trigger, event, found in pending:
            known = base.get(event.customer_id) if event.customer_id else None
            if known is None:
                continue
            facts = facts_mod.with_event(known, event)
            for rule in found.candidates(facts):
                if not rule.check(facts):
                    continue
                await fire(
                    rule,
                    customer_id=event.customer_id,  # type: ignore[arg-type]
                    trigger=trigger,
                    trigger_type=event.type,
                    facts=facts,
                    event_id=event.id,
                    depth=rules.loop_depth(event.payload),
                    now=now,
                    occurred_at=event.created_at,
                )
    await observe([e for _, e in mine], now=now)


async def _track_usage(events: Sequence[Published]) -> None:
    latest: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    for e in events:
        if e.type.startswith("usage.") and e.customer_id is not None:
            seen = latest.get(e.customer_id)
            if seen is None or seen[1] < e.created_at:
                latest[e.customer_id] = (e.organization_id, e.created_at)
    if latest:
        await get_connection("default").execute_query(
            _TOUCH_USAGE,
            [list(latest), [o for o, _ in latest.values()], [t for _, t in latest.values()]],
        )


# --- firing ----------------------------------------------------------------------------------

_INSERT_RUN = """INSERT INTO automation_run (id, organization_id, rule_id, rule_version,
customer_id, trigger, trigger_type, event_id, depth, status, reason, conditions, branches,
duration_ms,
goal_deadline, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '{}'::jsonb, 0, $13, $14)
ON CONFLICT (organization_id, rule_id, trigger) DO NOTHING RETURNING id"""

_HISTORY = """SELECT count(*) AS runs, max(created_at) AS last FROM automation_run
WHERE organization_id = $1 AND rule_id = $2 AND customer_id = $3
AND status NOT IN ('SKIPPED', 'LOOP_LIMIT')"""


async def fire(
    rule: LoadedRule,
    *,
    customer_id: uuid.UUID,
    trigger: str,
    trigger_type: str,
    facts: dict[str, Any],
    event_id: int | None,
    depth: int,
    now: datetime,
    occurred_at: datetime | None = None,
) -> AutomationRun | None:
    """Fire a rule for a customer once per trigger; None when its conditions do not hold,
    it is outside its active window, or this trigger already fired it."""
    d = rule.definition
    result = evaluate(d.conditions, facts)
    if not result.held:
        return None
    if rules.skip_reason(d, now=now, last_fired_at=None, runs=0):
        return None  # outside the active window
    conn = get_connection("default")
    status, reason = RunStatus.PENDING, None
    if rules.over_loop_limit(depth):
        status = RunStatus.LOOP_LIMIT
        reason = (
            f"stopped: the trigger was caused by automation {depth} hops deep "
            f"(limit {rules.MAX_LOOP_DEPTH}); the rule may be triggering itself"
        )
    elif d.cooldown_seconds or d.max_runs:
        await conn.execute_query(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [f"{rule.id}:{customer_id}"]
        )
        got = await conn.execute_query_dict(_HISTORY, [rule.organization_id, rule.id, customer_id])
        skip = rules.skip_reason(d, now=now, last_fired_at=got[0]["last"], runs=int(got[0]["runs"]))
        if skip:
            status, reason = RunStatus.SKIPPED, skip
    goal_deadline = None
    if d.goal is not None and status is RunStatus.PENDING:
        goal_deadline = (occurred_at or now) + timedelta(days=d.goal.within_days)
    run_id = uuid.uuid4()

    inserted = await conn.execute_query_dict(
        _INSERT_RUN,
        [
            run_id,
            rule.organization_id,
            rule.id,
            rule.version,
            customer_id,
            trigger,
            trigger_type,
            event_id,
            depth,
            status.value,
            reason,
            json.dumps(result.flatten(), default=str),
            goal_deadline,
            now,
        ],
    )
    if not inserted:
        return None
    run = await AutomationRun.get(id=run_id)
    if status is RunStatus.PENDING:
        variables = facts_mod.template_variables(facts, rule_name=d.name)
        await execute(rule, run, variables=variables, facts=facts, after=None, now=now)
    return run


async def execute(
    rule: LoadedRule,
    run: AutomationRun,
    *,
    variables: dict[str, Any],
    facts: dict[str, Any],
    after: str | None,
    now: datetime,
) -> None:
    """Run the rule's actions from the start (or past the delay at `after`) until done or
    until the next delay, recording each action under its idempotency key."""
    started = time.perf_counter()
    p = rules.plan(rule.definition.actions, facts, after=after, decided=run.branches)
    conn = get_connection("default")
    for step in p.steps:
        key = f"{rule.id}:{run.trigger}:{step.path}"
        action_id = uuid.uuid4()
        claimed = await conn.execute_query_dict(
            "INSERT INTO automation_action (id, organization_id, run_id, rule_id, idempotency_key,"
            " path, type, status, attempts, duration_ms, result, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'DONE', 1, 0, '{}'::jsonb, $8)"
            " ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING id",
            [
                action_id,
                rule.organization_id,
                run.id,
                rule.id,
                key,
                step.path,
                step.action.type,
                now,
            ],
        )
        if not claimed:
            continue  # done before (a resumed run re-walking its steps)
        ctx = Context(
            organization_id=rule.organization_id,
            customer_id=run.customer_id,
            rule_id=rule.id,
            rule_name=rule.name,
            action_id=action_id,
            key=key,
            depth=run.depth,
            variables=variables,
            now=now,
        )
        t0 = time.perf_counter()
        status, error, kind, result = ActionStatus.DONE, None, None, {}
        try:
            async with in_transaction():
                done = await perform(step.action, ctx)
            result = done.result
            status = ActionStatus.QUEUED if done.queued else ActionStatus.DONE
        except ActionFailed as exc:
            status, error, kind = ActionStatus.FAILED, exc.message, exc.kind
        except Exception as exc:
            if rolled_back(exc) or connection_lost(exc):
                # The database broke a deadlock with another transaction (a health recompute,
                # another consumer) by aborting this action, or the connection went: nothing
                # is wrong with the action. Recorded as failed it would never run; instead the
                # whole unit of work is undone and done again by its caller (the consumer's
                # retry, the scheduled tick's).
                raise
            log.exception("automation action %s of rule %s failed", step.path, rule.id)
            status, error, kind = ActionStatus.FAILED, f"unexpected error: {exc}", "internal"
        await ActionExecution.filter(id=action_id).update(
            status=status,
            duration_ms=(time.perf_counter() - t0) * 1000,
            error=error,
            error_kind=kind,
            result=result,
            finished_at=None if status is ActionStatus.QUEUED else now,
        )
    run.branches = p.branches
    run.duration_ms = (run.duration_ms or 0) + (time.perf_counter() - started) * 1000
    if p.wait is not None:
        delay: rules.Delay = p.wait.action
        resume = now + delay.duration
        await ActionExecution.get_or_create(
            organization_id=rule.organization_id,
            idempotency_key=f"{rule.id}:{run.trigger}:{p.wait.path}",
            defaults={
                "run_id": run.id,
                "rule_id": rule.id,
                "path": p.wait.path,
                "type": "delay",
                "status": ActionStatus.WAITING,
                "result": {"until": resume.isoformat()},
            },
        )
        run.status, run.resume_at, run.resume_after = RunStatus.WAITING, resume, p.wait.path
        await run.save(
            update_fields=["branches", "duration_ms", "status", "resume_at", "resume_after"]
        )
        return
    if after is not None:
        await ActionExecution.filter(
            organization_id=rule.organization_id,
            idempotency_key=f"{rule.id}:{run.trigger}:{after}",
        ).update(status=ActionStatus.DONE, finished_at=now)
    run.resume_at = None
    await run.save(update_fields=["branches", "duration_ms", "resume_at"])
    await settle_run(run.id, now=now)


_SETTLE = """UPDATE automation_run r SET status = s.status, finished_at = s.finished FROM (
  SELECT CASE
    WHEN bool_or(a.status = 'WAITING') THEN 'WAITING'
    WHEN bool_or(a.status = 'QUEUED') THEN 'PENDING'
    WHEN bool_or(a.status = 'FAILED') THEN 'FAILED'
    ELSE 'SUCCEEDED' END AS status,
  CASE WHEN bool_or(a.status IN ('WAITING', 'QUEUED')) THEN NULL ELSE $2::timestamptz END
    AS finished
  FROM automation_action a WHERE a.run_id = $1
) s WHERE r.id = $1 AND r.status NOT IN ('SKIPPED', 'LOOP_LIMIT')"""


async def settle_run(run_id: uuid.UUID, *, now: datetime) -> None:
    """Derive a run's status from its actions (after they ran, or a delivery finished)."""
    await get_connection("default").execute_query(_SETTLE, [run_id, now])


_FINISH_ACTIONS = """UPDATE automation_action a SET
  status = CASE WHEN d.pending > 0 THEN 'QUEUED'
                WHEN d.failed > 0 THEN 'FAILED' ELSE 'DONE' END,
  attempts = d.attempts,
  error = d.error,
  error_kind = CASE WHEN d.pending > 0 OR d.failed = 0 THEN NULL
                    WHEN d.disabled > 0 THEN 'endpoint_disabled'
                    WHEN d.refused > 0 THEN 'refused_destination' ELSE 'delivery_failed' END,
  duration_ms = CASE WHEN d.pending > 0 THEN a.duration_ms
                     ELSE extract(epoch FROM ($2::timestamptz - a.created_at)) * 1000 END,
  finished_at = CASE WHEN d.pending > 0 THEN NULL ELSE $2::timestamptz END
FROM (SELECT action_id,
        count(*) FILTER (WHERE status = 'PENDING') AS pending,
        count(*) FILTER (WHERE status IN ('DEAD', 'DISABLED')) AS failed,
        count(*) FILTER (WHERE status = 'DISABLED') AS disabled,
        count(*) FILTER (WHERE last_error LIKE 'refused destination%') AS refused,
        max(attempts) AS attempts,
        string_agg(last_error, '; ') FILTER (WHERE status IN ('DEAD', 'DISABLED')) AS error
      FROM delivery WHERE action_id = ANY($1::uuid[]) GROUP BY action_id) d
WHERE a.id = d.action_id"""


_LOCK_RUNS = """SELECT id FROM automation_run WHERE id IN (
  SELECT run_id FROM automation_action WHERE id = ANY($1::uuid[]))
ORDER BY id FOR NO KEY UPDATE"""


async def deliveries_finished(action_ids: Sequence[uuid.UUID]) -> None:
    """Carry finished deliveries to their actions (status, attempts, end-to-end duration,
    error) and re-derive the runs' status; called in the sender's transaction.

    The runs are locked first, in id order: two workers finishing deliveries of the same runs
    (an email and a webhook of one run) wait for each other instead of deadlocking, and the
    one that waited reads the actions and deliveries the other committed."""
    now = utcnow()
    conn = get_connection("default")
    locked = await conn.execute_query_dict(_LOCK_RUNS, [list(set(action_ids))])
    await conn.execute_query(_FINISH_ACTIONS, [list(set(action_ids)), now])
    for run_id in [r["id"] for r in locked]:
        await settle_run(run_id, now=now)
