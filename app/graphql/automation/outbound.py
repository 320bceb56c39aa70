"""GraphQL types of what automation sends and leaves: webhooks, emails, notifications, tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.accounts.models import Role
from app.deliveries.models import Delivery, DeliveryStatus
from app.deliveries.models import WebhookEndpoint as EndpointRow
from app.events.channels import Published
from app.graphql.context import Context
from app.graphql.customers.types import PageInfo
from app.kit.pagination import Page, encode_cursor
from app.notifications.models import CsmTask as CsmTaskRow
from app.notifications.models import CsmTaskStatus
from app.notifications.models import Notification as NotificationRow

Info = strawberry.Info[Context, None]

strawberry.enum(DeliveryStatus, description="Where an email or webhook delivery stands.")
strawberry.enum(CsmTaskStatus, description="Where a CSM follow-up task stands.")


@strawberry.type(description="Where the organization receives webhooks.")
class WebhookEndpoint:
    row: strawberry.Private[EndpointRow]
    id: strawberry.ID
    url: str
    description: str
    event_types: list[str] = strawberry.field(description="Webhook event types, or `*`.")
    enabled: bool
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime

    @strawberry.field(description="The Standard Webhooks signing secret (`whsec_…`, admin).")
    def secret(self, info: Info) -> str:
        info.context.viewer.require(Role.ADMIN)
        return self.row.secret

    @classmethod
    def of(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            row=row,
            id=strawberry.ID(str(row.id)),
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
        )


@strawberry.type(description="A webhook on its way, delivered, or in the dead letter.")
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID | None
    message_id: str = strawberry.field(description="`webhook-id`: the same on every retry.")
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    payload: JSON
    customer_id: strawberry.ID | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: Delivery) -> WebhookDelivery:
        endpoint_id = row.endpoint_id  # type: ignore[attr-defined]
        return cls(
            id=strawberry.ID(str(row.id)),
            endpoint_id=strawberry.ID(str(endpoint_id)) if endpoint_id else None,
            message_id=row.message_id,
            event_type=row.event_type,
            url=row.recipient,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            last_status_code=row.last_status_code,
            payload=cast(JSON, row.payload),
            customer_id=strawberry.ID(str(row.customer_id)) if row.customer_id else None,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )


@strawberry.type(
    description="An email: sent over SMTP, or kept in the local mail outbox when no SMTP "
    "server is configured (`transport: local`)."
)
class Email:
    id: strawberry.ID
    message_id: str
    to: str
    subject: str
    text: str
    html: str | None
    status: DeliveryStatus
    transport: str | None
    attempts: int
    last_error: str | None
    customer_id: strawberry.ID | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: Delivery) -> Email:
        p: dict[str, Any] = row.payload
        return cls(
            id=strawberry.ID(str(row.id)),
            message_id=row.message_id,
            to=row.recipient,
            subject=row.subject or "",
            text=p.get("text") or "",
            html=p.get("html"),
            status=row.status,
            transport=row.transport,
            attempts=row.attempts,
            last_error=row.last_error,
            customer_id=strawberry.ID(str(row.customer_id)) if row.customer_id else None,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type(description="Webhook deliveries, oldest first (Relay connection).")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[Delivery]) -> WebhookDeliveryConnection:
        edges = [
            WebhookDeliveryEdge(cursor=encode_cursor(r), node=WebhookDelivery.of(r))
            for r in page.items
        ]
        return cls(edges=edges, page_info=PageInfo.of(page), total_count=page.total_count)


@strawberry.type
class EmailEdge:
    cursor: str
    node: Email


@strawberry.type(description="Emails, oldest first (Relay connection).")
class EmailConnection:
    edges: list[EmailEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[Delivery]) -> EmailConnection:
        edges = [EmailEdge(cursor=encode_cursor(r), node=Email.of(r)) for r in page.items]
        return cls(edges=edges, page_info=PageInfo.of(page), total_count=page.total_count)


@strawberry.type(description="A message in a customer's or an operator's inbox.")
class Notification:
    id: strawberry.ID
    title: str
    body: str
    customer_id: strawberry.ID | None = strawberry.field(description="Whose inbox (a customer).")
    operator: str | None = strawberry.field(description="Whose inbox (an operator's email).")
    about_customer_id: strawberry.ID | None
    read: bool
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: NotificationRow) -> Notification:
        return cls(
            id=strawberry.ID(str(row.id)),
            title=row.title,
            body=row.body,
            customer_id=strawberry.ID(str(row.customer_id)) if row.customer_id else None,
            operator=row.operator,
            about_customer_id=(
                strawberry.ID(str(row.about_customer_id)) if row.about_customer_id else None
            ),
            read=row.read_at is not None,
            read_at=row.read_at,
            created_at=row.created_at,
        )

    @classmethod
    def of_event(cls, e: Published) -> Notification:
        p: dict[str, Any] = e.payload
        return cls(
            id=strawberry.ID(str(p.get("notificationId"))),
            title=str(p.get("title", "")),
            body=str(p.get("body", "")),
            customer_id=strawberry.ID(p["customerId"]) if p.get("customerId") else None,
            operator=p.get("operator"),
            about_customer_id=strawberry.ID(str(e.customer_id)) if e.customer_id else None,
            read=False,
            read_at=None,
            created_at=e.created_at,
        )


@strawberry.type(description="A follow-up for the customer-success team.")
class CsmTask:
    id: strawberry.ID
    customer_id: strawberry.ID
    title: str
    description: str
    assignee: str | None
    status: CsmTaskStatus
    due_at: datetime | None
    source: str | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None

    @classmethod
    def of(cls, row: CsmTaskRow) -> CsmTask:
        return cls(
            id=strawberry.ID(str(row.id)),
            customer_id=strawberry.ID(str(row.customer_id)),
            title=row.title,
            description=row.description,
            assignee=row.assignee,
            status=row.status,
            due_at=row.due_at,
            source=row.source,
            created_at=row.created_at,
            completed_at=row.completed_at,
            completed_by=row.completed_by,
        )
