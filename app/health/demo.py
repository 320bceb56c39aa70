"""The demo's health: support, survey and billing signals, history, then real scores.

Runs after the demo's customers and usage history exist. Signals go through the real
ingestion service; the history is the real computation run as of past days over the
rollups as they stood then; today's scores and snapshot come from the daily job.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.db import transaction
from app.health import daily
from app.health.compute import prepare
from app.health.recompute import PARALLEL, Scope, id_ranges, sweep
from app.usage.rules import EventIn
from app.usage.service import ingest_events

HISTORY_DAYS = (28, 21, 14, 10, 7, 4, 2, 1)
"""Days back at which the demo's history is computed, as the data stood then."""
RETENTION_DAYS = 400

# name, share of customers, (min, max) events over the last `window` days
_SIGNALS: list[tuple[str, float, tuple[int, int], int]] = [
    ("support_ticket_opened", 0.30, (1, 5), 30),
    ("support_ticket_escalated", 0.05, (1, 1), 30),
    ("nps_promoter", 0.30, (1, 2), 80),
    ("nps_passive", 0.12, (1, 1), 80),
    ("nps_detractor", 0.12, (1, 2), 80),
    ("payment_succeeded", 0.70, (1, 3), 80),
    ("payment_failed", 0.10, (1, 3), 25),
    ("subscription_downgraded", 0.05, (1, 1), 25),
]
# Product usage, only when the demo has none: (share, active-day probability early, late).
_TRAJECTORIES = [(0.45, 0.6, 0.6), (0.2, 0.7, 0.1), (0.15, 0.1, 0.7), (0.2, 0.05, 0.0)]
_FEATURES = ("project_created", "report_shared", "teammate_invited", "data_source_connected")


def _when(rng: random.Random, now: datetime, window: int) -> datetime:
    return now - timedelta(days=rng.uniform(0.1, window), minutes=rng.uniform(0, 600))


def _signals(rng: random.Random, customers: list[uuid.UUID], now: datetime) -> list[EventIn]:
    out: list[EventIn] = []
    for cid in customers:
        for name, share, (low, high), window in _SIGNALS:
            if rng.random() < share:
                for _ in range(rng.randint(low, high)):
                    out.append(_event(cid, name, _when(rng, now, window), len(out)))
    return out


def _usage(rng: random.Random, customers: list[uuid.UUID], now: datetime) -> list[EventIn]:
    """A 60-day usage history (steady, fading, recovering, silent) for a demo without one."""
    out: list[EventIn] = []
    for cid in customers:
        pick, acc = rng.random(), 0.0
        early, late = 0.0, 0.0
        for share, p_early, p_late in _TRAJECTORIES:
            acc += share
            if pick <= acc:
                early, late = p_early, p_late
                break
        for day in range(60, 0, -1):
            chance = late + (early - late) * (day / 60)
            if rng.random() < chance:
                at = now - timedelta(days=day - 1, hours=rng.uniform(0, 20))
                out.append(_event(cid, "login", at, len(out)))
                if rng.random() < 0.08:
                    out.append(_event(cid, rng.choice(_FEATURES), at, len(out)))
    return out


def _event(cid: uuid.UUID, name: str, at: datetime, n: int) -> EventIn:
    return EventIn(
        name=name, occurred_at=at, idempotency_key=f"demo-health-{cid}-{n}", customer_id=str(cid)
    )


async def _has_usage(organization_id: uuid.UUID, names: list[str] | None = None) -> bool:
    rows = await get_connection("default").execute_query_dict(
        "SELECT EXISTS (SELECT 1 FROM usage_daily WHERE organization_id = $1 "
        "AND ($2::text[] IS NULL OR name = ANY($2::text[]))) AS found",
        [organization_id, names],
    )
    return bool(rows[0]["found"])


async def seed_health(
    organization_id: uuid.UUID,
    *,
    now: datetime,
    seed: int = 10,
    progress: Callable[[str], None] | None = None,
    today: bool = True,
) -> int:
    """Signals, history and (with `today`) today's scores and snapshot for the demo
    organization; returns the customers scored today."""
    rng = random.Random(seed)
    viewer = Viewer(subject="demo", organization_id=organization_id, role=Role.ADMIN)
    ids = list(  # in a stable order, so that one seed gives one demo
        await Customer.filter(organization_id=organization_id)
        .order_by("email")
        .values_list("id", flat=True)
    )
    events: list[EventIn] = []
    if not await _has_usage(organization_id):
        events += _usage(rng, ids, now)  # type: ignore[arg-type]
    if not await _has_usage(organization_id, [s[0] for s in _SIGNALS]):
        events += _signals(rng, ids, now)  # type: ignore[arg-type]
    if progress:
        progress(f"health: ingesting {len(events):,} signal events")
    for start in range(0, len(events), 1000):
        async with transaction():
            await ingest_events(
                viewer,
                events=events[start : start + 1000],
                actor="demo",
                retention_days=RETENTION_DAYS,
                now=now,
            )
    # fresh planner statistics: the history's queries read the rows just written
    await get_connection("default").execute_script(
        "ANALYZE customer, workflow, workflow_stage, workflow_task, usage_daily"
    )
    for days_ago in HISTORY_DAYS:
        if progress:
            progress(f"health: history as of {days_ago} day(s) ago")
        async with transaction():
            run = await prepare(
                organization_id, now=now - timedelta(days=days_ago), fresh_norm=True, backfill=True
            )
        await asyncio.gather(
            *(sweep(run, Scope(), after=lo, upto=hi) for lo, hi in id_ranges(PARALLEL))
        )
    if not today:
        return 0
    if progress:
        progress("health: today's scores")
    return await daily.snapshot_organization(organization_id, now=now)
