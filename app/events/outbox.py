"""Recording domain events in the outbox, inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from tortoise.connection import get_connection

from app.events.models import OutboxEvent
from app.kit.context import request_id
from app.ops import tracing

NOTIFY_CHANNEL = "liftoff_outbox"

_NEXT_SEQUENCE = """INSERT INTO event_stream (id, organization_id, last_sequence)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET last_sequence = event_stream.last_sequence + EXCLUDED.last_sequence
WHERE event_stream.organization_id = EXCLUDED.organization_id
RETURNING last_sequence
"""


async def record(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    events: Sequence[tuple[str, dict[str, Any]]],
    actor: str | None = None,
) -> list[OutboxEvent]:
    """Append events to the customer's (or organization's) stream with gap-free sequences.

    The stream row stays locked until the caller's transaction ends, so sequence
    order is commit order for each stream.
    """
    if not events:
        return []
    stream = customer_id or organization_id
    conn = get_connection("default")
    rows = await conn.execute_query_dict(_NEXT_SEQUENCE, [stream, organization_id, len(events)])
    if not rows:
        raise RuntimeError(f"event stream {stream} belongs to another organization")
    first = int(rows[0]["last_sequence"]) - len(events) + 1
    trace = current_trace()
    objs = [
        OutboxEvent(
            organization_id=organization_id,
            customer_id=customer_id,
            stream=stream,
            sequence=first + i,
            type=kind,
            payload=payload,
            actor=actor,
            trace=trace,
        )
        for i, (kind, payload) in enumerate(events)
    ]
    await OutboxEvent.bulk_create(objs)
    await conn.execute_query("SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, str(organization_id)])
    return objs


def current_trace() -> dict[str, str] | None:
    """The request id and traceparent to keep with events recorded now (None outside requests)."""
    trace = {"request_id": request_id.get(), "traceparent": tracing.traceparent()}
    kept = {k: v for k, v in trace.items() if v}
    return kept or None
