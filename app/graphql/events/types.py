"""GraphQL types of the live feeds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.events.channels import Published
from app.events.orgfeed import encode_cursor
from app.graphql.enums import WorkflowStatus
from app.graphql.onboarding.types import Badge, CelebrationKind


@strawberry.type(description="A change to a customer's workflow, with the fresh figures.")
class WorkflowEvent:
    id: strawberry.ID
    sequence: int = strawberry.field(
        description="Per customer, increasing by one; use it as `afterSequence`."
    )
    type: str
    customer_id: strawberry.ID
    occurred_at: datetime
    replayed: bool = strawberry.field(description="True when read back from history, not live.")
    task_key: str | None
    stage_key: str | None
    status: str | None
    points_awarded: int | None
    workflow_status: WorkflowStatus | None
    progress: float | None = strawberry.field(
        description="The workflow's percent done after this change, 0-100 (like Workflow.progress)."
    )
    points: int | None
    estimated_minutes_remaining: int | None
    current_stage_key: str | None
    payload: JSON

    @classmethod
    def of(cls, e: Published, *, replayed: bool) -> WorkflowEvent:
        p: dict[str, Any] = e.payload
        wf: dict[str, Any] = p.get("workflow") or {}
        return cls(
            id=strawberry.ID(str(e.id)),
            sequence=e.sequence,
            type=e.type,
            customer_id=strawberry.ID(str(e.customer_id)),
            occurred_at=e.created_at,
            replayed=replayed,
            task_key=p.get("task"),
            stage_key=p.get("stage") or p.get("stage_key"),
            status=p.get("status"),
            points_awarded=p.get("points") if e.type == "points.awarded" else None,
            workflow_status=WorkflowStatus(wf["status"]) if wf.get("status") else None,
            progress=wf.get("progress"),
            points=wf.get("points"),
            estimated_minutes_remaining=wf.get("minutesRemaining"),
            current_stage_key=wf.get("currentStage"),
            payload=cast(JSON, p),
        )


@strawberry.type(description="A celebration as it happens.")
class CelebrationEvent:
    id: strawberry.ID
    sequence: int
    customer_id: strawberry.ID
    occurred_at: datetime
    kind: CelebrationKind
    title: str
    message: str
    stage_key: str | None
    points: int
    badge: Badge | None
    cursor: str | None = strawberry.field(
        default=None,
        description="Where the organization-wide feed stands after this event: pass it as "
        "`after` to resume (null on a customer's own feed, which resumes with "
        "`afterSequence`).",
    )
    replayed: bool = strawberry.field(
        default=False, description="Sent again on resuming (it happened while you were away)."
    )

    @classmethod
    def of(
        cls, e: Published, *, org_wide: bool = False, replayed: bool = False
    ) -> CelebrationEvent:
        p = e.payload
        return cls(
            cursor=encode_cursor(e) if org_wide else None,
            replayed=replayed,
            id=strawberry.ID(str(e.id)),
            sequence=e.sequence,
            customer_id=strawberry.ID(str(e.customer_id)),
            occurred_at=e.created_at,
            kind=CelebrationKind(p["kind"]),
            title=p["title"],
            message=p["message"],
            stage_key=p.get("stage_key"),
            points=int(p.get("points") or 0),
            badge=Badge.of(p["badge"]) if p.get("badge") else None,
        )


@strawberry.type(description="One line of the organization's activity feed.")
class ActivityEvent:
    id: strawberry.ID
    sequence: int
    type: str
    customer_id: strawberry.ID | None
    actor: str | None
    occurred_at: datetime
    summary: str
    payload: JSON
    cursor: str = strawberry.field(
        description="Where the feed stands after this event: pass it as `activity(after:)` "
        "after a reconnect to get exactly the events you missed."
    )
    replayed: bool = strawberry.field(
        default=False, description="Sent again on resuming (it happened while you were away)."
    )

    @classmethod
    def of(cls, e: Published, *, replayed: bool = False) -> ActivityEvent:
        return cls(
            cursor=encode_cursor(e),
            replayed=replayed,
            id=strawberry.ID(str(e.id)),
            sequence=e.sequence,
            type=e.type,
            customer_id=strawberry.ID(str(e.customer_id)) if e.customer_id else None,
            actor=e.actor,
            occurred_at=e.created_at,
            summary=summarize(e),
            payload=cast(JSON, e.payload),
        )


def summarize(e: Published) -> str:
    """A line a person can read in a feed."""
    p = e.payload
    subject = p.get("task") or p.get("stage") or p.get("name") or ""
    if e.type == "celebration":
        return str(p.get("title", "Celebration"))
    if e.type == "points.awarded":
        return f"+{p.get('points')} points (total {p.get('total')})"
    if e.type == "badge.earned":
        return f"Badge earned: {(p.get('badge') or {}).get('name', '')}"
    verb = e.type.replace(".", " ").replace("_", " ")
    return f"{verb}: {subject}" if subject else verb


SHAREABLE = (WorkflowEvent, CelebrationEvent, ActivityEvent)
"""Payload types whose fields read only the payload: one execution serves all subscribers."""
