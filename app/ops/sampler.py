"""Gauges read from the database and the broker every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from tortoise.connection import get_connection

from app.events.consumers import consumer_lags
from app.events.hub import Hub
from app.ops import metrics

log = logging.getLogger(__name__)

_OUTBOX = """SELECT count(*) AS pending,
COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest
FROM outbox_event WHERE published_at IS NULL"""


async def sample(*, hub: Hub, outbox: bool, consumers: Sequence[str]) -> None:
    """Record pool, broker and (for processes that relay) outbox and consumer figures."""
    redis = hub.redis
    metrics.BROKER_CONNECTED.set(1 if redis is None or redis.is_connected else 0)
    conn = get_connection("default")
    pool = getattr(conn, "_pool", None)
    if pool is not None:
        size, idle = pool.get_size(), pool.get_idle_size()
        metrics.set_pool(in_use=size - idle, idle=idle, size_max=pool.get_max_size())
    metrics.sample_process()
    if outbox:
        rows = await conn.execute_query_dict(_OUTBOX)
        metrics.OUTBOX_PENDING.set(int(rows[0]["pending"]))
        metrics.OUTBOX_OLDEST.set(float(rows[0]["oldest"]))
        if consumers:
            metrics.set_consumer_lags((await consumer_lags(consumers)).items())


async def run_sampler(
    stop: asyncio.Event,
    *,
    hub: Hub,
    outbox: bool,
    consumers: Sequence[str],
    every_seconds: float = 5.0,
) -> None:
    """Sample until `stop` is set."""
    while not stop.is_set():
        try:
            await sample(hub=hub, outbox=outbox, consumers=consumers)
        except Exception as exc:
            log.debug("metrics sampling failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
