"""The organization-wide feed, resumable with a cursor, each event once.

Events are read from the outbox in (transaction id, event id) order, and only those of
transactions below the horizon (the oldest write transaction of the database still running,
or the next transaction id): every transaction below it has ended, so nothing can commit
behind a position once it is passed (the rule of the outbox consumers). A position is
therefore a complete account of what came before it, and a cursor `tx.id` resumes a feed
with exactly the events after it.

One reader (`Tail`) per organization and process reads the outbox when the relay announces
an event on the organization's channel (or a reconnect asks for a resync) and hands the
events to every local subscriber: the cost of a wake-up is one query however many
subscribe, and a subscription costs no query to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tortoise.connection import get_connection

from app.errors import ValidationFailed
from app.events.channels import Published, activity_channel
from app.events.consumers import HORIZON
from app.events.hub import Hub

log = logging.getLogger(__name__)

Cursor = tuple[int, int]
"""(transaction id, event id) of the last event a subscriber received."""
PAGE = 1000
POLL_SECONDS = 5.0
"""A reader also looks without being woken this often (an announcement lost meanwhile)."""

_HORIZON = HORIZON.format(own="")
# The horizon and the read are two statements on purpose. The horizon drops the transactions
# that pg_stat_activity no longer shows as running, and pg_stat_activity is read after the
# statement's snapshot was taken: a transaction that ended in between is below the horizon
# but invisible to that snapshot. A later statement's snapshot sees it.
_READ = """SELECT id, organization_id, customer_id, sequence, type, payload, actor, created_at, tx
FROM outbox_event
WHERE organization_id = $1 AND (tx, id) > ($2, $3) AND tx < $4
ORDER BY tx, id LIMIT $5"""


def encode_cursor(event: Published) -> str:
    return f"{event.tx}.{event.id}"


def decode_cursor(text: str) -> Cursor:
    """The position of a cursor a feed handed out, or VALIDATION_FAILED."""
    tx, _, eid = text.partition(".")
    if not (tx.isdigit() and eid.isdigit()) or len(text) > 40:
        raise ValidationFailed(
            "`after` must be the `cursor` of an event this feed sent.", field="after"
        )
    return int(tx), int(eid)


async def read_after(
    organization_id: uuid.UUID, position: Cursor, *, limit: int = PAGE
) -> tuple[list[Published], int]:
    """Events of the organization after `position`, below the horizon, and the horizon."""
    conn = get_connection("default")
    horizon = int((await conn.execute_query_dict(_HORIZON))[0]["horizon"])
    if limit == 0:
        return [], horizon
    rows = await conn.execute_query_dict(
        _READ, [organization_id, position[0], position[1], horizon, limit]
    )
    return [Published.of_row(r) for r in rows], horizon


@dataclass(eq=False)
class Tail:
    """The reader of one organization's feed in this process, shared by its subscribers."""

    hub: Hub
    organization_id: uuid.UUID
    position: Cursor = (0, 0)
    queues: set[asyncio.Queue[Published]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with self.hub.listen(activity_channel(self.organization_id)) as live:
            pump = asyncio.create_task(self._pump(live))
            try:
                _, horizon = await read_after(self.organization_id, (2**62, 0), limit=0)
                self.position = (horizon - 1, 2**62)
                self.ready.set()
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
                    self.wake.clear()
                    await self._read_all()
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _pump(self, live: AsyncIterator[Published | None]) -> None:
        async for _ in live:
            self.wake.set()

    async def _read_all(self) -> None:
        while True:
            try:
                events, _ = await read_after(self.organization_id, self.position)
            except Exception as exc:
                log.warning("activity feed read failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                self.wake.set()
                return
            for event in events:
                for queue in self.queues:
                    queue.put_nowait(event)
                self.position = (event.tx, event.id)
            if len(events) < PAGE:
                return


class Tails:
    """The readers of this process, one per organization with subscribers."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.tails: dict[uuid.UUID, Tail] = {}

    async def join(self, organization_id: uuid.UUID) -> tuple[Tail, asyncio.Queue[Published]]:
        tail = self.tails.get(organization_id)
        if tail is None:
            tail = self.tails[organization_id] = Tail(self.hub, organization_id)
            tail.task = asyncio.create_task(tail.run(), name=f"feed:{organization_id}")
        queue: asyncio.Queue[Published] = asyncio.Queue()
        tail.queues.add(queue)
        try:
            await _ready(tail)
        except BaseException:
            self.leave(tail, queue)
            raise
        return tail, queue

    def leave(self, tail: Tail, queue: asyncio.Queue[Published]) -> None:
        tail.queues.discard(queue)
        if not tail.queues and self.tails.get(tail.organization_id) is tail:
            del self.tails[tail.organization_id]
            if tail.task is not None:
                tail.task.cancel()


async def _ready(tail: Tail) -> None:
    """Wait until `tail` knows its starting position (or failed to start)."""
    assert tail.task is not None
    waiter = asyncio.ensure_future(tail.ready.wait())
    try:
        await asyncio.wait({waiter, tail.task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not tail.ready.is_set():
        tail.task.result()  # raises what stopped it
        raise RuntimeError("the activity feed stopped")


def tails_of(hub: Hub) -> Tails:
    """The readers of `hub`'s process."""
    found: Tails | None = getattr(hub, "tails", None)
    if found is None:
        found = Tails(hub)
        hub.tails = found  # type: ignore[attr-defined]
    return found


async def organization_events(
    hub: Hub, organization_id: uuid.UUID, *, after: Cursor | None = None
) -> AsyncIterator[tuple[Published, bool]]:
    """(event, replayed) of the organization, each once, in feed order: with `after`, the
    events after that cursor first (replayed), then live ones."""
    tails = tails_of(hub)
    tail, queue = await tails.join(organization_id)
    try:
        start = tail.position  # everything after it arrives in `queue`
        last = after
        if after is not None and after < start:
            async for event in _between(organization_id, after, start):
                yield event, True
        while True:
            event = await queue.get()
            if last is not None and (event.tx, event.id) <= last:
                continue
            yield event, False
    finally:
        tails.leave(tail, queue)


async def _between(
    organization_id: uuid.UUID, after: Cursor, upto: Cursor
) -> AsyncIterator[Published]:
    """Events after `after` up to `upto` (included), page by page."""
    position = after
    while True:
        events, _ = await read_after(organization_id, position)
        for event in events:
            if (event.tx, event.id) > upto:
                return
            yield event
            position = (event.tx, event.id)
        if len(events) < PAGE:
            return
