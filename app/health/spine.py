"""Health on the event spine: a consumer marks changed customers, scheduled jobs score them
(debounced per customer), run queued jobs, lapse overrides and take the daily snapshot.

Nothing here runs inside a user's request: the consumer handles committed outbox events
inside its own transaction, and every scheduled run is claimed by one worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.db import retried_or_skipped, transaction
from app.events.channels import Published
from app.events.consumers import Consumer
from app.health import daily, overrides, recompute
from app.kit.clock import utcnow

DEBOUNCE = timedelta(seconds=1)
"""A customer's events within this time of the first one are scored together."""
CHUNK = 500
"""Customers scored per transaction by `score_pending`."""
TYPES = ("usage.", "task.", "stage.", "milestone.", "workflow.", "customer.created")

_MARK = """
INSERT INTO health_pending (id, organization_id, customer_id, due_at)
SELECT c.id, c.organization_id, c.id, $3
FROM unnest($1::uuid[], $2::uuid[]) AS u(cid, org)
JOIN customer c ON c.id = u.cid AND c.organization_id = u.org
ON CONFLICT (id) DO NOTHING
"""
_DUE_ORGANIZATIONS = """
SELECT DISTINCT organization_id FROM health_pending WHERE due_at <= $1 ORDER BY organization_id
"""
_CLAIM = """
DELETE FROM health_pending WHERE id IN (
    SELECT id FROM health_pending WHERE organization_id = $1 AND due_at <= $2
    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING customer_id
"""


def customers_of(event: Published) -> list[uuid.UUID]:
    """The customers an event is about: its stream's, or those of a usage batch."""
    if event.type == "usage.event_ingested":
        return [uuid.UUID(c["customerId"]) for c in event.payload.get("customers") or ()]
    return [event.customer_id] if event.customer_id else []


async def mark_changed(events: Sequence[Published]) -> None:
    """Consumer handler: mark each customer the events touch, due after the debounce; a
    customer already marked keeps its earlier due time."""
    pairs = {(cid, e.organization_id) for e in events for cid in customers_of(e)}
    if not pairs:
        return
    cids, orgs = zip(*sorted(pairs), strict=True)
    await get_connection("default").execute_query(
        _MARK, [list(cids), list(orgs), utcnow() + DEBOUNCE]
    )


async def score_pending(*, chunk: int = CHUNK) -> int:
    """Score the customers whose debounce has passed: organization by organization, each
    organization's customers in id order (as other set-based jobs lock them), `chunk` of
    them per transaction, so a transaction holds few locks and one the database rolls back to
    break a deadlock is done again alone (`retried_or_skipped`), the others kept."""
    now = utcnow()
    rows = await get_connection("default").execute_query_dict(_DUE_ORGANIZATIONS, [now])
    total = 0
    for org in (r["organization_id"] for r in rows):
        while True:
            done = await retried_or_skipped(
                partial(_score_chunk, org, now=now, chunk=chunk),
                what=f"health scoring of organization {org}",
            )
            if done is None:
                break  # its customers stay pending for the next run
            total += done[0]
            if done[1] < chunk:
                break
    return total


async def _score_chunk(organization_id: uuid.UUID, *, now: datetime, chunk: int) -> tuple[int, int]:
    """Claim up to `chunk` of an organization's due customers and score them (caller's
    transaction); return (customers scored, customers claimed)."""
    rows = await get_connection("default").execute_query_dict(_CLAIM, [organization_id, now, chunk])
    cids = [r["customer_id"] for r in rows]
    return await recompute.recompute_customers(organization_id, cids, now=now), len(cids)


async def lapse_overrides() -> int:
    """End expired overrides, put the computed scores back, and audit each lapse."""
    async with transaction():
        ended = await overrides.expire_overrides(now=utcnow())
        for o in ended:
            system = Viewer(
                subject="system:expiry",
                organization_id=o.organization_id,  # type: ignore[attr-defined]
                role=Role.ADMIN,
            )
            await audit.record(
                viewer=system,
                action="health.override_expired",
                target_type="customer",
                target_id=o.customer_id,  # type: ignore[attr-defined]
                before={"score": o.score, "level": o.level},
                after=None,
                reason=o.reason,
            )
    return len(ended)


CONSUMER = Consumer("health.recompute", mark_changed, types=TYPES, start="now")

run_pending_jobs = recompute.run_pending_jobs
snapshot_all = daily.snapshot_all
