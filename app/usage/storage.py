"""Set-based SQL for usage events: idempotency keys, raw rows, daily rollups, partitions.

Every function runs on the caller's transaction. Rows that can collide with a concurrent
writer (keys, rollups) are written in sorted order so two batches never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple

from tortoise.connection import get_connection

_ensured_months: set[date] = set()


class EventRow(NamedTuple):
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


async def ensure_window(earliest: datetime, latest: datetime) -> None:
    """`ensure_months` for every month from `earliest` to `latest` (UTC)."""
    first, last = _month(earliest.astimezone(UTC)), _month(latest.astimezone(UTC))
    months = {first, last}
    while first < last:
        first = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        months.add(first)
    await ensure_months(months)


def store_sql(source: str) -> str:
    """One statement that claims the idempotency keys of the rows in `source` (a table or a
    CTE with the columns of `EventRow`, its keys distinct), stores the rows whose keys were new
    in their partitions and adds them to the daily rollups, keys and rollups in sorted order;
    `$1` is the organization. The `days` CTE (customer_id, day, name, n, first_at, last_at)
    is left for the caller's final SELECT."""
    return f"""WITH claimed AS (
    INSERT INTO usage_event_key (organization_id, idempotency_key)
    SELECT $1, idempotency_key FROM {source} ORDER BY idempotency_key
    ON CONFLICT DO NOTHING RETURNING idempotency_key
), stored AS (
    INSERT INTO usage_event
        (organization_id, customer_id, name, occurred_at, idempotency_key, properties)
    SELECT $1, s.customer_id, s.name, s.occurred_at, s.idempotency_key, s.properties::jsonb
    FROM {source} s JOIN claimed c USING (idempotency_key)
    RETURNING customer_id, name, occurred_at, idempotency_key
), days AS (
    SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, name,
           count(*) AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM stored GROUP BY 1, 2, 3
), rolled AS (
    INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at, last_at)
    SELECT $1, customer_id, day, name, n, first_at, last_at FROM days
    ORDER BY customer_id, day, name
    ON CONFLICT (organization_id, customer_id, day, name) DO UPDATE SET
        count = usage_daily.count + EXCLUDED.count,
        first_at = LEAST(usage_daily.first_at, EXCLUDED.first_at),
        last_at = GREATEST(usage_daily.last_at, EXCLUDED.last_at)
)
"""


_STORE_ROWS = f"""WITH input AS MATERIALIZED (
    SELECT * FROM unnest($2::uuid[], $3::varchar[], $4::timestamptz[], $5::varchar[], $6::text[])
    AS u(customer_id, name, occurred_at, idempotency_key, properties)
), {store_sql("input").removeprefix("WITH ")}SELECT idempotency_key FROM stored"""


async def store_rows(organization_id: uuid.UUID, rows: Sequence[EventRow]) -> list[str]:
    """Claim the rows' idempotency keys (distinct within `rows`), store the rows whose keys
    were new and add them to the daily rollups, in one statement; the keys stored."""
    if not rows:
        return []
    await ensure_months({_month(r.occurred_at) for r in rows})
    _, found = await get_connection("default").execute_query(
        _STORE_ROWS,
        [
            organization_id,
            [r.customer_id for r in rows],
            [r.name for r in rows],
            [r.occurred_at for r in rows],
            [r.idempotency_key for r in rows],
            [r.properties for r in rows],
        ],
    )
    return [r[0] for r in found]
