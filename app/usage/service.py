"""Usage ingestion: validate each item, store each event once, roll it up, announce it.

Callers open the transaction; every function here runs inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection

from app.accounts.apikeys import INGEST as INGEST_SCOPE
from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.customers import external
from app.errors import ValidationFailed
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.tenancy import Tenant
from app.usage import retention, storage
from app.usage.rules import (
    MAX_BATCH,
    EventIn,
    ItemStatus,
    Reject,
    Rejection,
    Window,
    check_fields,
    encode_properties,
)
from app.usage.storage import EventRow

INGESTED = "usage.event_ingested"


@dataclass(slots=True)
class ItemResult:
    """What happened to one item of a batch, in the order sent."""

    index: int
    status: ItemStatus
    customer_id: uuid.UUID | None = None
    code: str | None = None
    reason: str | None = None


@dataclass
class Ingested:
    """The answer to one batch."""

    items: list[ItemResult] = field(default_factory=list)

    def count(self, status: ItemStatus) -> int:
        return sum(1 for i in self.items if i.status is status)


# Two probes of unique indexes (the primary key, and (organization_id, external_id)), so the
# cost follows the batch, not the organization's number of customers.
_CUSTOMERS = """SELECT id, external_id FROM customer
WHERE id = ANY($2::uuid[]) AND organization_id = $1
UNION ALL
SELECT id, external_id FROM customer
WHERE organization_id = $1 AND external_id = ANY($3::varchar[])"""


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def customers_named(
    organization_id: uuid.UUID,
    customer_ids: Iterable[str | None],
    external_ids: Iterable[str | None],
) -> tuple[set[uuid.UUID], dict[str, uuid.UUID]]:
    """The organization's customers among these ids (ours, and its own), in one query."""
    ids = list({u for c in customer_ids if c and (u := _uuid(c))})
    externals = list({x for x in external_ids if x})
    if not ids and not externals:
        return set(), {}
    _, rows = await get_connection("default").execute_query(
        _CUSTOMERS, [organization_id, ids, externals]
    )
    return {r[0] for r in rows}, {r[1]: r[0] for r in rows if r[1]}


async def resolve_customers(
    tenant: Tenant, events: Sequence[EventIn]
) -> tuple[set[uuid.UUID], dict[str, uuid.UUID]]:
    """The tenant's customers the events name: by our id, and by the organization's own id."""
    return await customers_named(
        tenant.organization_id, (e.customer_id for e in events), (e.external_id for e in events)
    )


async def ingest_events(
    tenant: Tenant,
    *,
    events: Sequence[EventIn | Rejection],
    actor: str,
    retention_days: int,
    now: datetime | None = None,
    create_missing: bool = False,
) -> Ingested:
    """Store a batch: each item ACCEPTED, DUPLICATE (key seen before) or REJECTED with a code.

    Three statements whatever the batch's size: its customers, one statement that claims the
    keys and stores the new events and their rollups (`storage.store_rows`), and the outbox
    event. With `create_missing`, an unknown `externalId` becomes a new customer with its
    default workflow (`app/customers/external.py`) instead of a NOT_FOUND."""
    if len(events) > MAX_BATCH:
        raise ValidationFailed(
            f"A batch holds at most {MAX_BATCH} events; this one has {len(events)}.",
            field="events",
        )
    now = now or utcnow()
    window = Window.at(now, retention_days)
    results: list[ItemResult | None] = [None] * len(events)
    valid: list[tuple[int, EventIn, datetime, str]] = []
    rejected = ItemStatus.REJECTED
    for index, event in enumerate(events):
        if type(event) is Rejection:  # its shape was refused as it arrived
            results[index] = ItemResult(index, rejected, None, event.code, event.reason)
            continue
        assert isinstance(event, EventIn)
        at = check_fields(
            event.customer_id,
            event.external_id,
            event.name,
            event.occurred_at,
            event.idempotency_key,
            window,
        )
        if type(at) is Rejection:
            results[index] = ItemResult(index, rejected, None, at.code, at.reason)
            continue
        properties = encode_properties(event.properties)
        if type(properties) is Rejection:
            results[index] = ItemResult(index, rejected, None, properties.code, properties.reason)
            continue
        valid.append((index, event, at, properties))  # type: ignore[arg-type]
    known, by_external = await resolve_customers(tenant, [v[1] for v in valid])
    if create_missing:
        missing = {e.external_id for _, e, _, _ in valid if e.external_id} - set(by_external)
        if missing:
            by_external.update(
                await external.ensure_customers(tenant, missing, actor=actor, now=now)
            )
    pending: dict[str, tuple[int, EventRow]] = {}
    for index, event, at, properties in valid:
        customer = _customer_of(event, known, by_external)
        if customer is None:
            reason = f"No customer {_named(event)} in your organization."
            results[index] = ItemResult(index, rejected, None, Reject.NOT_FOUND, reason)
        elif event.idempotency_key in pending:
            results[index] = ItemResult(index, ItemStatus.DUPLICATE, customer)
        else:
            row = EventRow(customer, event.name, at, event.idempotency_key, properties)
            pending[event.idempotency_key] = (index, row)
    fresh = set(
        await storage.store_rows(tenant.organization_id, [row for _, row in pending.values()])
    )
    rows: list[EventRow] = []
    for key, (index, row) in pending.items():
        if key in fresh:
            results[index] = ItemResult(index, ItemStatus.ACCEPTED, row.customer_id)
            rows.append(row)
        else:
            results[index] = ItemResult(index, ItemStatus.DUPLICATE, row.customer_id)
    await announce(tenant.organization_id, rows, actor=actor)
    return Ingested(results)  # type: ignore[arg-type]


async def store(organization_id: uuid.UUID, rows: Sequence[EventRow], *, actor: str) -> None:
    """Write rows (their keys new and distinct), their rollups and one `usage.event_ingested`
    event for them."""
    await storage.store_rows(organization_id, rows)
    await announce(organization_id, rows, actor=actor)


async def announce(organization_id: uuid.UUID, rows: Sequence[EventRow], *, actor: str) -> None:
    """One `usage.event_ingested` on the outbox for the rows stored (none for none)."""
    if not rows:
        return
    await outbox.record(
        organization_id=organization_id,
        customer_id=None,
        events=[(INGESTED, summary(rows))],
        actor=actor,
    )


def summary(rows: Sequence[EventRow]) -> dict[str, Any]:
    """The payload of one `usage.event_ingested`: counts per customer and event name."""
    per: dict[uuid.UUID, dict[str, int]] = {}
    last: dict[uuid.UUID, datetime] = {}
    for r in rows:
        names = per.setdefault(r.customer_id, {})
        names[r.name] = names.get(r.name, 0) + 1
        last[r.customer_id] = max(last.get(r.customer_id, r.occurred_at), r.occurred_at)
    return {
        "accepted": len(rows),
        "customers": [
            {"customerId": str(c), "names": names, "lastAt": last[c].isoformat()}
            for c, names in per.items()
        ],
    }


def _customer_of(
    event: EventIn, known: set[uuid.UUID], by_external: dict[str, uuid.UUID]
) -> uuid.UUID | None:
    if event.external_id is not None:
        return by_external.get(event.external_id)
    parsed = _uuid(event.customer_id or "")
    return parsed if parsed in known else None


def _named(event: EventIn) -> str:
    return (
        f"with externalId {event.external_id!r}" if event.external_id else f"{event.customer_id!r}"
    )


async def ingest_as(
    viewer: Viewer,
    *,
    events: Sequence[EventIn | Rejection],
    create_missing: bool = False,
    default_retention_days: int,
) -> Ingested:
    """`ingest_events` for an API key with the ingest scope or an ADMIN (a customer's or a
    CSM's token is refused), within the organization's retention window."""
    viewer.require_scope(INGEST_SCOPE, Role.ADMIN)
    days = await retention.retention_days(viewer.organization_id, default=default_retention_days)
    return await ingest_events(
        viewer,
        events=events,
        actor=viewer.label,
        retention_days=days,
        create_missing=create_missing,
    )
