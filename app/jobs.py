"""Periodic jobs of the worker: each period's run is claimed by exactly one process.

A job is a `Schedule` listed in `SCHEDULES`. Every worker (and the api's inline worker)
ticks through the list; a run is claimed by an atomic update of the job's `schedule_run`
row that only succeeds once its period has passed, so two workers never run the same
period. A run that crashes is retried in the next period; jobs are written to be
idempotent (each of their own transactions leaves a consistent state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.analytics import exports as analytics_exports
from app.analytics import maintain as analytics_maintain
from app.automation.timed import tick as automation_tick
from app.db import transaction
from app.health import spine as health
from app.idempotency import service as idempotency
from app.kit.clock import utcnow
from app.milestones import spine as milestones
from app.onboarding import service as onboarding
from app.settings import get_settings
from app.usage import retention as usage_retention_rules

log = logging.getLogger(__name__)

_CLAIM = """INSERT INTO schedule_run (name, last_started_at) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_started_at = EXCLUDED.last_started_at
WHERE schedule_run.last_started_at IS NULL OR schedule_run.last_started_at <= $3
RETURNING name"""
_FINISH = "UPDATE schedule_run SET last_finished_at = $2, last_error = $3 WHERE name = $1"


@dataclass(frozen=True)
class Schedule:
    """A job run every `every_seconds` by one worker; `run` returns how much it changed."""

    name: str
    every_seconds: float
    run: Callable[[], Awaitable[int | None]]


async def claim(schedule: Schedule) -> bool:
    """Claim this period's run of `schedule`; False when another process has it."""
    now = utcnow()
    # A little slack so workers ticking a moment apart do not skip a period.
    due_before = now - timedelta(seconds=schedule.every_seconds * 0.95)
    async with transaction():
        rows = await get_connection("default").execute_query_dict(
            _CLAIM, [schedule.name, now, due_before]
        )
    return bool(rows)


async def run_once(schedule: Schedule) -> bool:
    """Run `schedule` if this period's run is still unclaimed; True when it ran here."""
    if not await claim(schedule):
        return False
    error: str | None = None
    try:
        changed = await schedule.run()
        if changed:
            log.info("scheduled job %s changed %d", schedule.name, changed)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("scheduled job %s failed", schedule.name)
    with contextlib.suppress(Exception):
        await get_connection("default").execute_query(_FINISH, [schedule.name, utcnow(), error])
    return True


async def unlock_due_stages() -> int:
    """Unlock stages whose days-since-signup wait has passed; one transaction per workflow."""
    now = utcnow()
    async with transaction():
        due = await onboarding.due_time_unlocks(now=now)
    changed = 0
    for organization_id, customer_id in due:
        system = Viewer(subject="scheduler", organization_id=organization_id, role=Role.ADMIN)
        async with transaction():
            out = await onboarding.settle_workflow(system, customer_id, now=now)
        changed += bool(out.events)
    return changed


async def analytics_idle() -> int:
    """Refresh the analytics of customers who just went idle, a thousand per transaction."""
    changed = 0
    while True:
        async with transaction():
            done = await analytics_maintain.age(now=utcnow())
        changed += done
        if done < analytics_maintain.AGE_BATCH:
            return changed


async def usage_retention() -> int:
    """Create the coming months' event partitions; prune what retention lets go."""
    settings = get_settings()
    created = await usage_retention_rules.ensure_ahead()
    pruned = await usage_retention_rules.prune(default_days=settings.event_retention_days)
    return created + pruned.total


SCHEDULES: list[Schedule] = [
    Schedule("onboarding.time_unlocks", 60.0, unlock_due_stages),
    Schedule("analytics.idle", 300.0, analytics_idle),
    Schedule("analytics.exports", 2.0, analytics_exports.run_pending),
    Schedule("automation.time", get_settings().automation_schedule_seconds, automation_tick),
    Schedule("health.score_pending", 1.0, health.score_pending),
    Schedule("health.jobs", 2.0, health.run_pending_jobs),
    Schedule("health.override_expiry", 5.0, health.lapse_overrides),
    Schedule("health.daily_snapshot", 600.0, health.snapshot_all),
    Schedule("idempotency.prune", 600.0, idempotency.prune),
    Schedule("usage.retention", 3600.0, usage_retention),
    Schedule("milestones.timed", 3600.0, milestones.sweep_timed),
]


async def run_schedules(
    stop: asyncio.Event, *, schedules: Sequence[Schedule] | None = None, tick_seconds: float = 1.0
) -> None:
    """Run each due schedule until `stop` is set."""
    jobs = SCHEDULES if schedules is None else schedules
    while not stop.is_set():
        for schedule in jobs:
            if stop.is_set():
                break
            try:
                await run_once(schedule)
            except Exception as exc:
                log.warning("could not claim scheduled job %s (%s)", schedule.name, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick_seconds)
