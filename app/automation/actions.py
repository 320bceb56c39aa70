"""The effects of rule actions, inside the caller's transaction: database changes directly,
external sends as delivery rows. Each returns what it did, or raises ActionFailed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError
from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.service import check_email
from app.accounts.viewer import Viewer
from app.automation import rules
from app.automation.templating import render, render_data
from app.customers.models import Customer
from app.deliveries import service as deliveries
from app.deliveries.models import DeliveryKind
from app.errors import DomainError
from app.events import outbox
from app.notifications import service as notifications
from app.onboarding import service as onboarding
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.states import StageStatus, TaskStatus


class ActionFailed(DomainError):
    """An action could not be done; `kind` groups failures in the statistics."""

    code = "ACTION_FAILED"

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message, kind=kind)
        self.kind = kind


@dataclass(frozen=True)
class Context:
    """Who and what an action runs for."""

    organization_id: uuid.UUID
    customer_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    action_id: uuid.UUID
    key: str
    depth: int
    variables: dict[str, Any]
    now: datetime

    @property
    def source(self) -> str:
        return f"automation:{self.rule_id}"

    @property
    def meta(self) -> dict[str, Any]:
        """Carried by every event an action emits, so loops can be cut at a depth."""
        return {"automation": {"rule": str(self.rule_id), "depth": self.depth + 1}}

    @property
    def system(self) -> Viewer:
        return Viewer(subject=self.source, organization_id=self.organization_id, role=Role.ADMIN)


@dataclass(frozen=True)
class Done:
    queued: bool
    result: dict[str, Any]


def _render(source: str, ctx: Context, *, html: bool = False) -> str:
    try:
        return render(source, ctx.variables, html=html)
    except TemplateError as exc:
        raise ActionFailed(f"template error: {exc}", kind="template_error") from None


async def _emit(ctx: Context, kind: str, payload: dict[str, Any]) -> None:
    await outbox.record(
        organization_id=ctx.organization_id,
        customer_id=ctx.customer_id,
        events=[(kind, {**payload, **ctx.meta})],
        actor=ctx.source,
    )


async def send_email(action: rules.SendEmail, ctx: Context) -> Done:
    to = _render(action.to, ctx).strip()
    try:
        to = check_email(to)
    except DomainError:
        raise ActionFailed(f"{to!r} is not an email address", kind="invalid_recipient") from None
    subject = _render(action.subject, ctx).strip()
    text = _render(action.text, ctx)
    html = _render(action.html, ctx, html=True) if action.html else None
    row = await deliveries.enqueue(
        organization_id=ctx.organization_id,
        kind=DeliveryKind.EMAIL,
        key=ctx.key,
        recipient=to,
        subject=subject,
        event_type="email",
        payload={"text": text, "html": html},
        customer_id=ctx.customer_id,
        action_id=ctx.action_id,
        now=ctx.now,
    )
    return Done(True, {"to": to, "subject": subject, "deliveryId": str(row.id)})


async def notify(action: rules.Notify, ctx: Context) -> Done:
    to = _render(action.to, ctx).strip()
    title, body = _render(action.title, ctx), _render(action.body, ctx)
    try:
        rows = await notifications.notify(
            organization_id=ctx.organization_id,
            customer_id=ctx.customer_id,
            to=to,
            title=title,
            body=body,
            source=ctx.source,
            extra=ctx.meta,
        )
    except DomainError as exc:
        raise ActionFailed(exc.message, kind="invalid_recipient") from None
    return Done(False, {"to": to, "title": title, "notifications": len(rows)})


def webhook_body(action: rules.Webhook, ctx: Context) -> dict[str, Any]:
    """The JSON a webhook action posts (Standard Webhooks envelope: type, timestamp, data)."""
    if action.data is not None:
        try:
            data = render_data(action.data, ctx.variables)
        except TemplateError as exc:
            raise ActionFailed(f"template error: {exc}", kind="template_error") from None
    else:
        v = ctx.variables
        data = {
            "customer": {
                k: v["customer"].get(k) for k in ("id", "email", "name", "company", "externalId")
            },
            "workflow": {
                k: (v.get("workflow") or {}).get(k)
                for k in ("status", "progress", "points", "currentStage")
            },
            "event": {k: (v.get("event") or {}).get(k) for k in ("id", "type", "payload")},
            "rule": ctx.rule_name,
        }
    return {"type": action.event, "timestamp": ctx.now.isoformat(), "data": data}


async def webhook(action: rules.Webhook, ctx: Context) -> Done:
    body = webhook_body(action, ctx)
    endpoints = await deliveries.subscribed_endpoints(
        ctx.organization_id, action.event, action.endpoint
    )
    if not endpoints:
        raise ActionFailed(
            f"no enabled webhook endpoint receives {action.event!r}", kind="no_endpoint"
        )
    ids = []
    for endpoint in endpoints:
        row = await deliveries.enqueue(
            organization_id=ctx.organization_id,
            kind=DeliveryKind.WEBHOOK,
            key=f"{ctx.key}:{endpoint.id}",
            recipient=endpoint.url,
            event_type=action.event,
            payload=body,
            endpoint_id=endpoint.id,
            customer_id=ctx.customer_id,
            action_id=ctx.action_id,
            now=ctx.now,
        )
        ids.append(str(row.id))
    return Done(True, {"event": action.event, "deliveries": ids})


async def create_task(action: rules.CreateTask, ctx: Context) -> Done:
    title, description = _render(action.title, ctx), _render(action.description, ctx)
    if action.target == "workflow":
        return await _workflow_task(action, ctx, title, description)
    assignee = _render(action.assignee, ctx).strip() if action.assignee else None
    due = ctx.now + timedelta(days=action.due_in_days) if action.due_in_days is not None else None
    row = await notifications.create_csm_task(
        organization_id=ctx.organization_id,
        customer_id=ctx.customer_id,
        title=title,
        description=description,
        assignee=assignee,
        due_at=due,
        source=ctx.source,
    )
    await _emit(ctx, "csm_task.created", {"taskId": str(row.id), "title": title})
    return Done(False, {"csmTaskId": str(row.id), "title": title, "assignee": row.assignee})


async def _workflow_task(
    action: rules.CreateTask, ctx: Context, title: str, description: str
) -> Done:
    workflow = (
        await Workflow.filter(organization_id=ctx.organization_id, customer_id=ctx.customer_id)
        .select_for_update()
        .first()
    )
    if workflow is None:
        raise ActionFailed("the customer has no workflow", kind="no_workflow")
    stages = await WorkflowStage.filter(workflow_id=workflow.id).order_by("position")
    stage = next((s for s in stages if s.status is not StageStatus.COMPLETED), None)
    if stage is None:
        raise ActionFailed("every stage is complete", kind="workflow_complete")
    position = await WorkflowTask.filter(workflow_id=workflow.id).count()
    key = f"auto-{ctx.action_id.hex[:12]}"
    open_now = stage.status is not StageStatus.LOCKED
    await WorkflowTask.create(
        organization_id=ctx.organization_id,
        workflow_id=workflow.id,
        stage_id=stage.id,
        key=key,
        title=title,
        description=description,
        position=position,
        points=action.points,
        required=False,
        status=TaskStatus.AVAILABLE if open_now else TaskStatus.LOCKED,
        updated_at=ctx.now,
    )
    # every change to a workflow's stages or tasks moves its version (unlocked steps check it)
    await get_connection("default").execute_query(
        "UPDATE workflow SET version = version + 1 WHERE id = $1 AND organization_id = $2",
        [workflow.id, ctx.organization_id],
    )
    await _emit(ctx, "task.added", {"task": key, "stage": stage.key, "title": title})
    return Done(False, {"taskKey": key, "stage": stage.key, "title": title})


async def award_points(action: rules.AwardPoints, ctx: Context) -> Done:
    rows = await get_connection("default").execute_query_dict(
        "UPDATE workflow SET points = points + $1, version = version + 1 "
        "WHERE organization_id = $2 AND customer_id = $3 RETURNING points",
        [action.points, ctx.organization_id, ctx.customer_id],
    )
    if not rows:
        raise ActionFailed("the customer has no workflow", kind="no_workflow")
    total = int(rows[0]["points"])
    await _emit(
        ctx,
        "points.awarded",
        {"points": action.points, "total": total, "source": f"{ctx.source}:{action.reason}"},
    )
    await onboarding.settle_workflow(ctx.system, ctx.customer_id, now=ctx.now)
    return Done(False, {"points": action.points, "total": total})


async def _locked_customer(ctx: Context) -> Customer:
    """The customer row, locked against other changes to it until commit. `FOR NO KEY
    UPDATE`, as the update itself takes (its key does not change): rows being inserted
    elsewhere that refer to the customer (health scores, snapshots, notes) take a key-share
    lock on it, and a plain `FOR UPDATE` would wait for them and deadlock with jobs that take
    those locks in another order (health scoring goes by customer id, a consumer batch by
    event)."""
    row = (
        await Customer.filter(organization_id=ctx.organization_id, id=ctx.customer_id)
        .select_for_update(no_key=True)
        .first()
    )
    if row is None:
        raise ActionFailed("the customer no longer exists", kind="no_customer")
    return row


async def tag(action: rules.TagCustomer, ctx: Context) -> Done:
    customer = await _locked_customer(ctx)
    tags = list(customer.tags or [])
    adding = action.type == "tag_customer"
    changed = (action.tag not in tags) if adding else (action.tag in tags)
    if changed:
        tags = [*tags, action.tag] if adding else [t for t in tags if t != action.tag]
        customer.tags = tags
        await customer.save(update_fields=["tags"])
        kind = "customer.tagged" if adding else "customer.untagged"
        await _emit(ctx, kind, {"tag": action.tag, "tags": tags})
    return Done(False, {"tag": action.tag, "changed": changed, "tags": tags})


async def set_property(action: rules.SetProperty, ctx: Context) -> Done:
    try:
        value = render_data(action.value, ctx.variables)
    except TemplateError as exc:
        raise ActionFailed(f"template error: {exc}", kind="template_error") from None
    customer = await _locked_customer(ctx)
    props = dict(customer.properties or {})
    previous = props.get(action.property)
    props[action.property] = value
    customer.properties = props
    await customer.save(update_fields=["properties"])
    await _emit(ctx, "customer.property_set", {"property": action.property, "value": value})
    return Done(False, {"property": action.property, "value": value, "previous": previous})


async def perform(action: Any, ctx: Context) -> Done:
    """Do one effect action."""
    if isinstance(action, rules.SendEmail):
        return await send_email(action, ctx)
    if isinstance(action, rules.Notify):
        return await notify(action, ctx)
    if isinstance(action, rules.Webhook):
        return await webhook(action, ctx)
    if isinstance(action, rules.CreateTask):
        return await create_task(action, ctx)
    if isinstance(action, rules.AwardPoints):
        return await award_points(action, ctx)
    if isinstance(action, rules.TagCustomer):
        return await tag(action, ctx)
    if isinstance(action, rules.SetProperty):
        return await set_property(action, ctx)
    raise ActionFailed(f"unknown action {type(action).__name__}", kind="unknown_action")
