"""Live feeds for subscribers: replay from the outbox, then live, with no gap and no duplicate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from app.errors import SequenceAhead
from app.events.channels import Published, customer_channel
from app.events.hub import Hub
from app.events.models import EventStream, OutboxEvent
from app.events.orgfeed import Cursor, organization_events

REPLAY_LIMIT = 1000


COLUMNS = (
    "id",
    "organization_id",
    "customer_id",
    "sequence",
    "type",
    "payload",
    "actor",
    "created_at",
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
        .values(*COLUMNS)
    )
    return [Published.of_row(r) for r in rows]


async def last_sequence(organization_id: uuid.UUID, customer_id: uuid.UUID) -> int:
    """The newest committed sequence of a customer's stream (0 when none)."""
    row = (
        await OutboxEvent.filter(organization_id=organization_id, stream=customer_id)
        .order_by("-sequence")
        .first()
    )
    return row.sequence if row else 0


async def ensure_not_ahead(
    organization_id: uuid.UUID, customer_id: uuid.UUID, *, after: int
) -> None:
    """Refuse an `after` beyond the customer's newest committed sequence (SEQUENCE_AHEAD)."""
    stream = await EventStream.filter(id=customer_id, organization_id=organization_id).first()
    latest = stream.last_sequence if stream else 0
    if after > latest:
        raise SequenceAhead(
            f"afterSequence {after} is ahead of this customer's latest event ({latest}); "
            f"resubscribe with afterSequence {latest} or lower (or without it for live only).",
            latest=latest,
        )


async def customer_events(
    hub: Hub, organization_id: uuid.UUID, customer_id: uuid.UUID, *, after: int | None
) -> AsyncIterator[tuple[Published, bool]]:
    """(event, replayed) pairs of one customer, in sequence order, each once.

    Subscribes first, then reads history, so nothing committed in between is missed;
    a jump in live sequences, or a broker reconnect, is filled from the outbox. An `after`
    beyond the newest sequence is refused with SEQUENCE_AHEAD rather than left silent.
    """
    if after is not None:
        await ensure_not_ahead(organization_id, customer_id, after=after)
    async with hub.listen(customer_channel(organization_id, customer_id)) as live:
        last = after if after is not None else await last_sequence(organization_id, customer_id)
        if after is not None:
            async for event in _fill(organization_id, customer_id, after=last, upto=None):
                yield event, True
                last = event.sequence
        async for item in live:
            if item is None or item.sequence > last + 1:
                upto = None if item is None else item.sequence
                async for event in _fill(organization_id, customer_id, after=last, upto=upto):
                    yield event, True
                    last = event.sequence
            if item is None or item.sequence <= last or item.organization_id != organization_id:
                continue
            yield item, False
            last = item.sequence


async def _fill(
    organization_id: uuid.UUID, customer_id: uuid.UUID, *, after: int, upto: int | None
) -> AsyncIterator[Published]:
    """Committed events after `after` and before `upto` (all, when None), page by page."""
    while batch := await history(organization_id, customer_id, after=after):
        for event in batch:
            if upto is not None and event.sequence >= upto:
                return
            yield event
            after = event.sequence
        if len(batch) < REPLAY_LIMIT:
            return


async def activity_events(
    hub: Hub, organization_id: uuid.UUID, *, after: Cursor | None = None
) -> AsyncIterator[Published]:
    """The organization's feed, each event once (see `orgfeed`); with `after`, from there."""
    async for event, _ in organization_events(hub, organization_id, after=after):
        yield event
