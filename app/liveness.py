"""What liveness and readiness report: database, broker, relay lag and migrations."""

from __future__ import annotations

import re
from importlib import resources

from tortoise.connection import get_connection

_LAG = """SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag
FROM outbox_event WHERE published_at IS NULL"""
_MIGRATION = re.compile(r"^(\d{4}_\w+)\.py$")


async def relay_lag_seconds() -> float:
    """Age of the oldest committed event not yet published (0 when none waits)."""
    rows = await get_connection("default").execute_query_dict(_LAG)
    return round(float(rows[0]["lag"]), 3)


def shipped_migrations() -> set[str]:
    """Names of the migrations shipped with this release."""
    names = (_MIGRATION.match(f.name) for f in resources.files("migrations").iterdir())
    return {m.group(1) for m in names if m}


async def pending_migrations() -> list[str]:
    """Shipped migrations the database has not applied, in order."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT name FROM tortoise_migrations WHERE app = 'liftoff'"
    )
    return sorted(shipped_migrations() - {r["name"] for r in rows})
