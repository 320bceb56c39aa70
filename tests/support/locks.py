"""Waiting on real PostgreSQL row locks in tests: until another backend waits for one that a
connection's transaction holds."""

from __future__ import annotations

import asyncio

import asyncpg

_BLOCKED_BY_ME = """SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"""


async def blocked_by(conn: asyncpg.Connection, *, seconds: float = 20.0) -> None:
    """Wait until some other backend waits for a lock `conn`'s transaction holds."""
    for _ in range(int(seconds / 0.02)):
        if await conn.fetchval(_BLOCKED_BY_ME):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nothing came to wait for the held lock")
