"""The relay: publish committed outbox events in per-customer order, each claimed by one worker."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from itertools import pairwise
from typing import Any

import structlog
from tortoise.connection import get_connection

from app.db import transaction
from app.events.channels import Published
from app.events.consumers import prune_floor_sql
from app.kit.clock import utcnow
from app.ops import metrics, tracing

log = structlog.get_logger(__name__)

Publish = Callable[[str, str], Awaitable[None]]

_CLAIM = """SELECT id, organization_id, customer_id, stream, sequence, type, payload, actor,
created_at, trace, tx
FROM outbox_event WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
_FIRST_PENDING = """SELECT stream, min(id) AS first FROM outbox_event
WHERE published_at IS NULL AND stream = ANY($1::uuid[]) GROUP BY stream"""
_MARK = "UPDATE outbox_event SET published_at = $1 WHERE id = ANY($2::bigint[])"
_PRUNE = f"""DELETE FROM outbox_event WHERE id IN (SELECT id FROM outbox_event
WHERE published_at IS NOT NULL AND published_at < $1 AND tx < {prune_floor_sql(3)} LIMIT $2)"""
PRUNE_LOCK = 7_340_001


def in_order(rows: list[dict[str, Any]], first_pending: dict[Any, int]) -> list[dict[str, Any]]:
    """The claimed rows this worker may publish now.

    Per stream: an unbroken run starting at the stream's oldest pending event.

    Rows of a stream whose older events another worker holds are left for later, so
    subscribers always see a customer's events in sequence order.
    """
    by_stream: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_stream[row["stream"]].append(row)
    keep: list[dict[str, Any]] = []
    for stream, mine in by_stream.items():
        mine.sort(key=lambda r: int(r["sequence"]))
        if int(mine[0]["id"]) != first_pending.get(stream):
            continue
        keep.append(mine[0])
        for prev, row in pairwise(mine):
            if int(row["sequence"]) != int(prev["sequence"]) + 1:
                break
            keep.append(row)
    keep.sort(key=lambda r: int(r["id"]))
    return keep


async def relay_batch(publish: Publish, *, batch_size: int) -> int:
    """Claim, publish and mark one batch in one transaction; return how many were published.

    If publishing fails the transaction rolls back and the events stay pending, to be
    published again when the broker is back; a crash mid-batch has the same effect.
    """
    async with transaction():
        conn = get_connection("default")
        rows = await conn.execute_query_dict(_CLAIM, [batch_size])
        if not rows:
            return 0
        streams = list({r["stream"] for r in rows})
        firsts = {
            r["stream"]: int(r["first"])
            for r in await conn.execute_query_dict(_FIRST_PENDING, [streams])
        }
        ready = in_order(rows, firsts)
        for trace, group in by_trace(ready, consecutive=True):
            with tracing.span("relay.publish", parent=trace.get("traceparent")) as span:
                span.set_attribute("liftoff.events", len(group))
                for row in group:
                    event = Published.of_row(row)
                    message = event.encode()
                    for channel in event.channels():
                        await publish(channel, message)
        if ready:
            await conn.execute_query(_MARK, [utcnow(), [int(r["id"]) for r in ready]])
    if ready:
        metrics.RELAY_BATCHES.inc()
        metrics.RELAY_EVENTS.inc(len(ready))
        for trace, group in by_trace(ready):
            log.info(
                "relay.published",
                request_id=trace.get("request_id"),
                events=len(group),
                types=sorted({str(r["type"]) for r in group}),
                org=str(group[0]["organization_id"]),
            )
    return len(ready)


def by_trace(
    rows: list[dict[str, Any]], *, consecutive: bool = False
) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
    """Rows grouped by the request that caused them; with `consecutive`, only neighbouring
    rows are grouped, so publishing group by group keeps the rows' order."""
    groups: list[tuple[str, dict[str, str], list[dict[str, Any]]]] = []
    index: dict[str, int] = {}
    for row in rows:
        raw = row.get("trace")
        trace = (json.loads(raw) if isinstance(raw, str) else raw) or {}
        key = trace.get("request_id") or trace.get("traceparent") or ""
        if consecutive:
            if groups and groups[-1][0] == key:
                groups[-1][2].append(row)
            else:
                groups.append((key, trace, [row]))
        elif key in index:
            groups[index[key]][2].append(row)
        else:
            index[key] = len(groups)
            groups.append((key, trace, [row]))
    return [(trace, group) for _, trace, group in groups]


async def prune(*, retention: timedelta, consumers: Sequence[str] = (), limit: int = 10_000) -> int:
    """Delete published events older than the retention that every consumer has handled
    (one worker at a time)."""
    async with transaction():
        conn = get_connection("default")
        locked = await conn.execute_query_dict(
            "SELECT pg_try_advisory_xact_lock($1) AS ok", [PRUNE_LOCK]
        )
        if not locked[0]["ok"]:
            return 0
        count, _ = await conn.execute_query(_PRUNE, [utcnow() - retention, limit, list(consumers)])
        return int(count)
