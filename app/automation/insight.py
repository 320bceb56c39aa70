"""Trying rules safely: a dry run for one customer, and a backtest over past events."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.automation import facts as facts_mod
from app.automation import rules
from app.automation.actions import ActionFailed, Context, webhook_body
from app.automation.conditions import evaluate
from app.automation.engine import occurrences
from app.automation.goals import goal_met
from app.automation.service import get_rule
from app.automation.templating import render, render_data
from app.customers.service import get_customer
from app.deliveries import service as deliveries
from app.errors import ValidationFailed
from app.events.channels import Published
from app.events.models import OutboxEvent
from app.kit.clock import utcnow

BACKTEST_MAX_EVENTS = 200_000


@dataclass
class Preview:
    """An action as it would run: its rendered content, or why it would fail."""

    path: str
    type: str
    content: dict[str, Any]
    error: str | None = None


@dataclass
class DryRun:
    trigger_matched: bool
    conditions_held: bool
    conditions: list[dict[str, Any]]
    skip_reason: str | None
    loop_limited: bool
    actions: list[Preview] = field(default_factory=list)
    branches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


async def _preview(action: Any, ctx: Context) -> dict[str, Any]:
    v = ctx.variables
    if isinstance(action, rules.SendEmail):
        return {
            "to": render(action.to, v).strip(),
            "subject": render(action.subject, v).strip(),
            "text": render(action.text, v),
            "html": render(action.html, v, html=True) if action.html else None,
        }
    if isinstance(action, rules.Notify):
        return {
            "to": render(action.to, v),
            "title": render(action.title, v),
            "body": render(action.body, v),
        }
    if isinstance(action, rules.Webhook):
        endpoints = await deliveries.subscribed_endpoints(
            ctx.organization_id, action.event, action.endpoint
        )
        return {"endpoints": [e.url for e in endpoints], "body": webhook_body(action, ctx)}
    if isinstance(action, rules.CreateTask):
        due = (
            (ctx.now + timedelta(days=action.due_in_days)).isoformat()
            if action.due_in_days is not None
            else None
        )
        return {
            "target": action.target,
            "title": render(action.title, v),
            "description": render(action.description, v),
            "assignee": render(action.assignee, v) if action.assignee else None,
            "dueAt": due,
        }
    if isinstance(action, rules.AwardPoints):
        return {"points": action.points, "reason": action.reason}
    if isinstance(action, rules.TagCustomer):
        return {"tag": action.tag}
    if isinstance(action, rules.SetProperty):
        return {"property": action.property, "value": render_data(action.value, v)}
    if isinstance(action, rules.Delay):
        return {"seconds": action.duration.total_seconds()}
    return {}


async def dry_run(
    viewer: Viewer,
    *,
    rule_id: str | None,
    definition: Any,
    customer_id: str,
    event: dict[str, Any] | None,
) -> DryRun:
    """What a rule would do for a customer now (and for an optional event), with no effect."""
    viewer.require(Role.ADMIN, Role.CSM)
    if (rule_id is None) == (definition is None):
        raise ValidationFailed("Pass either `ruleId` or `definition`.", field="ruleId")
    rule_uuid = uuid.uuid4()
    if rule_id is not None:
        row = await get_rule(viewer, rule_id)
        parsed, rule_uuid = rules.RuleDef.model_validate(row.definition), row.id
    else:
        parsed = rules.parse_rule(definition)
    customer = await get_customer(viewer, customer_id)
    now = utcnow()
    published = None
    if event is not None:
        kind = event.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValidationFailed("The event needs a `type`.", field="event")
        payload = event.get("payload") or {}
        if not isinstance(payload, dict):
            raise ValidationFailed("The event `payload` must be an object.", field="event")
        published = Published(
            0, viewer.organization_id, customer.id, 0, kind, payload, "dry-run", now
        )
    t = parsed.trigger
    matched = (
        published is not None and rules.event_matches(t.event, published.type)
        if isinstance(t, rules.EventTrigger)
        else published is None
    )
    base = (await facts_mod.load_facts(viewer.organization_id, [customer.id], now=now))[customer.id]
    facts = facts_mod.with_event(base, published)
    result = evaluate(parsed.conditions, facts)
    out = DryRun(
        trigger_matched=matched,
        conditions_held=result.held,
        conditions=result.flatten(),
        skip_reason=rules.skip_reason(parsed, now=now, last_fired_at=None, runs=0),
        loop_limited=rules.over_loop_limit(
            rules.loop_depth(published.payload if published else {})
        ),
    )
    variables = facts_mod.template_variables(facts, rule_name=parsed.name)
    after: str | None = None
    decided: dict[str, bool] = {}
    while True:
        p = rules.plan(parsed.actions, facts, after=after, decided=decided)
        out.branches.update(p.explanations)
        steps = [*p.steps, *([p.wait] if p.wait else [])]
        for step in steps:
            ctx = Context(
                organization_id=viewer.organization_id,
                customer_id=customer.id,
                rule_id=rule_uuid,
                rule_name=parsed.name,
                action_id=uuid.uuid4(),
                key=f"dry-run:{step.path}",
                depth=0,
                variables=variables,
                now=now,
            )
            try:
                out.actions.append(
                    Preview(step.path, step.action.type, await _preview(step.action, ctx))
                )
            except (TemplateError, ActionFailed) as exc:
                out.actions.append(Preview(step.path, step.action.type, {}, error=str(exc)))
        if p.wait is None:
            return out
        after, decided = p.wait.path, p.branches


@dataclass
class Backtest:
    events_scanned: int
    customers_seen: int
    triggered: int
    triggered_goal_met: int
    not_triggered: int
    not_triggered_goal_met: int
    goal: str | None
    notes: list[str]

    @property
    def triggered_goal_rate(self) -> float | None:
        return self.triggered_goal_met / self.triggered if self.triggered else None

    @property
    def not_triggered_goal_rate(self) -> float | None:
        return self.not_triggered_goal_met / self.not_triggered if self.not_triggered else None


async def backtest(viewer: Viewer, *, definition: Any, start: datetime, end: datetime) -> Backtest:
    """Replay past outbox events: for whom the rule would have fired, and how often its goal
    followed within its window, against the customers it would not have fired for."""
    viewer.require(Role.ADMIN, Role.CSM)
    parsed = rules.parse_rule(definition)
    if not isinstance(parsed.trigger, rules.EventTrigger):
        raise ValidationFailed(
            "Backtests replay past events, so they need an event trigger.", field="definition"
        )
    if end <= start:
        raise ValidationFailed("`to` must be after `from`.", field="to")
    goal = parsed.goal
    horizon = end + timedelta(days=goal.within_days) if goal else end
    rows = (
        await OutboxEvent.filter(
            organization_id=viewer.organization_id, created_at__gte=start, created_at__lt=horizon
        )
        .order_by("id")
        .limit(BACKTEST_MAX_EVENTS)
        .values()
    )
    events = [e for _, e in occurrences([Published.of_row(r) for r in rows])]
    by_customer: dict[uuid.UUID, list[Published]] = defaultdict(list)
    for e in events:
        if e.customer_id is not None:
            by_customer[e.customer_id].append(e)
    now = utcnow()
    candidates = {
        cid
        for cid, evs in by_customer.items()
        if any(
            start <= e.created_at < end and rules.event_matches(parsed.trigger.event, e.type)
            for e in evs
        )
    }
    base = await facts_mod.load_facts(viewer.organization_id, candidates, now=now)
    out = Backtest(len(events), 0, 0, 0, 0, 0, None, [])
    for cid, evs in by_customer.items():
        inside = [e for e in evs if start <= e.created_at < end]
        if not inside:
            continue
        out.customers_seen += 1
        anchor = None
        for e in inside:
            if (
                cid in base
                and rules.event_matches(parsed.trigger.event, e.type)
                and evaluate(parsed.conditions, facts_mod.with_event(base[cid], e)).held
            ):
                anchor = e
                break
        fired = anchor is not None
        at = anchor.created_at if anchor else inside[0].created_at
        met = goal is not None and any(
            at < e.created_at <= at + timedelta(days=goal.within_days) and goal_met(goal, e)
            for e in evs
        )
        if fired:
            out.triggered += 1
            out.triggered_goal_met += met
        else:
            out.not_triggered += 1
            out.not_triggered_goal_met += met
    if goal is not None:
        out.goal = f"{goal.event} within {goal.within_days:g} days"
    else:
        out.notes.append("The definition has no `goal`, so no outcome was measured.")
    out.notes.append(
        "Conditions on the event payload use the past event; customer and workflow facts are "
        "today's. Events older than the outbox retention are not available."
    )
    if len(rows) >= BACKTEST_MAX_EVENTS:
        out.notes.append(f"Only the first {BACKTEST_MAX_EVENTS} events were replayed.")
    return out
