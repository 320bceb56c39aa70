"""The relay: `in_order` as a pure function, and `relay_batch` / `prune` against real PostgreSQL.

The session database is shared: other tests leave pending events of their own tenants, and
`relay_batch` publishes those too. Assertions here look only at this test's organization.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from app.db import transaction
from app.events.channels import Published, activity_channel, customer_channel
from app.events.models import OutboxEvent
from app.events.relay import PRUNE_LOCK, in_order, prune, relay_batch
from app.kit.clock import utcnow
from app.onboarding import service
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant

# --- in_order: pure cases ---------------------------------------------------------------------

A, B, C = "stream-a", "stream-b", "stream-c"


def row(id: int, stream: str, sequence: int) -> dict[str, object]:
    return {"id": id, "stream": stream, "sequence": sequence}


def ids(rows: list[dict[str, object]]) -> list[int]:
    return [int(r["id"]) for r in rows]  # type: ignore[call-overload]


def test_in_order_keeps_an_unbroken_run_from_the_oldest_pending() -> None:
    rows = [row(3, A, 3), row(1, A, 1), row(2, A, 2)]
    assert ids(in_order(rows, {A: 1})) == [1, 2, 3]


def test_in_order_returns_rows_sorted_by_id_across_streams() -> None:
    rows = [row(5, B, 2), row(2, A, 1), row(4, B, 1), row(6, A, 2), row(7, C, 9)]
    assert ids(in_order(rows, {A: 2, B: 4, C: 7})) == [2, 4, 5, 6, 7]


def test_in_order_skips_a_stream_whose_oldest_event_another_worker_holds() -> None:
    # Worker 1 holds id 1 (A#1); this worker claimed A#2, A#3 and B#1.
    rows = [row(2, A, 2), row(3, A, 3), row(4, B, 1)]
    assert ids(in_order(rows, {A: 1, B: 4})) == [4]


def test_in_order_stops_a_stream_at_a_gap() -> None:
    # A#3 is held by another worker: A#4 and A#5 must wait for it.
    rows = [row(1, A, 1), row(2, A, 2), row(4, A, 4), row(5, A, 5)]
    assert ids(in_order(rows, {A: 1})) == [1, 2]


def test_in_order_two_workers_interleaved_claims() -> None:
    # The stream's pending events are ids 10..15 (sequences 1..6); each worker got every other one.
    first_pending = {A: 10}
    worker_1 = [row(10, A, 1), row(12, A, 3), row(14, A, 5)]
    worker_2 = [row(11, A, 2), row(13, A, 4), row(15, A, 6)]
    assert ids(in_order(worker_1, first_pending)) == [10]
    assert ids(in_order(worker_2, first_pending)) == []
    # After worker 1 published id 10, worker 2 owns the oldest pending one.
    assert ids(in_order(worker_2, {A: 11})) == [11]


def test_in_order_with_split_streams_between_two_workers() -> None:
    first_pending = {A: 1, B: 2}
    worker_1 = [row(1, A, 1), row(3, A, 2), row(4, B, 2)]
    worker_2 = [row(2, B, 1), row(5, A, 3), row(6, B, 3)]
    assert ids(in_order(worker_1, first_pending)) == [1, 3]
    assert ids(in_order(worker_2, first_pending)) == [2]


def test_in_order_nothing_known_pending_means_nothing_published() -> None:
    assert in_order([row(1, A, 1)], {}) == []
    assert in_order([], {A: 1}) == []


# --- relay_batch against PostgreSQL ------------------------------------------------------------


class Collector:
    """A publish function that records (channel, message) pairs; optionally fails."""

    def __init__(self, *, fail_on: str | None = None, fail_after: int = 0, pause: float = 0):
        self.pairs: list[tuple[str, str]] = []
        self.fail_on = fail_on
        self.fail_after = fail_after
        self.pause = pause
        self._matching = 0

    async def __call__(self, channel: str, message: str) -> None:
        if self.fail_on is not None and self.fail_on in channel:
            self._matching += 1
            if self._matching > self.fail_after:
                raise ConnectionError("broker unavailable")
        if self.pause:
            await asyncio.sleep(self.pause)
        self.pairs.append((channel, message))

    def of(self, organization_id: uuid.UUID) -> list[tuple[str, Published]]:
        """What was published for one organization, decoded, in publish order."""
        prefix = f"org:{organization_id}:"
        return [(ch, Published.decode(m)) for ch, m in self.pairs if ch.startswith(prefix)]


async def discard(channel: str, message: str) -> None:
    """A publish that drops everything (used to clear other tests' pending events)."""


async def drain(publish: Any, *, batch_size: int = 500) -> int:
    """Relay until nothing is left; return how many events were published."""
    total = 0
    while count := await relay_batch(publish, batch_size=batch_size):
        total += count
    return total


async def pending_of(organization_id: uuid.UUID) -> list[OutboxEvent]:
    return (
        await OutboxEvent.filter(organization_id=organization_id, published_at__isnull=True)
        .order_by("id")
        .all()
    )


async def all_of(organization_id: uuid.UUID) -> list[OutboxEvent]:
    return await OutboxEvent.filter(organization_id=organization_id).order_by("id").all()


async def some_history(tenant: Tenant, customers: int = 2) -> list[uuid.UUID]:
    """Sign customers up and move a few tasks, interleaving the customers' transactions."""
    ids_ = [(await tenant.customer()).id for _ in range(customers)]
    for cid in ids_:
        await tenant.act(cid, "verify_email", TaskAction.START)
    for cid in ids_:
        await tenant.act(cid, "verify_email", TaskAction.COMPLETE)
    for cid in ids_:
        await tenant.act(cid, "complete_profile", TaskAction.COMPLETE)
    return ids_


def assert_published_once_in_order(
    published: list[tuple[str, Published]], rows: list[OutboxEvent]
) -> None:
    """Each row went once to its customer channel and once to the activity channel, in order."""
    assert rows
    org = rows[0].organization_id  # type: ignore[attr-defined]
    by_channel: dict[str, list[Published]] = defaultdict(list)
    for channel, event in published:
        by_channel[channel].append(event)
    counts = Counter((ch, e.id) for ch, e in published)
    assert set(counts.values()) == {1}, "an event was published twice to a channel"
    for r in rows:
        assert counts[(customer_channel(org, r.customer_id), r.id)] == 1  # type: ignore[arg-type]
        assert counts[(activity_channel(org), r.id)] == 1
    assert len(published) == 2 * len(rows)
    for channel, events in by_channel.items():
        if ":customer:" in channel:
            seqs = [e.sequence for e in events]
            assert seqs == sorted(seqs), f"{channel} out of order: {seqs}"
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # And per customer on the shared activity channel too.
    on_activity: dict[uuid.UUID | None, list[int]] = defaultdict(list)
    for event in by_channel[activity_channel(org)]:
        on_activity[event.customer_id].append(event.sequence)
    for seqs in on_activity.values():
        assert seqs == sorted(seqs)


async def test_relay_publishes_each_pending_event_once_in_sequence_order(tenant: Tenant) -> None:
    await drain(discard)
    customers = await some_history(tenant, customers=3)
    rows = await all_of(tenant.id)
    assert all(r.published_at is None for r in rows)

    collector = Collector()
    started = utcnow()
    total = await drain(collector, batch_size=4)  # several batches
    assert total >= len(rows)

    published = collector.of(tenant.id)
    assert_published_once_in_order(published, rows)
    # The message is the row as committed.
    by_id = {r.id: r for r in rows}
    for channel, event in published:
        source = by_id[event.id]
        assert event.organization_id == tenant.id
        assert event.customer_id == source.customer_id
        assert event.sequence == source.sequence
        assert event.type == source.type
        assert event.payload == source.payload
        assert event.actor == source.actor
        assert event.created_at == source.created_at
        if ":customer:" in channel:
            assert channel == f"org:{tenant.id}:customer:{source.customer_id}"
    assert {e.customer_id for _, e in published} == set(customers)

    marked = await all_of(tenant.id)
    assert all(r.published_at is not None and r.published_at >= started for r in marked)
    again = Collector()
    await drain(again)
    assert again.of(tenant.id) == []


async def test_a_failing_publish_leaves_the_batch_pending(tenant: Tenant) -> None:
    await drain(discard)
    await some_history(tenant, customers=2)
    rows = await all_of(tenant.id)

    failing = Collector(fail_on=str(tenant.id), fail_after=3)  # fails mid-batch
    with pytest.raises(ConnectionError):
        await relay_batch(failing, batch_size=1000)
    assert len(failing.of(tenant.id)) == 3  # some went out before the failure...
    assert [r.id for r in await pending_of(tenant.id)] == [r.id for r in rows]  # ...none marked

    collector = Collector()
    await drain(collector)
    assert_published_once_in_order(collector.of(tenant.id), rows)
    assert await pending_of(tenant.id) == []


async def test_events_of_an_open_or_rolled_back_transaction_are_not_published(
    tenant: Tenant,
) -> None:
    customer = await tenant.customer()
    await drain(discard)
    recorded, release = asyncio.Event(), asyncio.Event()

    async def open_transaction() -> None:
        async with transaction():
            await service.update_task(
                tenant.csm,
                customer_id=str(customer.id),
                task_key="verify_email",
                action=TaskAction.START,
            )
            recorded.set()
            await release.wait()
            raise RuntimeError("roll back")

    holder = asyncio.create_task(open_transaction())
    await asyncio.wait_for(recorded.wait(), 5)
    collector = Collector()
    await drain(collector)  # the open transaction's events are invisible to the relay
    release.set()
    with pytest.raises(RuntimeError, match="roll back"):
        await holder
    await drain(collector)
    assert collector.of(tenant.id) == []
    assert [r.type for r in await all_of(tenant.id)] == ["customer.created", "workflow.started"]


async def test_two_concurrent_relays_never_publish_an_event_twice(tenant: Tenant) -> None:
    await drain(discard)
    customers = [(await tenant.customer()).id for _ in range(4)]
    for cid in customers:
        await tenant.act(cid, "verify_email", TaskAction.START)

    async def progress(cid: uuid.UUID, value: int) -> None:
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=value)

    await asyncio.gather(*(progress(cid, v) for v in range(5, 95, 10) for cid in customers))
    rows = await all_of(tenant.id)
    assert len(rows) == 4 * (2 + 1 + 9)

    shared: list[tuple[str, str]] = []
    per_worker = [0, 0]

    async def relay(worker: int) -> None:
        publish = Collector(pause=0.001)
        publish.pairs = shared  # one ordered record of what reached the broker
        deadline = asyncio.get_running_loop().time() + 30
        while await pending_of(tenant.id):
            assert asyncio.get_running_loop().time() < deadline, "relays made no progress"
            per_worker[worker] += await relay_batch(publish, batch_size=5)
            await asyncio.sleep(0)

    await asyncio.gather(relay(0), relay(1))
    collected = Collector()
    collected.pairs = shared
    assert_published_once_in_order(collected.of(tenant.id), rows)
    assert per_worker[0] > 0 and per_worker[1] > 0, per_worker  # both took part


async def test_prune_deletes_only_published_events_older_than_the_retention(
    tenant: Tenant, db: str
) -> None:
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    await drain(discard)
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)  # stays pending
    rows = await all_of(tenant.id)
    published = [r for r in rows if r.published_at is not None]
    pending = [r for r in rows if r.published_at is None]
    assert len(published) == 3 and pending
    old, recent = published[:2], published[2:]
    conn = await asyncpg.connect(db)
    try:
        await conn.execute(
            "UPDATE outbox_event SET published_at = $1 WHERE id = ANY($2::bigint[])",
            utcnow() - timedelta(days=4),
            [r.id for r in old],
        )
        await conn.execute(  # old but never published: must stay
            "UPDATE outbox_event SET created_at = $1 WHERE id = ANY($2::bigint[])",
            utcnow() - timedelta(days=30),
            [r.id for r in pending],
        )

        # While another worker holds the prune lock, this one does nothing.
        await conn.execute("SELECT pg_advisory_lock($1)", PRUNE_LOCK)
        assert await prune(retention=timedelta(hours=72)) == 0
        await conn.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK)
    finally:
        await conn.close()
    assert len(await all_of(tenant.id)) == len(rows)

    assert await prune(retention=timedelta(hours=72), limit=1) == 1
    assert await prune(retention=timedelta(hours=72)) >= 1
    left = {r.id for r in await all_of(tenant.id)}
    assert left == {r.id for r in recent + pending}
    assert await prune(retention=timedelta(hours=72)) == 0


def test_published_round_trips_through_its_wire_form() -> None:
    event = Published(
        id=7,
        organization_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        sequence=3,
        type="task.completed",
        payload={"task": "x", "workflow": {"points": 10}},
        actor="csm:a@b.c",
        created_at=utcnow(),
    )
    assert Published.decode(event.encode()) == event
    assert json.loads(event.encode())["seq"] == 3
    assert event.channels() == [
        customer_channel(event.organization_id, event.customer_id),  # type: ignore[arg-type]
        activity_channel(event.organization_id),
    ]
    org_event = dataclasses.replace(event, customer_id=None)
    assert Published.decode(org_event.encode()) == org_event
    assert org_event.channels() == [activity_channel(event.organization_id)]
