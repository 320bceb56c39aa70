"""Set-based SQL for usage events: idempotency keys, raw rows, daily rollups, partitions.

Every function runs on the caller's transaction. Rows that can collide with a concurrent
writer (keys, rollups) are written in sorted order so two batches never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from tortoise.connection import get_connection

_ensured_weeks: set[date] = set()


class EventRow(NamedTuple):
    """One accepted event, ready to store."""

    customer_id: uuid.UUID
    name: str
    occurred_at: datetime
    idempotency_key: str
    properties: str  # JSON text


def week_of(at: datetime | date) -> date:
    """The Monday of the UTC week `at` falls in: new partitions hold a week each."""
    day = at.astimezone(UTC).date() if isinstance(at, datetime) else at
    return day - timedelta(days=day.weekday())


async def ensure_partitions(first: date, last: date) -> int:
    """Create the partitions that make every day from `first` to `last` storable: a week
    each (Monday to Monday, UTC), cut short where an existing partition (an older month) starts
    or ends; the number created."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT usage_event_ensure_partitions($1, $2) AS created", [first, last]
    )
    return int(rows[0]["created"])


async def ensure_weeks(weeks: set[date]) -> None:
    """`ensure_partitions` for these weeks (their Mondays), unless this process already did."""
    if weeks and not weeks <= _ensured_weeks:
        await ensure_partitions(min(weeks), max(weeks) + timedelta(days=6))
        _ensured_weeks.update(weeks)


async def ensure_window(earliest: datetime, latest: datetime) -> None:
    """`ensure_weeks` for every week from `earliest` to `latest` (UTC)."""
    first, last = week_of(earliest), week_of(latest)
    weeks = {last}
    while first < last:
        weeks.add(first)
        first += timedelta(days=7)
    await ensure_weeks(weeks)


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
    await ensure_weeks({week_of(r.occurred_at) for r in rows})
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
