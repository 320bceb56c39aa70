"""How well rules work, computed from their run and action records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.automation.models import AutomationRule
from app.kit.clock import utcnow
from app.kit.ids import parse_id

_RUNS = """SELECT rule_id,
  count(*) FILTER (WHERE status NOT IN ('SKIPPED', 'LOOP_LIMIT')) AS runs,
  count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded,
  count(*) FILTER (WHERE status = 'FAILED') AS failed,
  count(*) FILTER (WHERE status IN ('PENDING', 'WAITING')) AS in_flight,
  count(*) FILTER (WHERE status = 'SKIPPED') AS skipped,
  count(*) FILTER (WHERE status = 'LOOP_LIMIT') AS loop_limited,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)
    FILTER (WHERE status IN ('SUCCEEDED', 'FAILED')) AS p50,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms)
    FILTER (WHERE status IN ('SUCCEEDED', 'FAILED')) AS p90,
  max(created_at) AS last_run_at,
  count(*) FILTER (WHERE goal_met_at IS NOT NULL) AS goal_met,
  count(*) FILTER (WHERE goal_deadline IS NOT NULL AND (goal_met_at IS NOT NULL
    OR goal_deadline < $3)) AS goal_decided
FROM automation_run WHERE organization_id = $1 AND created_at >= $2
  AND ($4::uuid IS NULL OR rule_id = $4)
GROUP BY rule_id"""

_ACTIONS = """SELECT rule_id, path, type, count(*) AS total,
  count(*) FILTER (WHERE status = 'DONE') AS done,
  count(*) FILTER (WHERE status = 'FAILED') AS failed,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)
    FILTER (WHERE status IN ('DONE', 'FAILED')) AS p50,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms)
    FILTER (WHERE status IN ('DONE', 'FAILED')) AS p90,
  avg(attempts) AS attempts
FROM automation_action WHERE organization_id = $1 AND created_at >= $2 AND type <> 'delay'
  AND ($3::uuid IS NULL OR rule_id = $3)
GROUP BY rule_id, path, type ORDER BY rule_id, path"""

_REASONS = """SELECT rule_id, coalesce(error_kind, 'unknown') AS reason, count(*) AS n
FROM automation_action WHERE organization_id = $1 AND created_at >= $2 AND status = 'FAILED'
  AND ($3::uuid IS NULL OR rule_id = $3)
GROUP BY rule_id, error_kind ORDER BY n DESC"""


@dataclass
class ActionStats:
    path: str
    type: str
    total: int
    done: int
    failed: int
    success_rate: float | None
    p50_ms: float | None
    p90_ms: float | None
    mean_attempts: float | None


@dataclass
class RuleStats:
    rule_id: uuid.UUID
    name: str
    enabled: bool
    runs: int
    succeeded: int
    failed: int
    in_flight: int
    skipped: int
    loop_limited: int
    success_rate: float | None
    p50_ms: float | None
    p90_ms: float | None
    last_run_at: datetime | None
    goal_met: int
    goal_completion_rate: float | None
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    actions: list[ActionStats] = field(default_factory=list)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _f(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def automation_stats(
    viewer: Viewer, *, rule_id: str | None, since: datetime
) -> list[RuleStats]:
    """Per rule and per action: runs, success rate, failures by reason, p50/p90 duration,
    last run, and how often the customers it fired for reached its goal (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    rid = parse_id(rule_id, what="automation rule") if rule_id else None
    rules_query = AutomationRule.filter(organization_id=viewer.organization_id)
    if rid is not None:
        rules_query = rules_query.filter(id=rid)
    known = {r.id: r for r in await rules_query}
    conn = get_connection("default")
    org = viewer.organization_id
    runs = await conn.execute_query_dict(_RUNS, [org, since, utcnow(), rid])
    actions = await conn.execute_query_dict(_ACTIONS, [org, since, rid])
    reasons = await conn.execute_query_dict(_REASONS, [org, since, rid])
    out: dict[uuid.UUID, RuleStats] = {}
    for r in runs:
        rule = known.get(r["rule_id"])
        if rule is None:
            continue
        finished = int(r["succeeded"]) + int(r["failed"])
        out[rule.id] = RuleStats(
            rule_id=rule.id,
            name=rule.name,
            enabled=rule.enabled and rule.deleted_at is None,
            runs=int(r["runs"]),
            succeeded=int(r["succeeded"]),
            failed=int(r["failed"]),
            in_flight=int(r["in_flight"]),
            skipped=int(r["skipped"]),
            loop_limited=int(r["loop_limited"]),
            success_rate=_rate(int(r["succeeded"]), finished),
            p50_ms=_f(r["p50"]),
            p90_ms=_f(r["p90"]),
            last_run_at=r["last_run_at"],
            goal_met=int(r["goal_met"]),
            goal_completion_rate=_rate(int(r["goal_met"]), int(r["goal_decided"])),
        )
    for a in actions:
        stats = out.get(a["rule_id"])
        if stats is None:
            continue
        total, done, failed = int(a["total"]), int(a["done"]), int(a["failed"])
        stats.actions.append(
            ActionStats(
                path=a["path"],
                type=a["type"],
                total=total,
                done=done,
                failed=failed,
                success_rate=_rate(done, done + failed),
                p50_ms=_f(a["p50"]),
                p90_ms=_f(a["p90"]),
                mean_attempts=_f(a["attempts"]),
            )
        )
    for f in reasons:
        stats = out.get(f["rule_id"])
        if stats is not None:
            stats.failures_by_reason[f["reason"]] = int(f["n"])
    for rule in known.values():
        if rule.id not in out and rule.deleted_at is None:
            out[rule.id] = RuleStats(
                rule.id, rule.name, rule.enabled, 0, 0, 0, 0, 0, 0, None, None, None, None, 0, None
            )
    return sorted(out.values(), key=lambda s: (-s.runs, s.name))
