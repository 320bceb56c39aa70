"""Live feeds over a real Hub (memory:// and a real Valkey): replay, then live, no gap.

Events reach the hub the way production sends them, through `relay_batch(hub.publish)`. A lost
live message is simulated by publishing a later event directly while the one before it stays
in the outbox; the feed must fill it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tortoise.connection import get_connection

from app.db import transaction
from app.errors import ValidationFailed
from app.events import feed, orgfeed, outbox
from app.events.channels import Published, activity_channel, customer_channel
from app.events.hub import RESYNC, Hub
from app.events.models import OutboxEvent
from app.events.relay import relay_batch
from app.onboarding import service
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant, last_sequence
from tests.support.procs import free_port
from tests.support.valkey import ValkeyProcess

WAIT = 5.0


def published(row: OutboxEvent) -> Published:
    """The wire form of a stored event, as the relay would publish it."""
    return Published.of_row({name: getattr(row, name) for name in feed.COLUMNS})


@pytest.fixture(params=["memory", "valkey"])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[Hub]:
    url = None if request.param == "memory" else request.getfixturevalue("redis_url")
    hub = Hub(url)
    await hub.connect()
    try:
        yield hub
    finally:
        await hub.disconnect()


class Feed:
    """Runs a feed generator in a task and queues what it yields."""

    def __init__(self, source: AsyncIterator[Any]) -> None:
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self._source = source
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self._source:
            self.items.put_nowait(item)

    async def take(self, n: int, *, within: float = WAIT) -> list[Any]:
        return [await asyncio.wait_for(self.items.get(), within) for _ in range(n)]

    async def nothing_more(self, *, within: float = 0.3) -> None:
        await asyncio.sleep(within)
        assert self.items.empty(), f"unexpected: {[self.items.get_nowait()]}"
        assert not self._task.done() or self._task.exception() is None

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._source.aclose()  # type: ignore[attr-defined]


async def relay_all(publish: Any) -> None:
    while await relay_batch(publish, batch_size=500):
        pass


async def discard(channel: str, message: str) -> None:
    """Clear pending events without publishing them anywhere."""


def summary(items: list[tuple[Published, bool]]) -> list[tuple[int, bool]]:
    return [(event.sequence, replayed) for event, replayed in items]


async def started_customer(tenant: Tenant) -> uuid.UUID:
    """A customer with a few committed (and already relayed) events."""
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    await tenant.act(customer.id, "verify_email", TaskAction.PROGRESS, progress=20)
    await relay_all(discard)
    return customer.id


async def test_replay_after_k_then_live_without_gap_or_duplicate(hub: Hub, tenant: Tenant) -> None:
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    assert n == 4
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=1))
    try:
        replayed = await watcher.take(n - 1)
        assert summary(replayed) == [(s, True) for s in range(2, n + 1)]
        assert all(e.organization_id == tenant.id and e.customer_id == cid for e, _ in replayed)

        for value in (40, 60, 80):
            await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=value)
        await relay_all(hub.publish)
        live = await watcher.take(3)
        assert summary(live) == [(n + 1, False), (n + 2, False), (n + 3, False)]
        assert [e.payload["progress"] for e, _ in live] == [40, 60, 80]
        assert all(e.type == "task.progressed" for e, _ in live)

        # A re-delivery of something already seen (a relay retried after a crash) is dropped.
        for event, _ in live:
            await hub.publish(customer_channel(tenant.id, cid), event.encode())
        await tenant.act(cid, "verify_email", TaskAction.COMPLETE)
        await relay_all(hub.publish)
        rest = await watcher.take(await last_sequence(cid) - (n + 3))
        assert [s for s, _ in summary(rest)] == list(range(n + 4, n + 4 + len(rest)))
        assert rest[0][0].type == "task.completed"
        await watcher.nothing_more()
    finally:
        await watcher.stop()


async def test_without_after_only_new_events_come(hub: Hub, tenant: Tenant) -> None:
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=None))
    try:
        # Nothing to replay, so nothing shows when it is listening: give it a moment.
        await asyncio.sleep(0.3)
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=50)
        await relay_all(hub.publish)
        assert summary(await watcher.take(1)) == [(n + 1, False)]
        await watcher.nothing_more()
    finally:
        await watcher.stop()


async def test_a_missing_live_event_is_filled_from_the_outbox(hub: Hub, tenant: Tenant) -> None:
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    try:
        assert summary(await watcher.take(1)) == [(n, True)]  # listening from here on

        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=30)  # n + 1
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=70)  # n + 2
        later = await OutboxEvent.get(customer_id=cid, sequence=n + 2)
        # n + 1 stays unpublished in the outbox; only n + 2 reaches the broker.
        await hub.publish(customer_channel(tenant.id, cid), published(later).encode())

        got = await watcher.take(2)
        assert summary(got) == [(n + 1, True), (n + 2, False)]
        assert [e.payload["progress"] for e, _ in got] == [30, 70]

        await relay_all(hub.publish)  # the late relay of both: already delivered, dropped
        await watcher.nothing_more()
    finally:
        await watcher.stop()


async def test_the_resync_marker_fills_from_the_outbox(hub: Hub, tenant: Tenant) -> None:
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    try:
        assert summary(await watcher.take(1)) == [(n, True)]
        for value in (10, 20, 30):  # committed, never published (as if Redis dropped them)
            await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=value)

        await hub.publish(customer_channel(tenant.id, cid), RESYNC)
        got = await watcher.take(3)
        assert summary(got) == [(n + 1, True), (n + 2, True), (n + 3, True)]

        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=40)
        await relay_all(hub.publish)  # n+1..n+3 again (dropped) and n+4 live
        assert summary(await watcher.take(1)) == [(n + 4, False)]
        await watcher.nothing_more()
    finally:
        await watcher.stop()


async def test_replay_is_scoped_to_the_organization_and_customer(
    hub: Hub, tenant: Tenant, other_tenant: Tenant
) -> None:
    cid = await started_customer(tenant)
    other = await started_customer(tenant)
    stranger = await started_customer(other_tenant)
    # Asking with the wrong organization finds nothing, even with after=0.
    wrong = Feed(feed.customer_events(hub, other_tenant.id, cid, after=0))
    mine = Feed(feed.customer_events(hub, tenant.id, cid, after=0))
    try:
        got = await mine.take(await last_sequence(cid))
        assert {e.customer_id for e, _ in got} == {cid}
        await tenant.act(other, "verify_email", TaskAction.PROGRESS, progress=90)
        await other_tenant.act(stranger, "verify_email", TaskAction.PROGRESS, progress=90)
        await relay_all(hub.publish)
        await mine.nothing_more()
        await wrong.nothing_more()
    finally:
        await wrong.stop()
        await mine.stop()


async def test_activity_feed_is_per_organization_and_deduplicated(
    hub: Hub, tenant: Tenant, other_tenant: Tenant
) -> None:
    cid = await started_customer(tenant)
    stranger = await started_customer(other_tenant)
    watcher = Feed(feed.activity_events(hub, tenant.id))
    try:
        await asyncio.sleep(0.2)  # no replay on this feed: give the subscription time
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=50)
        await other_tenant.act(stranger, "verify_email", TaskAction.PROGRESS, progress=50)
        await relay_all(hub.publish)
        [event] = await watcher.take(1)
        assert (event.customer_id, event.type) == (cid, "task.progressed")
        # Duplicates, and another organization's event forged onto this channel, are dropped.
        await hub.publish(activity_channel(tenant.id), event.encode())
        forged = await OutboxEvent.filter(customer_id=stranger).order_by("-sequence").first()
        assert forged is not None
        await hub.publish(activity_channel(tenant.id), published(forged).encode())
        await watcher.nothing_more()
    finally:
        await watcher.stop()


@pytest.fixture
def own_valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess(port=free_port()) as server:
        yield server


async def test_a_real_redis_restart_fills_what_was_committed_meanwhile(
    own_valkey: ValkeyProcess, tenant: Tenant
) -> None:
    hub = Hub(own_valkey.url)
    await hub.connect()
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    try:
        assert summary(await watcher.take(1)) == [(n, True)]
        await asyncio.to_thread(own_valkey.stop)
        for value in (15, 25):  # committed while Redis is down; nobody publishes them
            await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=value)
        with pytest.raises(Exception):  # noqa: B017 - the relay cannot publish now
            await relay_batch(hub.publish, batch_size=500)
        await asyncio.to_thread(own_valkey.start)

        # On reconnect the hub nudges every subscriber; the feed reads the outbox.
        got = await watcher.take(2, within=15)
        assert summary(got) == [(n + 1, True), (n + 2, True)]

        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=35)
        await relay_all(hub.publish)
        assert summary(await watcher.take(1)) == [(n + 3, False)]
        await watcher.nothing_more()
    finally:
        await watcher.stop()
        await hub.disconnect()


async def two_feeds_started_together(hub: Hub, tenant: Tenant) -> None:
    """Two feeds of one customer, started in the same loop iteration, both hear live events."""
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    first = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    second = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    try:
        assert summary(await first.take(1)) == [(n, True)]
        assert summary(await second.take(1)) == [(n, True)]
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=55)
        await relay_all(hub.publish)
        assert summary(await second.take(1)) == [(n + 1, False)]
        assert summary(await first.take(1, within=2)) == [(n + 1, False)]
    finally:
        with contextlib.suppress(KeyError):  # a lost queue cannot be removed either
            await first.stop()
        with contextlib.suppress(KeyError):
            await second.stop()


async def test_two_feeds_of_one_customer_started_together_memory(tenant: Tenant) -> None:
    hub = Hub(None)
    await hub.connect()
    try:
        await two_feeds_started_together(hub, tenant)
    finally:
        await hub.disconnect()


async def test_two_feeds_of_one_customer_started_together_redis(
    redis_url: str, tenant: Tenant
) -> None:
    hub = Hub(redis_url)
    await hub.connect()
    try:
        await two_feeds_started_together(hub, tenant)
    finally:
        await hub.disconnect()


async def test_a_gap_longer_than_one_history_page_is_filled_completely(tenant: Tenant) -> None:
    hub = Hub(None)
    await hub.connect()
    cid = await started_customer(tenant)
    n = await last_sequence(cid)
    watcher = Feed(feed.customer_events(hub, tenant.id, cid, after=n - 1))
    try:
        assert summary(await watcher.take(1)) == [(n, True)]
        missing = feed.REPLAY_LIMIT + 5
        async with transaction():
            await outbox.record(
                organization_id=tenant.id,
                customer_id=cid,
                events=[("test.tick", {"i": i}) for i in range(missing + 1)],
            )
        newest = await OutboxEvent.get(customer_id=cid, sequence=n + missing + 1)
        await hub.publish(customer_channel(tenant.id, cid), published(newest).encode())
        first = await watcher.take(feed.REPLAY_LIMIT + 1)
        assert [s for s, _ in summary(first)] == list(range(n + 1, n + feed.REPLAY_LIMIT + 2))
        rest = await watcher.take(missing - feed.REPLAY_LIMIT)
        assert summary(rest)[-1] == (n + missing + 1, False)
    finally:
        await watcher.stop()
        await hub.disconnect()
        await relay_all(discard)


async def test_activity_resumes_from_a_cursor_with_exactly_what_was_missed(
    hub: Hub, tenant: Tenant
) -> None:
    cid = await started_customer(tenant)
    watcher = Feed(orgfeed.organization_events(hub, tenant.id))
    try:
        await asyncio.sleep(0.2)
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=30)
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=40)
        await relay_all(hub.publish)
        seen = await watcher.take(2)
    finally:
        await watcher.stop()
    assert [e.payload.get("progress") for e, _ in seen] == [30, 40]
    assert not any(replayed for _, replayed in seen)
    cursor = orgfeed.decode_cursor(orgfeed.encode_cursor(seen[0][0]))
    await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=50)  # while away
    await relay_all(hub.publish)
    resumed = Feed(orgfeed.organization_events(hub, tenant.id, after=cursor))
    try:
        missed = await resumed.take(2)
        assert [(e.payload.get("progress"), r) for e, r in missed] == [(40, True), (50, True)]
        await tenant.act(cid, "verify_email", TaskAction.PROGRESS, progress=60)
        await relay_all(hub.publish)
        [(live, replayed)] = await resumed.take(1)
        assert (live.payload.get("progress"), replayed) == (60, False)
        await resumed.nothing_more()
    finally:
        await resumed.stop()


async def test_an_event_of_a_long_transaction_is_not_passed_by_later_ones(
    hub: Hub, tenant: Tenant
) -> None:
    """A transaction that started first but commits last: its event comes first in the
    feed, so a cursor taken after the later event still covers it."""
    early, late = await started_customer(tenant), await started_customer(tenant)
    watcher = Feed(orgfeed.organization_events(hub, tenant.id))
    hold, wrote = asyncio.Event(), asyncio.Event()

    async def long_transaction() -> None:
        async with transaction():
            await service.update_task(
                tenant.csm,
                customer_id=str(early),
                task_key="verify_email",
                action=TaskAction.PROGRESS,
                progress=70,
            )
            wrote.set()
            await hold.wait()

    slow = asyncio.create_task(long_transaction())
    try:
        await asyncio.wait_for(wrote.wait(), WAIT)
        await tenant.act(late, "verify_email", TaskAction.PROGRESS, progress=80)
        await relay_all(hub.publish)
        await watcher.nothing_more(within=0.5)  # the later event waits for the earlier one
        hold.set()
        await slow
        await relay_all(hub.publish)
        events = [e for e, _ in await watcher.take(2)]
        assert [(e.customer_id, e.payload.get("progress")) for e in events] == [
            (early, 70),
            (late, 80),
        ]
        assert (events[0].tx, events[0].id) < (events[1].tx, events[1].id)
    finally:
        hold.set()
        await slow
        await watcher.stop()


async def test_a_bad_cursor_is_refused() -> None:
    for text in ("", "12", "a.b", "1.2.3", "9" * 50 + ".1"):
        with pytest.raises(ValidationFailed) as refused:
            orgfeed.decode_cursor(text)
        assert refused.value.details == {"field": "after"}


async def test_transactions_ending_while_the_feed_reads_are_never_passed(tenant: Tenant) -> None:
    """One-statement transactions commit while the feed reads without pause: each read must
    see every transaction below the horizon it reports. (A horizon computed in the reading
    statement itself can count a transaction as ended that the statement's snapshot still saw
    running: its event is then passed for good.)"""
    writers, each = 4, 250
    conn = get_connection("default")
    written: set[int] = set()
    done = asyncio.Event()

    async def write() -> None:
        for _ in range(each):
            rows = await conn.execute_query_dict(
                "INSERT INTO outbox_event (organization_id, stream, sequence, type, payload,"
                " created_at) VALUES ($1, $2, 1, 'race.test', '{}', now()) RETURNING id",
                [tenant.id, uuid.uuid4()],
            )
            written.add(int(rows[0]["id"]))

    _, horizon = await orgfeed.read_after(tenant.id, (2**62, 0), limit=0)
    position: orgfeed.Cursor = (horizon - 1, 2**62)
    seen: set[int] = set()

    async def read() -> None:
        nonlocal position
        while True:
            finished = done.is_set()
            events, _ = await orgfeed.read_after(tenant.id, position)
            for event in events:
                seen.add(event.id)
                position = (event.tx, event.id)
            if finished and len(events) < orgfeed.PAGE:
                return

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write() for _ in range(writers)))
    done.set()
    await reader
    assert len(written) == writers * each
    assert written - seen == set()
