"""Milestones on the event spine: a consumer evaluates the customers that events touch
(never inside the request that caused them), and an hourly job evaluates the criteria that
time alone can meet (days since signup, a health level held)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from tortoise.connection import get_connection

from app.db import transaction
from app.events.channels import Published
from app.events.consumers import Consumer
from app.health.spine import customers_of
from app.kit.clock import utcnow
from app.milestones import service
from app.usage.service import INGESTED

NAME = "milestones"
TYPES = (
    INGESTED,
    "task.completed",
    "stage.completed",
    "workflow.completed",
    "points.awarded",
    "health.level_changed",
)
SWEEP_PAGE = 500

_TIMED_ORGS = """SELECT DISTINCT ON (organization_id) organization_id, definition::text AS d
FROM milestone_set ORDER BY organization_id, version DESC"""
_PAGE = """SELECT id FROM customer WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"""


async def handle(events: Sequence[Published]) -> None:
    """Evaluate each customer the events touch, once per batch."""
    touched: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for e in events:
        touched[e.organization_id].update(customers_of(e))
    now = utcnow()
    for org, customers in touched.items():
        if customers:
            await service.evaluate_customers(org, sorted(customers), now=now)


async def sweep_timed() -> int:
    """Evaluate every customer of the organizations whose set has time-based criteria, a page
    per transaction; returns the achievements recorded."""
    orgs = [
        r["organization_id"]
        for r in await get_connection("default").execute_query_dict(_TIMED_ORGS)
        if '"days_since_signup"' in r["d"] or '"health_level_held"' in r["d"]
    ]
    recorded = 0
    for org in orgs:
        after = uuid.UUID(int=0)
        while True:
            async with transaction():
                rows = await get_connection("default").execute_query_dict(
                    _PAGE, [org, after, SWEEP_PAGE]
                )
                ids = [r["id"] for r in rows]
                if ids:
                    recorded += len(await service.evaluate_customers(org, ids, now=utcnow()))
            if len(ids) < SWEEP_PAGE:
                break
            after = ids[-1]
    return recorded


CONSUMER = Consumer(NAME, handle, types=TYPES, start="now")
