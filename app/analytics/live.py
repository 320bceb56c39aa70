"""Live dashboard metrics: one computation per (organization, filter) in each process,
shared by all its subscribers, redone when the rollups of that organization change (the
consumer's NOTIFY, sent on commit) and at most once per `interval` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.analytics.cache import ReportCache
from app.analytics.maintain import NOTIFY_CHANNEL
from app.analytics.query import Scope
from app.analytics.report import Figures, Funnel
from app.analytics.service import Report
from app.kit.clock import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metrics:
    """What a dashboard shows live: the overview and the funnel counts."""

    generated_at: datetime
    overview: Figures
    funnel: Funnel

    def same_figures(self, other: Metrics | None) -> bool:
        return other is not None and (self.overview, self.funnel) == (other.overview, other.funnel)


async def compute(scope: Scope) -> Metrics:
    """Overview and funnel of a scope, from the rollups."""
    now = utcnow()
    run = Report(scope, now=now)
    return Metrics(generated_at=now, overview=await run.overview(), funnel=await run.funnel())


class _Feed:
    def __init__(self, scope: Scope, work: Callable[[Scope], Awaitable[Metrics]], interval: float):
        self.scope = scope
        self.work = work
        self.interval = interval
        self.value: Metrics | None = None
        self.version = 0
        self.subscribers = 0
        self.computations = 0
        self.dirty = asyncio.Event()
        self.dirty.set()
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run(), name=f"dashboard-{scope.organization_id}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            started = loop.time()
            try:
                value = await self.work(self.scope)
                self.computations += 1
            except Exception:
                log.exception("dashboard metrics of %s failed", self.scope.organization_id)
                value = None
            if value is not None and not value.same_figures(self.value):
                async with self.changed:
                    self.value, self.version = value, self.version + 1
                    self.changed.notify_all()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def updates(self) -> AsyncIterator[Metrics]:
        seen = 0

        def newer() -> bool:
            return self.version > seen

        while True:
            async with self.changed:
                await self.changed.wait_for(newer)
                seen, value = self.version, self.value
            assert value is not None
            yield value


class LiveMetrics:
    """The dashboard feeds of one process and the LISTEN connection that wakes them."""

    def __init__(
        self,
        connect_kwargs: dict[str, Any] | None,
        *,
        interval: float = 1.0,
        work: Callable[[Scope], Awaitable[Metrics]] = compute,
        poll_seconds: float = 30.0,
    ) -> None:
        self.connect_kwargs = connect_kwargs
        self.interval = interval
        self.work = work
        self.poll_seconds = poll_seconds
        self.feeds: dict[Scope, _Feed] = {}
        self.reports = ReportCache()
        self._listener: asyncio.Task[None] | None = None

    def _listen_once(self) -> None:
        if self._listener is None and self.connect_kwargs is not None:
            self._listener = asyncio.create_task(self._listen(), name="dashboard-listen")

    def report(self, scope: Scope, make: Callable[[], Report]) -> Report:
        """The `analytics` report of a scope, kept while its organization's rollups stand
        still (see `cache`); starts listening for their changes."""
        self._listen_once()
        return self.reports.report(scope, make)

    def changed(self, organization_id: uuid.UUID) -> None:
        """The rollups of an organization changed: recompute its feeds (throttled)."""
        self.reports.changed(organization_id)
        for scope, feed in self.feeds.items():
            if scope.organization_id == organization_id:
                feed.dirty.set()

    async def subscribe(self, scope: Scope) -> AsyncIterator[Metrics]:
        """The current metrics of `scope` at once, then each change."""
        self._listen_once()
        feed = self.feeds.get(scope)
        if feed is None:
            feed = self.feeds[scope] = _Feed(scope, self.work, self.interval)
        feed.subscribers += 1
        try:
            async for value in feed.updates():
                yield value
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0 and self.feeds.get(scope) is feed:
                del self.feeds[scope]
                feed.task.cancel()

    async def close(self) -> None:
        tasks = [f.task for f in self.feeds.values()]
        if self._listener is not None:
            tasks.append(self._listener)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.feeds.clear()

    async def _listen(self) -> None:
        """LISTEN for rollup changes; while the connection is down, poll every feed."""
        assert self.connect_kwargs is not None

        def on_notify(_: Any, __: int, ___: str, payload: str) -> None:
            with contextlib.suppress(ValueError):
                self.changed(uuid.UUID(payload))

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(**self.connect_kwargs)
                await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                self.reports.connected(True)
                for feed in self.feeds.values():
                    feed.dirty.set()  # changes may have been missed while disconnected
                while not conn.is_closed():
                    await asyncio.sleep(self.poll_seconds)
                    await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dashboard LISTEN lost (%s); polling until it is back", exc)
            finally:
                self.reports.connected(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            for feed in self.feeds.values():
                feed.dirty.set()
            await asyncio.sleep(1)
