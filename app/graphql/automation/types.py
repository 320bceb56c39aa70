"""GraphQL types of automation: rules, runs, previews, statistics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.automation import insight, stats
from app.automation.models import ActionExecution as ActionRow
from app.automation.models import ActionStatus, RunStatus
from app.automation.models import AutomationRule as RuleRow
from app.automation.models import AutomationRuleVersion as VersionRow
from app.automation.models import AutomationRun as RunRow
from app.automation.rules import path_key
from app.automation.service import list_versions
from app.graphql.context import Context
from app.graphql.customers.types import PageInfo
from app.kit.pagination import Page, encode_cursor

Info = strawberry.Info[Context, None]

strawberry.enum(RunStatus, description="How a rule's run ended (or where it waits).")
strawberry.enum(ActionStatus, description="Where one action of a run stands.")


@strawberry.type(description="One version of a rule's definition.")
class AutomationRuleVersion:
    version: int
    enabled: bool
    definition: JSON
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: VersionRow) -> AutomationRuleVersion:
        return cls(
            version=row.version,
            enabled=row.enabled,
            definition=cast(JSON, row.definition),
            created_by=row.created_by,
            created_at=row.created_at,
        )


@strawberry.type(
    description="An automation rule: a trigger, conditions and ordered actions. "
    "`definition` is its normalized document (the shape `createAutomationRule` takes)."
)
class AutomationRule:
    row: strawberry.Private[RuleRow]
    id: strawberry.ID
    key: str | None = strawberry.field(description="Set on the bundled default rules.")
    name: str
    description: str
    enabled: bool
    priority: int
    version: int
    trigger: JSON
    conditions: JSON | None
    actions: JSON
    goal: JSON | None
    cooldown_seconds: int
    max_runs: int | None
    active_from: datetime | None
    active_until: datetime | None
    definition: JSON
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    deleted: bool

    @strawberry.field(description="Every version, oldest first.")
    async def versions(self, info: Info) -> list[AutomationRuleVersion]:
        rows = await list_versions(info.context.viewer, self.row.id)
        return [AutomationRuleVersion.of(r) for r in rows]

    @classmethod
    def of(cls, row: RuleRow) -> AutomationRule:
        d: dict[str, Any] = row.definition

        def when(name: str) -> datetime | None:
            value = d.get(name)
            return datetime.fromisoformat(value) if value else None

        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            key=row.key,
            name=row.name,
            description=d.get("description", ""),
            enabled=row.enabled,
            priority=row.priority,
            version=row.version,
            trigger=d["trigger"],
            conditions=d.get("conditions"),
            actions=d["actions"],
            goal=d.get("goal"),
            cooldown_seconds=int(d.get("cooldownSeconds") or 0),
            max_runs=d.get("maxRuns"),
            active_from=when("activeFrom"),
            active_until=when("activeUntil"),
            definition=cast(JSON, d),
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted=row.deleted_at is not None,
        )


@strawberry.type(description="Whether one condition held, the value seen and why.")
class ConditionResult:
    path: str
    kind: str = strawberry.field(description="all, any, not, or fact.")
    held: bool
    fact: str | None
    op: str | None
    expected: JSON | None
    seen: JSON | None
    reason: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> ConditionResult:
        return cls(
            path=d["path"],
            kind=d["kind"],
            held=d["held"],
            fact=d.get("fact"),
            op=d.get("op"),
            expected=d.get("expected"),
            seen=d.get("seen"),
            reason=d.get("reason", ""),
        )


@strawberry.type(description="One action of a run, done once per (rule, trigger, action).")
class ActionExecution:
    id: strawberry.ID
    path: str = strawberry.field(description="Where it sits in the actions: `2`, `3.then.0`.")
    type: str
    status: ActionStatus
    attempts: int
    duration_ms: float = strawberry.field(
        description="For emails and webhooks: from the run to the final delivery outcome."
    )
    error: str | None
    error_kind: str | None
    result: JSON
    idempotency_key: str
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: ActionRow) -> ActionExecution:
        return cls(
            id=strawberry.ID(str(row.id)),
            path=row.path,
            type=row.type,
            status=row.status,
            attempts=row.attempts,
            duration_ms=row.duration_ms,
            error=row.error,
            error_kind=row.error_kind,
            result=cast(JSON, row.result),
            idempotency_key=row.idempotency_key,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


@strawberry.type(description="One firing of a rule for a customer.")
class RuleExecution:
    id: strawberry.ID
    rule_id: strawberry.ID
    rule_version: int
    customer_id: strawberry.ID
    trigger: str = strawberry.field(description="`event:<id>` or `time:<kind>:<episode>`.")
    trigger_type: str
    depth: int = strawberry.field(description="Automation hops behind the triggering event.")
    status: RunStatus
    reason: str | None
    conditions: list[ConditionResult]
    actions: list[ActionExecution]
    resume_at: datetime | None
    goal_deadline: datetime | None
    goal_met_at: datetime | None
    duration_ms: float
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: RunRow, actions: list[ActionRow]) -> RuleExecution:
        return cls(
            id=strawberry.ID(str(row.id)),
            rule_id=strawberry.ID(str(row.rule_id)),  # type: ignore[attr-defined]
            rule_version=row.rule_version,
            customer_id=strawberry.ID(str(row.customer_id)),
            trigger=row.trigger,
            trigger_type=row.trigger_type,
            depth=row.depth,
            status=row.status,
            reason=row.reason,
            conditions=[ConditionResult.of(c) for c in row.conditions or []],
            actions=[
                ActionExecution.of(a)
                for a in sorted(actions, key=lambda a: (a.created_at, path_key(a.path)))
            ],
            resume_at=row.resume_at,
            goal_deadline=row.goal_deadline,
            goal_met_at=row.goal_met_at,
            duration_ms=row.duration_ms,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


@strawberry.type
class RuleExecutionEdge:
    cursor: str
    node: RuleExecution


@strawberry.type(description="Runs, oldest first (Relay connection; `first` is capped at 100).")
class RuleExecutionConnection:
    edges: list[RuleExecutionEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    async def of(cls, page: Page[RunRow]) -> RuleExecutionConnection:
        ids = [r.id for r in page.items]
        by_run: dict[uuid.UUID, list[ActionRow]] = {i: [] for i in ids}
        for a in await ActionRow.filter(run_id__in=ids) if ids else []:
            by_run[a.run_id].append(a)  # type: ignore[attr-defined]
        return cls(
            edges=[
                RuleExecutionEdge(cursor=encode_cursor(r), node=RuleExecution.of(r, by_run[r.id]))
                for r in page.items
            ],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type(description="An action as the rule would run it now, with rendered content.")
class ActionPreview:
    path: str
    type: str
    content: JSON = strawberry.field(
        description="The email as it would be sent, the webhook body, the task, …"
    )
    error: str | None


@strawberry.type(description="A dry run: nothing is sent or changed.")
class AutomationTestResult:
    trigger_matched: bool
    conditions_held: bool
    would_fire: bool
    conditions: list[ConditionResult]
    skip_reason: str | None = strawberry.field(description="Active window, if it says no.")
    loop_limited: bool
    actions: list[ActionPreview]
    branches: JSON = strawberry.field(description="Per `if` action path, its conditions.")

    @classmethod
    def of(cls, r: insight.DryRun) -> AutomationTestResult:
        return cls(
            trigger_matched=r.trigger_matched,
            conditions_held=r.conditions_held,
            would_fire=r.trigger_matched
            and r.conditions_held
            and r.skip_reason is None
            and not r.loop_limited,
            conditions=[ConditionResult.of(c) for c in r.conditions],
            skip_reason=r.skip_reason,
            loop_limited=r.loop_limited,
            actions=[
                ActionPreview(
                    path=a.path, type=a.type, content=cast(JSON, a.content), error=a.error
                )
                for a in r.actions
            ],
            branches=cast(JSON, r.branches),
        )


@strawberry.type(description="What a rule would have done over past events, and what followed.")
class BacktestResult:
    events_scanned: int
    customers_seen: int
    triggered: int = strawberry.field(description="Customers it would have fired for.")
    triggered_goal_met: int
    triggered_goal_rate: float | None = strawberry.field(description="Share 0-1.")
    not_triggered: int
    not_triggered_goal_met: int
    not_triggered_goal_rate: float | None = strawberry.field(description="Share 0-1.")
    goal: str | None
    notes: list[str]

    @classmethod
    def of(cls, r: insight.Backtest) -> BacktestResult:
        return cls(
            events_scanned=r.events_scanned,
            customers_seen=r.customers_seen,
            triggered=r.triggered,
            triggered_goal_met=r.triggered_goal_met,
            triggered_goal_rate=r.triggered_goal_rate,
            not_triggered=r.not_triggered,
            not_triggered_goal_met=r.not_triggered_goal_met,
            not_triggered_goal_rate=r.not_triggered_goal_rate,
            goal=r.goal,
            notes=r.notes,
        )


@strawberry.type
class ReasonCount:
    reason: str
    count: int


@strawberry.type(description="One action of a rule over the period.")
class AutomationActionStats:
    path: str
    type: str
    total: int
    done: int
    failed: int
    success_rate: float | None = strawberry.field(description="Share 0-1 of finished ones.")
    p50_ms: float | None
    p90_ms: float | None
    mean_attempts: float | None


@strawberry.type(description="How a rule did over the period.")
class AutomationRuleStats:
    rule_id: strawberry.ID
    name: str
    enabled: bool
    runs: int
    succeeded: int
    failed: int
    in_flight: int
    skipped: int
    loop_limited: int
    success_rate: float | None = strawberry.field(description="Share 0-1 of finished runs.")
    p50_ms: float | None
    p90_ms: float | None
    last_run_at: datetime | None
    goal_met: int
    goal_completion_rate: float | None = strawberry.field(
        description="Share 0-1 of decided runs whose customer reached the rule's goal in time."
    )
    failures_by_reason: list[ReasonCount]
    actions: list[AutomationActionStats]

    @classmethod
    def of(cls, s: stats.RuleStats) -> AutomationRuleStats:
        return cls(
            rule_id=strawberry.ID(str(s.rule_id)),
            name=s.name,
            enabled=s.enabled,
            runs=s.runs,
            succeeded=s.succeeded,
            failed=s.failed,
            in_flight=s.in_flight,
            skipped=s.skipped,
            loop_limited=s.loop_limited,
            success_rate=s.success_rate,
            p50_ms=s.p50_ms,
            p90_ms=s.p90_ms,
            last_run_at=s.last_run_at,
            goal_met=s.goal_met,
            goal_completion_rate=s.goal_completion_rate,
            failures_by_reason=[
                ReasonCount(reason=k, count=v) for k, v in s.failures_by_reason.items()
            ],
            actions=[AutomationActionStats(**vars(a)) for a in s.actions],
        )
