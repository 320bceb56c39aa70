"""Set-based SQL for usage events: idempotency keys, raw rows, daily rollups, partitions.

Every function runs on the caller's transaction. Rows that can collide with a concurrent
writer (keys, rollups) are written in sorted order so two batches never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from tortoise.connection import get_connection

from app.usage.rules import DayCount, RollupKey

_ensured_months: set[date] = set()


@dataclass(frozen=True)
class EventRow:
    """One accepted event, ready to store."""

    customer_id: uuid.UUID
    name: str
    occurred_at: datetime
    idempotency_key: str
    properties: str  # JSON text


def _month(at: datetime | date) -> date:
    return date(at.year, at.month, 1)


async def ensure_partitions(first: date, last: date) -> int:
    """Create the monthly partitions covering `first`..`last` that do not exist yet."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT usage_event_ensure_partitions($1, $2) AS created", [first, last]
    )
    return int(rows[0]["created"])


async def ensure_months(months: set[date]) -> None:
    """`ensure_partitions` for these months, unless this process already did."""
    if months and not months <= _ensured_months:
        await ensure_partitions(min(months), max(months))
        _ensured_months.update(months)


async def claim_keys(organization_id: uuid.UUID, keys: Sequence[str]) -> set[str]:
    """Record idempotency keys; return those not seen before (a concurrent copy waits)."""
    if not keys:
        return set()
    rows = await get_connection("default").execute_query_dict(
        "INSERT INTO usage_event_key (organization_id, idempotency_key) "
        "SELECT $1, k FROM unnest($2::varchar[]) AS k ORDER BY k "
        "ON CONFLICT DO NOTHING RETURNING idempotency_key",
        [organization_id, sorted(keys)],
    )
    return {r["idempotency_key"] for r in rows}


async def insert_events(organization_id: uuid.UUID, rows: Sequence[EventRow]) -> None:
    """Store accepted events in their monthly partitions (created when missing)."""
    if not rows:
        return
    await ensure_months({_month(r.occurred_at) for r in rows})
    await get_connection("default").execute_query(
        "INSERT INTO usage_event "
        "(organization_id, customer_id, name, occurred_at, idempotency_key, properties) "
        "SELECT $1, c, n, t, k, p::jsonb FROM unnest("
        "$2::uuid[], $3::varchar[], $4::timestamptz[], $5::varchar[], $6::text[]"
        ") AS u(c, n, t, k, p)",
        [
            organization_id,
            [r.customer_id for r in rows],
            [r.name for r in rows],
            [r.occurred_at for r in rows],
            [r.idempotency_key for r in rows],
            [r.properties for r in rows],
        ],
    )


async def add_to_rollups(organization_id: uuid.UUID, days: dict[RollupKey, DayCount]) -> None:
    """Add counts to `usage_daily`, widening each day's first/last times."""
    if not days:
        return
    keys = sorted(days, key=lambda k: (str(k[0]), k[1], k[2]))
    await get_connection("default").execute_query(
        "INSERT INTO usage_daily "
        "(organization_id, customer_id, day, name, count, first_at, last_at) "
        "SELECT $1, c, d, n, x, f, l FROM unnest("
        "$2::uuid[], $3::date[], $4::varchar[], $5::bigint[], $6::timestamptz[], $7::timestamptz[]"
        ") WITH ORDINALITY AS u(c, d, n, x, f, l, i) ORDER BY i "
        "ON CONFLICT (organization_id, customer_id, day, name) DO UPDATE SET "
        "count = usage_daily.count + EXCLUDED.count, "
        "first_at = LEAST(usage_daily.first_at, EXCLUDED.first_at), "
        "last_at = GREATEST(usage_daily.last_at, EXCLUDED.last_at)",
        [
            organization_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [days[k].count for k in keys],
            [days[k].first_at for k in keys],
            [days[k].last_at for k in keys],
        ],
    )
