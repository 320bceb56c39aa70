"""Outbox consumers against real PostgreSQL: exactly once, late commits, failures, pruning.

The session database is shared with other tests, so each consumer here starts "now" under a
unique name and its handler looks only at this test's organization.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import asyncpg
from tortoise.connection import get_connection

from app.db import transaction
from app.events.channels import Published
from app.events.consumers import (
    MAX_ATTEMPTS,
    Consumer,
    HandlerFailed,
    consume_batch,
    consumer_lags,
    ensure_checkpoints,
    run_consumer,
)
from app.events.models import ConsumerCheckpoint, ConsumerFailure, OutboxEvent
from app.events.outbox import record
from app.events.relay import prune
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant

SEEN = "CREATE TABLE IF NOT EXISTS consumer_test_seen (consumer TEXT, event_id BIGINT)"


def recording(name: str, organization_id: uuid.UUID, **kw: object) -> Consumer:
    """A consumer that writes one row per event of the organization into consumer_test_seen."""

    async def handle(events: Sequence[Published]) -> None:
        conn = get_connection("default")
        for event in events:
            if event.organization_id == organization_id:
                await conn.execute_query(
                    "INSERT INTO consumer_test_seen VALUES ($1, $2)", [name, event.id]
                )

    return Consumer(name=name, handle=handle, start="now", **kw)  # type: ignore[arg-type]


async def seen(name: str) -> list[int]:
    rows = await get_connection("default").execute_query_dict(
        "SELECT event_id FROM consumer_test_seen WHERE consumer = $1", [name]
    )
    return [int(r["event_id"]) for r in rows]


async def org_event_ids(organization_id: uuid.UUID) -> list[int]:
    return sorted(
        e.id for e in await OutboxEvent.filter(organization_id=organization_id).only("id")
    )


async def drain(consumer: Consumer) -> int:
    """Handle everything readable now (a write transaction still open anywhere on the
    server, such as another test session's, holds newer events back)."""
    total = 0
    while handled := await consume_batch(consumer):
        total += handled
    return total


async def drain_until(consumer: Consumer, done: Callable[[], Awaitable[bool]]) -> None:
    """Drain repeatedly until `done()` holds (at most ~10 s)."""
    for _ in range(200):
        await drain(consumer)
        if await done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{consumer.name} did not get there")


async def test_two_workers_handle_every_event_exactly_once(db: str, tenant: Tenant) -> None:
    await get_connection("default").execute_query(SEEN)
    consumer = recording(f"t-{uuid.uuid4().hex[:12]}", tenant.id, batch_size=7)
    await ensure_checkpoints([consumer])
    stop, wakes = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
    runners = [
        asyncio.create_task(run_consumer(consumer, stop=stop, wake=w, poll_seconds=0.05))
        for w in wakes
    ]
    customers = [await tenant.customer() for _ in range(6)]
    for customer in customers:
        await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    expected = await org_event_ids(tenant.id)
    for _ in range(200):
        if len(await seen(consumer.name)) >= len(expected):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*runners)
    counts = Counter(await seen(consumer.name))
    assert sorted(counts) == expected
    assert set(counts.values()) == {1}


async def test_a_lingering_consumer_handles_what_was_committed_meanwhile_as_one_batch(
    db: str, tenant: Tenant
) -> None:
    """After a batch, a consumer with `linger_seconds` waits that long whatever wakes it, so
    events committed within it are handed over together, each still exactly once."""
    await get_connection("default").execute_query(SEEN)
    batches: list[int] = []
    inner = recording(f"t-{uuid.uuid4().hex[:12]}", tenant.id)

    async def handle(events: Sequence[Published]) -> None:
        mine = [e for e in events if e.organization_id == tenant.id]
        if mine:
            batches.append(len(mine))
        await inner.handle(events)

    consumer = Consumer(
        name=inner.name, handle=handle, start="now", linger_seconds=3.0, types=("task.",)
    )
    await ensure_checkpoints([consumer])
    stop, wake = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(run_consumer(consumer, stop=stop, wake=wake, poll_seconds=0.05))
    customers = [await tenant.customer() for _ in range(5)]
    await tenant.act(customers[0].id, "verify_email", TaskAction.COMPLETE)
    for _ in range(100):
        if batches:
            break
        await asyncio.sleep(0.02)
    for customer in customers[1:]:  # within the linger of the first batch
        await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
        wake.set()
    expected = [
        e.id for e in await OutboxEvent.filter(organization_id=tenant.id, type__startswith="task.")
    ]
    for _ in range(200):
        if len(await seen(consumer.name)) >= len(expected):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    assert Counter(await seen(consumer.name)) == Counter(expected)
    assert len(batches) == 2, batches


async def test_an_event_committed_late_is_handled_not_skipped(
    db: str, database_url: str, tenant: Tenant
) -> None:
    await get_connection("default").execute_query(SEEN)
    consumer = recording(f"t-{uuid.uuid4().hex[:12]}", tenant.id)
    await ensure_checkpoints([consumer])
    await drain(consumer)

    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        late = await slow.fetchval(
            "INSERT INTO outbox_event (organization_id, customer_id, stream, sequence, type,"
            " payload, actor, created_at) VALUES ($1, NULL, $2, 1, 'test.late', '{}', NULL,"
            " now()) RETURNING id",
            tenant.id,
            uuid.uuid4(),
        )
        early = await tenant.customer()  # commits while the slow transaction is open
        await drain(consumer)
        assert await seen(consumer.name) == [], "nothing past a running transaction is read"
        await tx.commit()
    finally:
        await slow.close()

    early_ids = [e.id for e in await OutboxEvent.filter(customer_id=early.id)]

    async def both() -> bool:
        return len(await seen(consumer.name)) >= 1 + len(early_ids)

    await drain_until(consumer, both)
    got = await seen(consumer.name)
    assert got[0] == late, "the older transaction's event comes first"
    assert sorted(got) == sorted([late, *early_ids])


async def test_a_failing_handler_rolls_back_its_batch(db: str, tenant: Tenant) -> None:
    await get_connection("default").execute_query(SEEN)
    name = f"t-{uuid.uuid4().hex[:12]}"
    inner = recording(name, tenant.id)

    async def explode(events: Sequence[Published]) -> None:
        await inner.handle(events)
        raise RuntimeError("boom")

    failing = Consumer(name=name, handle=explode, start="now")
    await ensure_checkpoints([failing])
    before = await ConsumerCheckpoint.get(name=name)
    await tenant.customer()
    for _ in range(200):
        try:
            await drain(failing)
        except HandlerFailed as exc:
            assert "boom" in str(exc)
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the handler's error must surface")
    after = await ConsumerCheckpoint.get(name=name)
    assert (after.last_tx, after.last_id) == (before.last_tx, before.last_id)
    assert await seen(name) == []

    async def some() -> bool:
        return bool(await seen(name))

    await drain_until(inner, some)


async def run_until_created_seen(consumer: Consumer, customer_id: uuid.UUID) -> list[int]:
    """Run the consumer (fast backoff) until it has seen the customer's `customer.created`
    events (at most ~20 s), then stop it; returns those events' ids."""
    stop, wake = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(
        run_consumer(consumer, stop=stop, wake=wake, poll_seconds=0.05, backoff_seconds=0.001)
    )
    created = [
        e.id for e in await OutboxEvent.filter(customer_id=customer_id, type="customer.created")
    ]
    for _ in range(400):
        if set(created) <= set(await seen(consumer.name)):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    return created


async def test_a_poison_event_is_recorded_and_skipped(db: str, tenant: Tenant) -> None:
    await get_connection("default").execute_query(SEEN)
    name = f"t-{uuid.uuid4().hex[:12]}"
    inner = recording(name, tenant.id)
    async with transaction():
        await record(organization_id=tenant.id, customer_id=None, events=[("test.poison", {})])
    poison = await OutboxEvent.get(organization_id=tenant.id, type="test.poison")

    async def handle(events: Sequence[Published]) -> None:
        if any(e.id == poison.id for e in events):
            raise ValueError("cannot handle this one")
        await inner.handle(events)

    consumer = Consumer(name=name, handle=handle, types=("test.", "customer."))
    await ConsumerCheckpoint.create(name=name, last_tx=0, last_id=0)
    customer = await tenant.customer()
    created = await run_until_created_seen(consumer, customer.id)
    failure = await ConsumerFailure.get(consumer=name, event_id=poison.id)
    assert failure.attempts == MAX_ATTEMPTS and "cannot handle" in failure.error
    assert poison.id not in await seen(name)
    assert set(created) <= set(await seen(name)), "events after the poison one are handled"


async def test_a_batch_rolled_back_to_break_a_deadlock_is_tried_again_never_skipped(
    db: str, tenant: Tenant
) -> None:
    await get_connection("default").execute_query(SEEN)
    name = f"t-{uuid.uuid4().hex[:12]}"
    inner = recording(name, tenant.id)
    conflicts = 0

    async def handle(events: Sequence[Published]) -> None:
        nonlocal conflicts
        if conflicts < MAX_ATTEMPTS + 2 and any(e.organization_id == tenant.id for e in events):
            conflicts += 1  # what PostgreSQL raises in the transaction it aborts in a deadlock
            await get_connection("default").execute_script(
                "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"
            )
        await inner.handle(events)

    consumer = Consumer(name=name, handle=handle, types=("customer.",), start="now")
    await ensure_checkpoints([consumer])
    customer = await tenant.customer()
    created = await run_until_created_seen(consumer, customer.id)
    assert conflicts == MAX_ATTEMPTS + 2
    assert set(created) <= set(await seen(name)), "handled once the conflicts were over"
    assert not await ConsumerFailure.filter(consumer=name).exists(), "no event was skipped"


async def test_types_filter_by_prefix(db: str, tenant: Tenant) -> None:
    await get_connection("default").execute_query(SEEN)
    consumer = recording(f"t-{uuid.uuid4().hex[:12]}", tenant.id, types=("task.completed",))
    await ensure_checkpoints([consumer])
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)

    async def some() -> bool:
        return bool(await seen(consumer.name))

    await drain_until(consumer, some)
    got = await OutboxEvent.filter(id__in=await seen(consumer.name)).values_list("type", flat=True)
    assert list(got) == ["task.completed"]


async def test_prune_keeps_what_a_consumer_has_not_handled(db: str, tenant: Tenant) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    await ConsumerCheckpoint.create(name=name, last_tx=0, last_id=0)  # handled nothing
    customer = await tenant.customer()
    conn = get_connection("default")
    await conn.execute_query(
        "UPDATE outbox_event SET published_at = now() - interval '100 hours'"
        " WHERE customer_id = $1",
        [customer.id],
    )
    total = await OutboxEvent.filter(customer_id=customer.id).count()
    await prune(retention=timedelta(hours=72), consumers=[name], limit=1_000_000)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == total
    lags = await consumer_lags([name])
    assert lags[name] > 0
    await ConsumerCheckpoint.filter(name=name).update(last_tx=2**62)
    await prune(retention=timedelta(hours=72), consumers=[name], limit=1_000_000)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == 0
