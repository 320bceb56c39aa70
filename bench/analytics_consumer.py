"""The analytics consumer alone in a process, paused and resumed by signals (bench.analytics).

    python -m bench.analytics_consumer        # DATABASE_URL and LIFTOFF_* from the environment

Runs exactly what a worker runs for the `analytics-rollups` consumer (the entry of
`app.consumers.CONSUMERS`, `run_consumer` with its batch size and linger, woken by the
outbox's NOTIFY), and nothing else, so its CPU and its PostgreSQL backends' CPU are the
rollup upkeep's alone. It starts paused. SIGUSR2 resumes it; SIGUSR1 pauses it after the
batch under way (a paused consumer holds no transaction, so it holds back nobody's horizon).
Each change is acknowledged on stdout as `state <n> running|paused`, n counting changes.
SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from app.analytics.consumer import NAME


async def main() -> None:
    from app.consumers import CONSUMERS
    from app.db import close_db, connect_kwargs, database_url, init_db
    from app.events.consumers import ensure_checkpoints, run_consumer
    from app.events.outbox import NOTIFY_CHANNEL
    from app.events.worker import listen
    from app.settings import get_settings

    settings = get_settings()
    [consumer] = [c for c in CONSUMERS if c.name == NAME]
    url = database_url(settings)
    await init_db(url, pool_min=settings.db_pool_min, pool_max=settings.db_pool_max)
    await ensure_checkpoints([consumer])
    loop = asyncio.get_running_loop()
    stopping, running, wake = asyncio.Event(), asyncio.Event(), asyncio.Event()
    round_stop = asyncio.Event()

    def pause() -> None:
        running.clear()
        round_stop.set()

    def resume() -> None:
        running.set()

    def stop() -> None:
        stopping.set()
        pause()
        running.set()

    loop.add_signal_handler(signal.SIGUSR1, pause)
    loop.add_signal_handler(signal.SIGUSR2, resume)
    loop.add_signal_handler(signal.SIGTERM, stop)
    listener = asyncio.create_task(
        listen(NOTIFY_CHANNEL, wake.set, connect_kwargs=connect_kwargs(url))
    )
    changes = 0
    import app

    print(f"state {changes} paused (app from {Path(app.__file__).parent})", flush=True)
    try:
        while not stopping.is_set():
            await running.wait()
            if stopping.is_set():
                break
            round_stop.clear()
            changes += 1
            print(f"state {changes} running", flush=True)
            await run_consumer(
                consumer, stop=round_stop, wake=wake, poll_seconds=settings.outbox_poll_seconds
            )
            changes += 1
            print(f"state {changes} paused", flush=True)
    finally:
        listener.cancel()
        await close_db()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    sys.exit(0)
