"""Sending deliveries: claim due rows with SKIP LOCKED under a lease, send over SMTP or HTTP,
record the outcomes in a transaction of their own (done again if the database rolls it back).
A worker killed mid-send leaves its rows to be sent again with the same message id
(at-least-once on the wire; receivers deduplicate by id)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook
from tortoise.connection import get_connection

from app.automation.rules import next_attempt_delay
from app.db import retried_transaction, transaction
from app.deliveries.models import Delivery, DeliveryKind, DeliveryStatus, WebhookEndpoint
from app.deliveries.ssrf import RefusedDestination, Unresolvable, resolve
from app.kit.clock import utcnow
from app.ops import metrics
from app.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
LEASE = timedelta(seconds=120)
"""How long a claimed delivery belongs to its worker (longer than any attempt can take)."""
OnFinal = Callable[[Sequence[uuid.UUID]], Awaitable[None]]

_CLAIM = """SELECT id FROM delivery WHERE status = 'PENDING' AND next_attempt_at <= $1
ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED"""


@dataclass
class Outcome:
    """What one attempt did: sent, or failed (with or without hope), or gone (410)."""

    ok: bool
    error: str | None = None
    status_code: int | None = None
    retry: bool = True
    gone: bool = False
    transport: str | None = None


def smtp_params(url: str) -> dict[str, Any]:
    """aiosmtplib arguments from `smtp://user:pass@host:port` (`smtps://` for implicit TLS)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps"):
        raise ValueError("LIFTOFF_SMTP_URL must be smtp:// or smtps://")
    implicit = parsed.scheme == "smtps"
    return {
        "hostname": parsed.hostname or "localhost",
        "port": parsed.port or (465 if implicit else 25),
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "use_tls": implicit,
        "start_tls": None if not implicit else False,
        "timeout": 30,
    }


def email_message(row: Delivery, *, sender: str) -> EmailMessage:
    """The MIME message of an email delivery; its Message-ID is the stable message id."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.recipient
    msg["Subject"] = row.subject or ""
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{row.message_id}@liftoff>"
    msg["X-Liftoff-Message-Id"] = row.message_id
    msg.set_content(row.payload.get("text") or "")
    if row.payload.get("html"):
        msg.add_alternative(row.payload["html"], subtype="html")
    return msg


async def send_email(row: Delivery, settings: Settings) -> Outcome:
    """Over SMTP when configured; otherwise kept in the local mail outbox (admins read it)."""
    if not settings.smtp_url:
        return Outcome(ok=True, transport="local")
    try:
        await aiosmtplib.send(
            email_message(row, sender=settings.mail_from), **smtp_params(settings.smtp_url)
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return Outcome(ok=False, error=f"recipient refused: {exc}", retry=False)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Outcome(ok=False, error=f"SMTP: {exc}")
    return Outcome(ok=True, transport="smtp")


def signed_headers(
    endpoint: WebhookEndpoint, message_id: str, body: str, *, now: datetime
) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation's grace both secrets sign."""
    signatures = [Webhook(endpoint.secret).sign(message_id, now, body)]
    grace = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and grace is not None and grace > now:
        signatures.append(Webhook(endpoint.previous_secret).sign(message_id, now, body))
    return {
        "content-type": "application/json",
        "user-agent": "Liftoff-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


async def send_webhook(
    row: Delivery, endpoint: WebhookEndpoint, settings: Settings, client: httpx.AsyncClient
) -> Outcome:
    """POST the signed body, following redirects only to addresses that pass the SSRF check."""
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True)
    headers = signed_headers(endpoint, row.message_id, body, now=utcnow())
    url = endpoint.url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            target = await resolve(
                url,
                allow_private=settings.webhook_allow_private,
                private_hosts=settings.webhook_private_hosts,
            )
        except RefusedDestination as exc:
            return Outcome(ok=False, error=f"refused destination: {exc.message}", retry=False)
        except Unresolvable as exc:
            return Outcome(ok=False, error=exc.message)
        try:
            response = await client.post(
                target.url,
                content=body,
                headers={**headers, "host": target.host_header},
                extensions={"sni_hostname": target.sni_hostname},
                timeout=settings.webhook_timeout_seconds,
            )
        except httpx.TimeoutException:
            return Outcome(ok=False, error=f"timed out after {settings.webhook_timeout_seconds}s")
        except httpx.HTTPError as exc:
            return Outcome(ok=False, error=f"HTTP error: {exc!r}")
        code = response.status_code
        if code in (301, 302, 303, 307, 308) and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            continue
        if 200 <= code < 300:
            return Outcome(ok=True, status_code=code, transport="http")
        if code == 410:
            return Outcome(ok=False, status_code=code, error="410 Gone", gone=True, retry=False)
        return Outcome(ok=False, status_code=code, error=f"HTTP {code}: {response.text[:200]}")
    return Outcome(ok=False, error=f"more than {MAX_REDIRECTS} redirects")


async def _attempt(
    row: Delivery,
    endpoints: dict[uuid.UUID, WebhookEndpoint],
    settings: Settings,
    client: httpx.AsyncClient,
) -> Outcome:
    try:
        if row.kind is DeliveryKind.EMAIL:
            return await send_email(row, settings)
        endpoint = endpoints.get(row.endpoint_id)  # type: ignore[attr-defined]
        if endpoint is None or not endpoint.enabled:
            return Outcome(ok=False, error="the endpoint is disabled", retry=False, gone=True)
        return await send_webhook(row, endpoint, settings, client)
    except Exception as exc:
        log.exception("delivery %s failed unexpectedly", row.id)
        return Outcome(ok=False, error=f"unexpected error: {exc!r}")


def _apply(row: Delivery, out: Outcome, *, now: datetime, settings: Settings) -> bool:
    """Record an attempt on the row; True when the delivery reached a final state."""
    row.attempts += 1
    row.last_status_code = out.status_code
    if out.ok:
        row.status, row.delivered_at = DeliveryStatus.SUCCEEDED, now
        row.transport, row.last_error = out.transport, None  # type: ignore[assignment]
        return True
    row.last_error = out.error  # type: ignore[assignment]
    if out.gone:
        row.status = DeliveryStatus.DISABLED
        return True
    wait = (
        next_attempt_delay(row.attempts, scale=settings.webhook_retry_scale) if out.retry else None
    )
    if wait is None:
        row.status = DeliveryStatus.DEAD
        return True
    row.next_attempt_at = now + timedelta(seconds=wait)
    return False


async def deliver_due(
    settings: Settings, client: httpx.AsyncClient, *, on_final: OnFinal | None = None
) -> int:
    """Claim due deliveries, attempt them concurrently, record the outcomes; return the count.

    The claim is a short transaction that leases the rows (their next attempt moves LEASE
    ahead), so no transaction stays open while SMTP or HTTP peers answer; a worker that dies
    mid-send leaves its rows due again when the lease ends.
    """
    now = utcnow()
    async with transaction():
        conn = get_connection("default")
        claimed = await conn.execute_query_dict(_CLAIM, [now, settings.delivery_batch_size])
        ids = [r["id"] for r in claimed]
        if not ids:
            return 0
        await conn.execute_query(
            "UPDATE delivery SET next_attempt_at = $2 WHERE id = ANY($1::uuid[])",
            [ids, now + LEASE],
        )
    rows = await Delivery.filter(id__in=ids)
    endpoint_ids = {r.endpoint_id for r in rows if r.endpoint_id}  # type: ignore[attr-defined]
    endpoints = {e.id: e for e in await WebhookEndpoint.filter(id__in=list(endpoint_ids))}
    outcomes = await asyncio.gather(*(_attempt(r, endpoints, settings, client) for r in rows))
    now = utcnow()
    final: list[uuid.UUID] = []
    for row, out in zip(rows, outcomes, strict=True):
        if _apply(row, out, now=now, settings=settings) and row.action_id:
            final.append(row.action_id)
    gone = sorted(
        {r.endpoint_id for r, o in zip(rows, outcomes, strict=True) if _endpoint_gone(r, o)}  # type: ignore[attr-defined]
        & endpoints.keys()
    )

    async def record() -> None:
        # Rows and endpoints in id order, and `on_final` takes the runs in id order: workers
        # recording outcomes of the same runs at once wait for each other, never deadlock.
        for row in sorted(rows, key=lambda r: r.id):
            await row.save(update_fields=_RECORDED)
        for endpoint_id in gone:
            await WebhookEndpoint.filter(id=endpoint_id, enabled=True).update(
                enabled=False, disabled_reason=f"answered 410 Gone at {now.isoformat()}"
            )
        if final and on_final is not None:
            await on_final(final)

    # The messages are sent: a recording the database rolls back to break a deadlock is
    # done again (the same values), never left for the lease to end and the sends repeated.
    await retried_transaction(record, what=f"recording {len(rows)} delivery outcomes")
    for row, out in zip(rows, outcomes, strict=True):
        count_attempt(row, out, now=now)
    return len(rows)


_RECORDED = [
    "attempts",
    "status",
    "delivered_at",
    "transport",
    "last_error",
    "last_status_code",
    "next_attempt_at",
]


def _endpoint_gone(row: Delivery, out: Outcome) -> bool:
    """Whether the attempt's endpoint answered 410 Gone (it is then disabled)."""
    return out.gone and out.status_code == 410 and row.endpoint_id is not None  # type: ignore[attr-defined]


def outcome_label(row: Delivery, out: Outcome) -> str:
    """`sent`, `retry` (will be tried again), `failed` (refused for good or the endpoint is
    gone) or `dead` (retries exhausted)."""
    if out.ok:
        return "sent"
    if row.status is DeliveryStatus.PENDING:
        return "retry"
    return "dead" if row.status is DeliveryStatus.DEAD and out.retry else "failed"


def count_attempt(row: Delivery, out: Outcome, *, now: datetime) -> None:
    """One attempt in `liftoff_external_deliveries_total`; a success also in the latency
    histogram (from the delivery's creation, in the transaction of the triggering event)."""
    kind = row.kind.value.lower()
    metrics.EXTERNAL_DELIVERIES.labels(kind=kind, outcome=outcome_label(row, out)).inc()
    if out.ok and row.created_at is not None:
        seconds = max(0.0, (now - row.created_at).total_seconds())
        metrics.EXTERNAL_SECONDS.labels(kind=kind).observe(seconds)


async def next_due_in(*, now: datetime) -> float | None:
    """Seconds until the next pending delivery is due (None when none is pending)."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT min(next_attempt_at) AS due FROM delivery WHERE status = 'PENDING'"
    )
    due = rows[0]["due"]
    return None if due is None else max(0.0, (due - now).total_seconds())
