"""The delivery loop every worker runs: wake on NOTIFY (or when the next retry is due), send
what is due, carry final outcomes back to the automation runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import httpx

from app.automation.engine import deliveries_finished
from app.deliveries.sender import deliver_due, next_due_in
from app.deliveries.service import NOTIFY_CHANNEL
from app.events.worker import listen
from app.kit.clock import utcnow
from app.settings import Settings

log = logging.getLogger(__name__)


async def run_deliveries(
    stop: asyncio.Event, *, settings: Settings, connect_kwargs: dict[str, Any]
) -> None:
    """Send due emails and webhooks until `stop` is set; safe in any number of workers."""
    wake = asyncio.Event()
    listener = asyncio.create_task(
        listen(NOTIFY_CHANNEL, wake.set, connect_kwargs=connect_kwargs), name="delivery-listen"
    )
    failures = 0
    try:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            while not stop.is_set():
                wake.clear()
                try:
                    sent = await deliver_due(settings, client, on_final=deliveries_finished)
                    failures = 0
                    if sent:
                        continue
                    due = await next_due_in(now=utcnow())
                except Exception as exc:
                    failures += 1
                    log.warning("delivery loop failed (%s); retrying", exc)
                    due = min(5.0, 0.1 * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)
                wait = (
                    settings.delivery_poll_seconds
                    if due is None
                    else min(due, settings.delivery_poll_seconds)
                )
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
                _, pending = await asyncio.wait(
                    waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
