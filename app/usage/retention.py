"""How long usage events are kept, per organization, and the worker's pruning.

Plan (README, "Usage events"): `usage_event` is partitioned by week of `occurred_at` (months
before migration 0036).
The worker drops whole partitions older than the longest retention of any organization
(the default, LIFTOFF_EVENT_RETENTION_DAYS, or a longer one an organization chose); the few
organizations with a shorter retention have their older rows deleted, which partition
pruning keeps to the partitions past their window. Idempotency keys are deleted once an
event with them could no longer be accepted (received before the window and the 5-minute
future tolerance), daily rollups once their day is out of the window.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.connection import get_connection

from app.accounts.models import Organization
from app.db import transaction
from app.kit.clock import utcnow
from app.usage.rules import FUTURE_TOLERANCE, retention_start

MIN_DAYS = 1
MAX_DAYS = 3650
CACHE_SECONDS = 60.0
_cache: dict[uuid.UUID, tuple[float, int | None]] = {}


async def retention_days(organization_id: uuid.UUID, *, default: int) -> int:
    """The organization's retention in days (its own, or `default`); cached a minute."""
    found = _cache.get(organization_id)
    if found is None or found[0] < time.monotonic():
        days = await Organization.filter(id=organization_id).values_list(
            "event_retention_days", flat=True
        )
        value = days[0] if days else None
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[organization_id] = (time.monotonic() + CACHE_SECONDS, value)  # type: ignore[assignment]
        found = _cache[organization_id]
    return found[1] or default


async def set_retention_days(organization_id: uuid.UUID, days: int | None) -> None:
    """Set (or, with None, reset to the default) an organization's retention."""
    from app.errors import ValidationFailed

    if days is not None and not MIN_DAYS <= days <= MAX_DAYS:
        raise ValidationFailed(
            f"Retention must be {MIN_DAYS}-{MAX_DAYS} days.", field="eventRetentionDays"
        )
    await Organization.filter(id=organization_id).update(event_retention_days=days)
    _cache.pop(organization_id, None)


@dataclass
class Pruned:
    """What one pruning run removed."""

    partitions: list[str]
    events: int = 0
    keys: int = 0
    rollups: int = 0

    @property
    def total(self) -> int:
        return len(self.partitions) + self.events + self.keys + self.rollups


def droppable(bounds: list[tuple[str, datetime]], *, oldest_kept: datetime) -> list[str]:
    """Partitions (name, upper bound) whose whole range ends at or before `oldest_kept`."""
    return sorted(name for name, upper in bounds if upper <= oldest_kept)


async def _retentions() -> dict[uuid.UUID, int]:
    rows = await Organization.exclude(event_retention_days=None).values_list(
        "id", "event_retention_days"
    )
    return {oid: int(days) for oid, days in rows if days}


async def prune(
    *, default_days: int, now: datetime | None = None, batch: int | None = None
) -> Pruned:
    """Remove what every organization's retention lets go: whole partitions, then rows in
    transactions of at most `batch` rows each (BATCH by default)."""
    now = now or utcnow()
    own = await _retentions()
    longest = max([default_days, *own.values()])
    conn = get_connection("default")
    parts = await conn.execute_query_dict("SELECT name, upper_at FROM usage_event_bounds()")
    bounds = [(p["name"], p["upper_at"]) for p in parts]
    out = Pruned(droppable(bounds, oldest_kept=now - timedelta(longest)))
    for name in out.partitions:
        async with transaction():
            await conn.execute_script("SET LOCAL lock_timeout = '5s'")
            await conn.execute_script(f'DROP TABLE IF EXISTS "{name}"')
    everyone_cutoff = retention_start(now=now, retention_days=longest)
    # everyone's keys and rollups past the longest window
    out.keys += await _delete_batched(_KEYS, everyone_cutoff - FUTURE_TOLERANCE, batch=batch)
    out.rollups += await _delete_batched(_ROLLUPS, everyone_cutoff.date(), batch=batch)
    shorter = {oid: d for oid, d in own.items() if d < longest}
    if default_days < longest:
        others = await Organization.exclude(id__in=list(own)).values_list("id", flat=True)
        shorter.update({oid: default_days for oid in others})  # type: ignore[misc]
    for oid, days in sorted(shorter.items()):  # type: ignore[type-var]
        cutoff = retention_start(now=now, retention_days=days)
        out.events += await _delete_batched(_ORG_EVENTS, cutoff, oid, batch=batch)
        out.keys += await _delete_batched(_ORG_KEYS, cutoff - FUTURE_TOLERANCE, oid, batch=batch)
        out.rollups += await _delete_batched(_ORG_ROLLUPS, cutoff.date(), oid, batch=batch)
    return out


# Deletes go in batches of at most BATCH rows (the last parameter), each its own short
# transaction, so pruning never holds locks or a snapshot over millions of rows at once.
BATCH = 10_000
_KEYS = """DELETE FROM usage_event_key WHERE (organization_id, idempotency_key) IN (
    SELECT organization_id, idempotency_key FROM usage_event_key WHERE received_at < $1
    LIMIT $2)"""
_ROLLUPS = """DELETE FROM usage_daily WHERE id IN (
    SELECT id FROM usage_daily WHERE day < $1 LIMIT $2)"""
_ORG_EVENTS = """DELETE FROM usage_event WHERE (id, occurred_at) IN (
    SELECT id, occurred_at FROM usage_event WHERE organization_id = $2 AND occurred_at < $1
    LIMIT $3)"""
_ORG_KEYS = """DELETE FROM usage_event_key WHERE (organization_id, idempotency_key) IN (
    SELECT organization_id, idempotency_key FROM usage_event_key
    WHERE organization_id = $2 AND received_at < $1 LIMIT $3)"""
_ORG_ROLLUPS = """DELETE FROM usage_daily WHERE id IN (
    SELECT id FROM usage_daily WHERE organization_id = $2 AND day < $1 LIMIT $3)"""


async def _delete_batched(sql: str, *params: object, batch: int | None = None) -> int:
    """Run a batched DELETE (its last parameter the batch size) until a batch comes up short."""
    size = batch or BATCH
    total = 0
    while True:
        async with transaction():
            count = await _delete(sql, *params, size)
        total += count
        if count < size:
            return total


async def _delete(sql: str, *params: object) -> int:
    count, _ = await get_connection("default").execute_query(sql, list(params))
    return int(count)


async def ensure_ahead(*, now: datetime | None = None, months: int = 2) -> int:
    """Create the partitions of the coming two months (weeks) before events need them."""
    from app.usage.storage import ensure_partitions

    now = now or utcnow()
    async with transaction():
        return await ensure_partitions(now.date(), (now + timedelta(days=31 * months)).date())
