"""Periodic jobs: each period's run is claimed by one process, however many tick at once."""

from __future__ import annotations

import asyncio
import uuid

from app.events.models import ScheduleRun
from app.jobs import Schedule, run_once


async def test_concurrent_workers_run_a_period_once_and_the_next_period_again(db: str) -> None:
    runs: list[int] = []

    async def job() -> int:
        runs.append(1)
        await asyncio.sleep(0.05)
        return 1

    schedule = Schedule(f"test.{uuid.uuid4().hex[:10]}", 0.5, job)
    ran = await asyncio.gather(*(run_once(schedule) for _ in range(8)))
    assert sum(ran) == 1 and len(runs) == 1
    assert not await run_once(schedule), "the period has not passed"
    await asyncio.sleep(0.6)
    assert await run_once(schedule)
    assert len(runs) == 2
    row = await ScheduleRun.get(name=schedule.name)
    assert row.last_finished_at is not None and row.last_error is None


async def test_a_failing_job_records_its_error(db: str) -> None:
    async def job() -> int:
        raise RuntimeError("no luck")

    schedule = Schedule(f"test.{uuid.uuid4().hex[:10]}", 60, job)
    assert await run_once(schedule)
    row = await ScheduleRun.get(name=schedule.name)
    assert row.last_error is not None and "no luck" in row.last_error
