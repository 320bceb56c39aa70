"""Recording domain events in the outbox, inside the caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tortoise.connection import get_connection

from app.kit.clock import utcnow
from app.kit.context import request_id
from app.ops import tracing

NOTIFY_CHANNEL = "liftoff_outbox"

_RECORD = """WITH seq AS (
  INSERT INTO event_stream (id, organization_id, last_sequence) VALUES ($1, $2, $3)
  ON CONFLICT (id) DO UPDATE SET last_sequence = event_stream.last_sequence + EXCLUDED.last_sequence
  WHERE event_stream.organization_id = EXCLUDED.organization_id
  RETURNING last_sequence
), ins AS (
  INSERT INTO outbox_event (organization_id, customer_id, stream, sequence, type, payload, actor,
                            created_at, trace)
  SELECT $2, $4, $1, seq.last_sequence - $3 + e.n, e.type, e.payload::jsonb, $5, $6, $11::jsonb
  FROM seq, unnest($7::text[], $8::text[]) WITH ORDINALITY AS e(type, payload, n)
)
SELECT seq.last_sequence, pg_notify($9, $10) FROM seq"""


async def record(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    events: Sequence[tuple[str, dict[str, Any]]],
    actor: str | None = None,
) -> list[int]:
    """Append events to the customer's (or organization's) stream with gap-free sequences, and
    wake the relay; one statement. Returns the sequences given.

    The stream row stays locked until the caller's transaction ends, so sequence
    order is commit order for each stream.
    """
    if not events:
        return []
    stream = customer_id or organization_id
    trace = current_trace()
    _, rows = await get_connection("default").execute_query(
        _RECORD,
        [
            stream,
            organization_id,
            len(events),
            customer_id,
            actor,
            utcnow(),
            [kind for kind, _ in events],
            [json.dumps(payload, separators=(",", ":")) for _, payload in events],
            NOTIFY_CHANNEL,
            str(organization_id),
            None if trace is None else json.dumps(trace, separators=(",", ":")),
        ],
    )
    if not rows:
        raise RuntimeError(f"event stream {stream} belongs to another organization")
    last = int(rows[0][0])
    return list(range(last - len(events) + 1, last + 1))


def current_trace() -> dict[str, str] | None:
    """The request id and traceparent to keep with events recorded now (None outside requests)."""
    trace = {"request_id": request_id.get(), "traceparent": tracing.traceparent()}
    kept = {k: v for k, v in trace.items() if v}
    return kept or None


async def record_many(
    *,
    organization_id: uuid.UUID,
    events: Mapping[uuid.UUID, Sequence[tuple[str, dict[str, Any]]]],
    actor: str | None = None,
) -> int:
    """`record` for many customers' streams (set-based jobs), in stream order."""
    count = 0
    for stream in sorted(cid for cid, evs in events.items() if evs):
        count += len(
            await record(
                organization_id=organization_id,
                customer_id=stream,
                events=events[stream],
                actor=actor,
            )
        )
    return count
