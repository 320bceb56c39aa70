"""Scheduled jobs of the worker: each run is claimed by one process through an advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.db import transaction
from app.kit.clock import utcnow
from app.onboarding import service as onboarding

log = logging.getLogger(__name__)

TIME_UNLOCK_LOCK = 7_340_002


async def unlock_due_stages() -> int:
    """Unlock stages whose days-since-signup wait has passed; one transaction per workflow."""
    now = utcnow()
    async with transaction():
        got = await get_connection("default").execute_query_dict(
            "SELECT pg_try_advisory_xact_lock($1) AS ok", [TIME_UNLOCK_LOCK]
        )
        if not got[0]["ok"]:
            return 0
        due = await onboarding.due_time_unlocks(now=now)
    changed = 0
    for organization_id, customer_id in due:
        system = Viewer(subject="scheduler", organization_id=organization_id, role=Role.ADMIN)
        async with transaction():
            out = await onboarding.settle_workflow(system, customer_id, now=now)
        changed += bool(out.events)
    return changed


async def run_schedules(stop: asyncio.Event, *, every_seconds: float = 60.0) -> None:
    """Run each scheduled job every `every_seconds` until `stop` is set."""
    while not stop.is_set():
        try:
            changed = await unlock_due_stages()
            if changed:
                log.info("unlocked time-based stages in %d workflow(s)", changed)
        except Exception:
            log.exception("scheduled job failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
