"""The worker loop: wake on NOTIFY (or poll), relay the outbox, prune old events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from app.events.consumers import Consumer, ensure_checkpoints, run_consumer
from app.events.hub import Hub
from app.events.outbox import NOTIFY_CHANNEL
from app.events.relay import prune, relay_batch
from app.settings import Settings

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 300.0


class Worker:
    """Drains the outbox into the hub and its consumers until stopped; safe to run in
    several processes."""

    def __init__(
        self,
        *,
        hub: Hub,
        settings: Settings,
        connect_kwargs: dict[str, Any],
        consumers: Sequence[Consumer] = (),
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.connect_kwargs = connect_kwargs
        self.consumers = list(consumers)
        self.wake = asyncio.Event()
        self.consumer_wakes = [asyncio.Event() for _ in self.consumers]
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Relay until `stop()`; errors back off and retry, nothing is dropped."""
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        consuming = asyncio.create_task(self._consume(), name="outbox-consumers")
        last_prune, failures = 0.0, 0
        try:
            while not self.stopping.is_set():
                try:
                    count = await relay_batch(
                        self.hub.publish, batch_size=self.settings.outbox_batch_size
                    )
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = min(5.0, 0.1 * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)
                    log.warning("relay failed (%s); retrying in %.2fs", exc, delay)
                    await self._sleep(delay)
                    continue
                if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                    last_prune = time.monotonic()
                    await self._prune()
                if count >= self.settings.outbox_batch_size:
                    continue
                self.wake.clear()
                await self._sleep(self.settings.outbox_poll_seconds, wake=True)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            with contextlib.suppress(asyncio.CancelledError):
                await consuming

    async def _consume(self) -> None:
        """Run every consumer in its own task until `stop()`."""
        if not self.consumers:
            return
        while not self.stopping.is_set():
            try:
                await ensure_checkpoints(self.consumers)
                break
            except Exception as exc:
                log.warning("consumer checkpoints not ready (%s); retrying", exc)
                await self._sleep(2.0)
        poll = self.settings.outbox_poll_seconds
        await asyncio.gather(
            *(
                run_consumer(c, stop=self.stopping, wake=w, poll_seconds=poll)
                for c, w in zip(self.consumers, self.consumer_wakes, strict=True)
            )
        )

    def _notify(self) -> None:
        self.wake.set()
        for wake in self.consumer_wakes:
            wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self._notify()

    async def _sleep(self, seconds: float, *, wake: bool = False) -> None:
        waiters = [asyncio.ensure_future(self.stopping.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self.wake.wait()))
        _, pending = await asyncio.wait(
            waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def _prune(self) -> None:
        try:
            removed = await prune(
                retention=timedelta(hours=self.settings.outbox_retention_hours),
                consumers=[c.name for c in self.consumers],
            )
            if removed:
                log.info("pruned %d published events", removed)
        except Exception:
            log.exception("pruning the outbox failed")

    async def _listen(self) -> None:
        await listen(NOTIFY_CHANNEL, self._notify, connect_kwargs=self.connect_kwargs)


async def listen(
    channel: str, notify: Callable[[], None], *, connect_kwargs: dict[str, Any]
) -> None:
    """LISTEN on `channel`, calling `notify` for each NOTIFY (and once per connection);
    on any trouble reconnect, while the caller's polling covers the gap."""
    while True:
        conn = None
        try:
            conn = await asyncpg.connect(**connect_kwargs)
            await conn.add_listener(channel, lambda *_: notify())
            notify()
            while not conn.is_closed():
                await asyncio.sleep(5)
                await conn.execute("SELECT 1")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN %s connection lost (%s); polling until it is back", channel, exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
        await asyncio.sleep(1)
