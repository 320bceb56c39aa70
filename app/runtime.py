"""What a process holds while it runs: database pool, event hub, and the inline worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.analytics.live import LiveMetrics
from app.automation.delivery_loop import run_deliveries
from app.consumers import CONSUMERS
from app.db import close_db, connect_kwargs, database_url, init_db
from app.events.hub import Hub
from app.events.worker import Worker
from app.jobs import run_schedules
from app.ops.sampler import run_sampler
from app.settings import Settings

log = logging.getLogger(__name__)


class Runtime:
    """Start and stop the shared resources of an api or worker process."""

    def __init__(self, settings: Settings, *, run_worker: bool) -> None:
        self.settings = settings
        self.run_worker = run_worker
        self.hub = Hub(settings.redis_url)
        self.live = LiveMetrics(None)
        self.live.reports.max_age = settings.analytics_cache_seconds
        self.worker: Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def start(self) -> None:
        url = database_url(self.settings)
        await init_db(url, pool_min=self.settings.db_pool_min, pool_max=self.settings.db_pool_max)
        await self.hub.connect()
        self.live.connect_kwargs = connect_kwargs(url)
        names = [c.name for c in CONSUMERS] if self.run_worker else []
        self._tasks.append(
            asyncio.create_task(
                run_sampler(self._stop, hub=self.hub, outbox=self.run_worker, consumers=names),
                name="metrics-sampler",
            )
        )
        if self.run_worker:
            self.worker = Worker(
                hub=self.hub,
                settings=self.settings,
                connect_kwargs=connect_kwargs(url),
                consumers=[
                    c for c in CONSUMERS if c.name not in self.settings.paused_consumer_names
                ],
            )
            self._tasks += [
                asyncio.create_task(self.worker.run(), name="outbox-worker"),
                asyncio.create_task(run_schedules(self._stop), name="schedules"),
                asyncio.create_task(
                    run_deliveries(
                        self._stop, settings=self.settings, connect_kwargs=connect_kwargs(url)
                    ),
                    name="deliveries",
                ),
            ]

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=10)
        await self.live.close()
        await self.hub.disconnect()
        await close_db()
