"""Webhook endpoints (admin), and the durable delivery rows that carry emails and webhooks."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.deliveries.models import Delivery, DeliveryKind, DeliveryStatus, WebhookEndpoint
from app.errors import NotFound, ValidationFailed
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.pagination import Page, paginate
from app.kit.tenancy import Tenant, scoped

NOTIFY_CHANNEL = "liftoff_delivery"
ROTATION_GRACE = timedelta(hours=24)
"""After a rotation, webhooks carry a signature by the old secret too for this long."""


def message_id(key: str) -> str:
    """A stable webhook / email id for an idempotency key: the same across retries."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:28]


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str) -> str:
    """An http(s) URL with a host, or VALIDATION_FAILED (addresses are checked when sending)."""
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationFailed("The endpoint URL must be an http(s) URL with a host.", field="url")
    if len(url) > 2000:
        raise ValidationFailed("The endpoint URL is too long.", field="url")
    return url.strip()


def _event_types(types: list[str]) -> list[str]:
    cleaned = sorted({t.strip() for t in types if t.strip()})
    if not cleaned:
        raise ValidationFailed(
            "List the event types the endpoint receives (or `*`).", field="eventTypes"
        )
    return cleaned


async def create_endpoint(
    viewer: Viewer, *, url: str, event_types: list[str], description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint with a fresh signing secret (admin)."""
    viewer.require(Role.ADMIN)
    return await WebhookEndpoint.create(
        organization_id=viewer.organization_id,
        url=check_url(url),
        event_types=_event_types(event_types),
        description=description[:200],
        secret=new_secret(),
    )


async def get_endpoint(tenant: Tenant, endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    """One endpoint of the organization, or NOT_FOUND."""
    eid = parse_id(endpoint_id, what="webhook endpoint")
    row = await scoped(WebhookEndpoint, tenant).get_or_none(id=eid)
    if row is None:
        raise NotFound(f"No webhook endpoint with id {eid}.", endpoint=str(eid))
    return row


async def list_endpoints(viewer: Viewer) -> list[WebhookEndpoint]:
    """The organization's endpoints (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await scoped(WebhookEndpoint, viewer).order_by("created_at")


async def update_endpoint(
    viewer: Viewer,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    enabled: bool | None = None,
) -> tuple[WebhookEndpoint, dict[str, Any]]:
    """Change an endpoint's URL, types or enabled flag (admin); returns it and its old state."""
    viewer.require(Role.ADMIN)
    row = await get_endpoint(viewer, endpoint_id)
    before = endpoint_audit(row)
    if url is not None:
        row.url = check_url(url)
    if event_types is not None:
        row.event_types = _event_types(event_types)
    if enabled is not None:
        row.enabled = enabled
        row.disabled_reason = None if enabled else f"disabled by {viewer.subject}"
    await row.save()
    return row, before


async def rotate_secret(viewer: Viewer, endpoint_id: str) -> WebhookEndpoint:
    """A new signing secret; the old one keeps signing alongside for ROTATION_GRACE (admin)."""
    viewer.require(Role.ADMIN)
    row = (
        await scoped(WebhookEndpoint, viewer)
        .select_for_update()
        .get_or_none(id=parse_id(endpoint_id, what="webhook endpoint"))
    )
    if row is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
    row.previous_secret, row.secret = row.secret, new_secret()
    row.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    await row.save()
    return row


def endpoint_audit(row: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint (never its secret)."""
    return {"url": row.url, "eventTypes": row.event_types, "enabled": row.enabled}


async def delete_endpoint(viewer: Viewer, endpoint_id: str) -> WebhookEndpoint:
    """Remove an endpoint and its deliveries (admin)."""
    viewer.require(Role.ADMIN)
    row = await get_endpoint(viewer, endpoint_id)
    await row.delete()
    return row


async def subscribed_endpoints(
    organization_id: uuid.UUID, event_type: str, endpoint_id: str | None
) -> list[WebhookEndpoint]:
    """Enabled endpoints for a webhook action: the named one, or those subscribed to the type."""
    query = WebhookEndpoint.filter(organization_id=organization_id, enabled=True)
    if endpoint_id:
        try:
            eid = uuid.UUID(endpoint_id)
        except ValueError:
            return []
        return list(await query.filter(id=eid))
    rows = await query
    return [r for r in rows if "*" in r.event_types or event_type in r.event_types]


async def enqueue(
    *,
    organization_id: uuid.UUID,
    kind: DeliveryKind,
    key: str,
    recipient: str,
    event_type: str,
    payload: dict[str, Any],
    subject: str | None = None,
    endpoint_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    action_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Delivery:
    """A delivery row in the caller's transaction; the worker picks it up after commit."""
    row = await Delivery.create(
        organization_id=organization_id,
        kind=kind,
        message_id=message_id(key),
        recipient=recipient,
        subject=subject,
        event_type=event_type,
        payload=payload,
        endpoint_id=endpoint_id,
        customer_id=customer_id,
        action_id=action_id,
        next_attempt_at=now or utcnow(),
    )
    await get_connection("default").execute_query(
        "SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, str(organization_id)]
    )
    return row


async def list_deliveries(
    viewer: Viewer,
    *,
    kind: DeliveryKind,
    endpoint_id: str | None = None,
    status: DeliveryStatus | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Delivery]:
    """A page of deliveries, oldest first (admin)."""
    viewer.require(Role.ADMIN)
    query = scoped(Delivery, viewer).filter(kind=kind)
    if endpoint_id is not None:
        query = query.filter(endpoint_id=(await get_endpoint(viewer, endpoint_id)).id)
    if status is not None:
        query = query.filter(status=status)
    return await paginate(query, first=first, after=after)


async def replay(viewer: Viewer, delivery_id: str) -> Delivery:
    """Send a dead or disabled webhook again, same message id, a fresh retry schedule (admin)."""
    viewer.require(Role.ADMIN)
    did = parse_id(delivery_id, what="delivery")
    row = await scoped(Delivery, viewer).select_for_update().get_or_none(id=did)
    if row is None:
        raise NotFound(f"No delivery with id {did}.", delivery=str(did))
    if row.status not in (DeliveryStatus.DEAD, DeliveryStatus.DISABLED):
        raise ValidationFailed(
            f"Only dead or disabled deliveries can be replayed; this one is {row.status.value}.",
            field="id",
        )
    if row.endpoint_id is not None:  # type: ignore[attr-defined]
        endpoint = await get_endpoint(viewer, row.endpoint_id)  # type: ignore[attr-defined]
        if not endpoint.enabled:
            raise ValidationFailed(
                "Enable the endpoint first (`updateWebhookEndpoint(enabled: true)`).", field="id"
            )
    row.status = DeliveryStatus.PENDING
    row.attempts = 0
    row.next_attempt_at = utcnow()
    await row.save(update_fields=["status", "attempts", "next_attempt_at"])
    await get_connection("default").execute_query(
        "SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, str(viewer.organization_id)]
    )
    return row
