"""The facts rule conditions and templates see: customer, workflow, usage and the event."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple, cast

from app.automation.models import CustomerActivity
from app.customers.models import Customer
from app.events.channels import Published
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.rules import progress_percent
from app.onboarding.states import StageStatus, TaskStatus, WorkflowStatus

DAY = 86400.0


def _days(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds() / DAY, 3)


def customer_facts(customer: Customer, *, now: datetime) -> dict[str, Any]:
    """A customer's own fields and properties."""
    return {
        "id": str(customer.id),
        "email": customer.email,
        "name": customer.name,
        "company": customer.company,
        "externalId": customer.external_id,
        "userType": customer.user_type,
        "acquisitionChannel": customer.acquisition_channel,
        "tags": list(customer.tags or []),
        "properties": dict(customer.properties or {}),
        "signedUpAt": customer.signed_up_at,
        "daysSinceSignup": _days(customer.signed_up_at, now),
    }


class _Task(NamedTuple):
    key: str
    status: TaskStatus
    required: bool


def workflow_facts(
    workflow: dict[str, Any],
    stages: list[tuple[str, int, str]],
    tasks: list[_Task],
    *,
    now: datetime,
) -> dict[str, Any]:
    """Status, progress (percent 0-100), points, current stage, stage and task states."""
    status = WorkflowStatus(workflow["status"])
    percent = 100.0 if status is WorkflowStatus.COMPLETED else progress_percent(cast(Any, tasks))
    ordered = sorted(stages, key=lambda s: s[1])
    current = next((s for s in ordered if s[2] != StageStatus.COMPLETED.value), None)
    if current is None and ordered:
        current = ordered[-1]
    return {
        "id": str(workflow["id"]),
        "status": status.value,
        "progress": percent,
        "points": workflow["points"],
        "paused": workflow["paused"],
        "currentStage": current[0] if current else None,
        "badges": [b.get("key") for b in _json(workflow["badges"]) or []],
        "daysSinceActivity": _days(workflow["last_activity_at"], now),
        "stages": {key: state for key, _, state in stages},
        "tasks": {t.key: t.status.value for t in tasks},
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def event_facts(event: Published | None) -> dict[str, Any] | None:
    """The triggering event as facts (`event.type`, `event.payload.*`)."""
    if event is None:
        return None
    return {
        "id": event.id,
        "type": event.type,
        "payload": event.payload,
        "createdAt": event.created_at,
        "actor": event.actor,
    }


async def load_facts(
    organization_id: uuid.UUID, customer_ids: Collection[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, dict[str, Any]]:
    """Facts of many customers of one organization, in five queries whatever their number
    (plain rows, no model objects: this runs for every batch of events)."""
    ids = list(customer_ids)
    if not ids:
        return {}
    customers = await Customer.filter(organization_id=organization_id, id__in=ids)
    workflows = await Workflow.filter(organization_id=organization_id, customer_id__in=ids).values(
        "id", "customer_id", "status", "points", "paused", "badges", "last_activity_at"
    )
    wf_ids = [w["id"] for w in workflows]
    stages: dict[uuid.UUID, list[tuple[str, int, str]]] = defaultdict(list)
    tasks: dict[uuid.UUID, list[_Task]] = defaultdict(list)
    if wf_ids:
        for wid, key, position, state in await WorkflowStage.filter(
            organization_id=organization_id, workflow_id__in=wf_ids
        ).values_list("workflow_id", "key", "position", "status"):
            stages[wid].append((key, position, str(state)))
        for wid, key, state, required in await WorkflowTask.filter(
            organization_id=organization_id, workflow_id__in=wf_ids
        ).values_list("workflow_id", "key", "status", "required"):
            tasks[wid].append(_Task(key, TaskStatus(state), bool(required)))
    activity = {
        a.customer_id: a.last_usage_at
        for a in await CustomerActivity.filter(organization_id=organization_id, customer_id__in=ids)
    }
    by_customer = {w["customer_id"]: w for w in workflows}
    out: dict[uuid.UUID, dict[str, Any]] = {}
    for c in customers:
        wf = by_customer.get(c.id)
        last_usage = activity.get(c.id)
        out[c.id] = {
            "customer": customer_facts(c, now=now),
            "workflow": (
                workflow_facts(wf, stages[wf["id"]], tasks[wf["id"]], now=now) if wf else None
            ),
            "usage": {"lastSeenAt": last_usage, "daysSinceLastUsage": _days(last_usage, now)},
        }
    return out


def with_event(base: dict[str, Any], event: Published | None) -> dict[str, Any]:
    """A customer's facts plus the triggering event."""
    return {**base, "event": event_facts(event)}


def template_variables(facts: dict[str, Any], *, rule_name: str) -> dict[str, Any]:
    """What `{{ … }}` in a rule's templates can use."""
    return {**facts, "rule": {"name": rule_name}}
