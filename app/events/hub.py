"""The broadcast hub: broadcaster's fan-out over our resilient Redis backend (or memory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast, Event
from broadcaster._base import Unsubscribed

from app.events.channels import Published
from app.events.redis_backend import ResilientRedisBackend
from app.kit.clock import utcnow
from app.ops import metrics

log = logging.getLogger(__name__)

RESYNC = "__resync__"
"""Put in every local subscriber queue after Redis comes back: check the outbox for gaps."""


class Hub:
    """Publish to and listen on tenant channels."""

    def __init__(self, redis_url: str | None) -> None:
        self._locks = [asyncio.Lock() for _ in range(64)]
        self.redis: ResilientRedisBackend | None = None
        if redis_url:
            self.redis = ResilientRedisBackend(redis_url)
            self.redis.on_reconnect.append(self._resync)
            self.broadcast = Broadcast(backend=self.redis)
        else:
            self.broadcast = Broadcast("memory://")

    async def connect(self) -> None:
        await self.broadcast.connect()

    async def disconnect(self) -> None:
        await self.broadcast.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        """Publish one encoded event; raises when the broker cannot take it."""
        await self.broadcast.publish(channel, message)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[Published | None]]:
        """Events of `channel` as they arrive; None means "you may have missed some".

        broadcaster checks for local subscribers, awaits the broker, then assigns the
        channel's queue set: two listens of one channel starting together would lose
        one queue, so entering and leaving are serialized per channel (striped locks).
        """
        lock = self._locks[hash(channel) % len(self._locks)]
        stack = contextlib.AsyncExitStack()
        async with lock:
            subscriber = await stack.enter_async_context(self.broadcast.subscribe(channel))

        kind = "activity" if channel.endswith(":activity") else "customer"
        delivered = metrics.DELIVERIES.labels(kind)
        latency = metrics.DELIVERY_SECONDS.labels(kind)

        async def events() -> AsyncIterator[Published | None]:
            while True:
                try:
                    event = await subscriber.get()
                except Unsubscribed:
                    return
                if event.message == RESYNC:
                    yield None
                    continue
                published = Published.decode(event.message)
                delivered.inc()
                latency.observe((utcnow() - published.created_at).total_seconds())
                yield published

        try:
            yield events()
        finally:
            async with lock:
                await stack.aclose()

    async def _resync(self) -> None:
        # broadcaster keeps its local queues per channel; nudging them is the only way to
        # tell live subscribers that messages may have been lost while Redis was away.
        subscribers: dict[str, set[object]] = getattr(self.broadcast, "_subscribers", {})
        for channel, queues in list(subscribers.items()):
            for queue in list(queues):
                queue.put_nowait(Event(channel, RESYNC))  # type: ignore[attr-defined]
        log.info("asked %d channel(s) to resync after reconnect", len(subscribers))
