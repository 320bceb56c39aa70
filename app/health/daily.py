"""The daily recompute and snapshot: every organization once a day, across all workers."""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import datetime, timedelta

from tortoise.connection import get_connection

from app.db import transaction
from app.health.recompute import recompute_all
from app.kit.clock import utcnow

log = logging.getLogger(__name__)

RUNNER = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
STALE_AFTER = timedelta(minutes=15)

_CLAIM = """
INSERT INTO health_daily_run (id, organization_id, day, runner, started_at, customers)
VALUES ($1, $2, $3, $4, $5, 0)
ON CONFLICT (organization_id, day) DO UPDATE SET runner = EXCLUDED.runner,
    started_at = EXCLUDED.started_at
WHERE health_daily_run.finished_at IS NULL AND health_daily_run.started_at < $6
RETURNING id
"""

_SNAPSHOT = """
INSERT INTO health_snapshot (organization_id, customer_id, day, kind, taken_at, score, level,
    confidence, components, facts, model_version)
SELECT organization_id, customer_id, $2::date, 'DAILY', $3, score, level, confidence,
       components, facts, model_version
FROM health_score WHERE organization_id = $1
ON CONFLICT DO NOTHING
"""


async def claim(organization_id: uuid.UUID, *, now: datetime) -> uuid.UUID | None:
    """Claim today's run of the organization; None when another process has it or had it."""
    async with transaction():
        rows = await get_connection("default").execute_query_dict(
            _CLAIM,
            [uuid.uuid4(), organization_id, now.date(), RUNNER, now, now - STALE_AFTER],
        )
    return rows[0]["id"] if rows else None


async def snapshot_organization(organization_id: uuid.UUID, *, now: datetime) -> int:
    """Recompute every customer, then record the day's snapshot of each; returns how many.
    Only the process that claimed the day does it; the snapshot of a day is taken once."""
    run_id = await claim(organization_id, now=now)
    if run_id is None:
        return 0
    scored, _ = await recompute_all(organization_id, now=now)
    async with transaction():
        conn = get_connection("default")
        await conn.execute_query(_SNAPSHOT, [organization_id, now.date(), utcnow()])
        await conn.execute_query(
            "UPDATE health_daily_run SET finished_at = $2, customers = $3 WHERE id = $1",
            [run_id, utcnow(), scored],
        )
    return scored


async def snapshot_all(*, now: datetime | None = None) -> int:
    """Today's recompute and snapshot of every organization not yet done today."""
    now = now or utcnow()
    rows = await get_connection("default").execute_query_dict(
        "SELECT o.id FROM organization o WHERE NOT EXISTS (SELECT 1 FROM health_daily_run r "
        "WHERE r.organization_id = o.id AND r.day = $1 AND r.finished_at IS NOT NULL) "
        "ORDER BY o.id",
        [now.date()],
    )
    total = 0
    for row in rows:
        try:
            total += await snapshot_organization(row["id"], now=now)
        except Exception:
            log.exception("daily health snapshot of organization %s failed", row["id"])
    return total
