"""Live feeds for subscribers: replay from the outbox, then live, with no gap and no duplicate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from app.events.channels import Published, activity_channel, customer_channel
from app.events.hub import Hub
from app.events.models import OutboxEvent

REPLAY_LIMIT = 1000


def _published(row: OutboxEvent) -> Published:
    return Published(
        id=row.id,
        organization_id=row.organization_id,  # type: ignore[attr-defined]
        customer_id=row.customer_id,
        sequence=row.sequence,
        type=row.type,
        payload=row.payload,
        actor=row.actor,
        created_at=row.created_at,
    )


async def history(
    organization_id: uuid.UUID, customer_id: uuid.UUID, *, after: int, limit: int = REPLAY_LIMIT
) -> list[Published]:
    """Committed events of a customer with a sequence above `after`, oldest first."""
    rows = (
        await OutboxEvent.filter(
            organization_id=organization_id, stream=customer_id, sequence__gt=after
        )
        .order_by("sequence")
        .limit(limit)
    )
    return [_published(r) for r in rows]


async def last_sequence(organization_id: uuid.UUID, customer_id: uuid.UUID) -> int:
    """The newest committed sequence of a customer's stream (0 when none)."""
    row = (
        await OutboxEvent.filter(organization_id=organization_id, stream=customer_id)
        .order_by("-sequence")
        .first()
    )
    return row.sequence if row else 0


async def customer_events(
    hub: Hub, organization_id: uuid.UUID, customer_id: uuid.UUID, *, after: int | None
) -> AsyncIterator[tuple[Published, bool]]:
    """(event, replayed) pairs of one customer, in sequence order, each once.

    Subscribes first, then reads history, so nothing committed in between is missed;
    a jump in live sequences, or a broker reconnect, is filled from the outbox.
    """
    async with hub.listen(customer_channel(organization_id, customer_id)) as live:
        last = after if after is not None else await last_sequence(organization_id, customer_id)
        if after is not None:
            while batch := await history(organization_id, customer_id, after=last):
                for event in batch:
                    yield event, True
                    last = event.sequence
        async for item in live:
            if item is None or item.sequence > last + 1:
                for event in await history(organization_id, customer_id, after=last):
                    if item is not None and event.sequence >= item.sequence:
                        break
                    yield event, True
                    last = event.sequence
            if item is None or item.sequence <= last or item.organization_id != organization_id:
                continue
            yield item, False
            last = item.sequence


async def activity_events(hub: Hub, organization_id: uuid.UUID) -> AsyncIterator[Published]:
    """The organization's live feed, each event once."""
    seen: dict[uuid.UUID | None, int] = {}
    async with hub.listen(activity_channel(organization_id)) as live:
        async for item in live:
            if item is None or item.organization_id != organization_id:
                continue
            if item.customer_id is not None and item.sequence <= seen.get(item.customer_id, 0):
                continue
            seen[item.customer_id] = item.sequence
            if len(seen) > 100_000:
                seen.clear()
            yield item
