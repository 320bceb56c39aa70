"""Helpers of the milestone tests: ingesting usage, installing sets, running consumers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from app.db import transaction
from app.events.consumers import Consumer, consume_batch
from app.kit.clock import utcnow
from app.milestones import service
from app.usage.rules import EventIn
from app.usage.service import ingest_events
from tests.support.factories import Tenant


def events(
    customer_id: uuid.UUID,
    name: str,
    count: int,
    *,
    at: datetime | None = None,
    properties: dict[str, Any] | None = None,
) -> list[EventIn]:
    when = at or utcnow() - timedelta(minutes=1)
    return [
        EventIn(
            name=name,
            occurred_at=when,
            idempotency_key=f"t-{uuid.uuid4().hex}",
            customer_id=str(customer_id),
            properties=properties,
        )
        for _ in range(count)
    ]


async def ingest(tenant: Tenant, batch: list[EventIn]) -> None:
    async with transaction():
        await ingest_events(tenant.admin, events=batch, actor="test", retention_days=400)


async def install(tenant: Tenant, *milestones: dict[str, Any]) -> None:
    async with transaction():
        await service.install_set(
            tenant.admin,
            definition={"name": "Test set", "milestones": list(milestones)},
            created_by="test",
        )


async def drain(*consumers: Consumer) -> None:
    """Handle everything pending for `consumers`, until none has anything left."""
    while True:
        handled = 0
        for consumer in consumers:
            handled += await consume_batch(consumer)
        if not handled:
            return
