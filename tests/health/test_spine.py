"""Health on the event spine with real PostgreSQL: events mark customers, the debounced
drain scores each once, nothing runs in the request; the drain commits organization by
organization and does again a chunk the database aborts to break a deadlock, and a recompute
does again a batch aborted the same way."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from app.db import transaction
from app.events.consumers import consume_batch, ensure_checkpoints
from app.health import recompute, spine
from app.health.models import HealthJob, HealthPending, HealthScore, JobStatus
from app.health.rules import Facts
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from app.usage.rules import EventIn
from app.usage.service import ingest_events
from tests.support.factories import Tenant
from tests.support.locks import blocked_by


async def drain_consumer() -> None:
    while await consume_batch(spine.CONSUMER):
        pass


async def test_events_mark_customers_and_the_drain_scores_them_once(tenant: Tenant) -> None:
    await ensure_checkpoints([spine.CONSUMER])
    busy = await tenant.customer()
    quiet = await tenant.customer()
    await drain_consumer()  # signing up marks both customers
    assert await HealthPending.filter(organization_id=tenant.id).count() == 2
    await HealthPending.filter(organization_id=tenant.id).delete()
    await recompute.recompute_all(tenant.id)
    before = await HealthScore.get(customer_id=busy.id)
    now = utcnow()
    events = [
        EventIn(
            name="login",
            occurred_at=now - timedelta(days=d, minutes=i),
            idempotency_key=f"k-{busy.id}-{d}-{i}",
            customer_id=str(busy.id),
        )
        for d in range(10)
        for i in range(3)
    ]
    async with transaction():
        await ingest_events(tenant.admin, events=events, actor="test", retention_days=400)
    await tenant.act(busy.id, "verify_email", TaskAction.COMPLETE)
    # the request committed; nothing scored it yet
    assert (await HealthScore.get(customer_id=busy.id)).computed_at == before.computed_at
    await drain_consumer()
    pending = await HealthPending.filter(organization_id=tenant.id)
    assert [p.customer_id for p in pending] == [busy.id]  # type: ignore[attr-defined]
    # (other tests' customers may be pending too: the drain serves every organization)
    await spine.score_pending()  # not due before the debounce
    assert await HealthPending.filter(id=busy.id).exists()
    await asyncio.sleep(spine.DEBOUNCE.total_seconds() + 0.1)
    assert await spine.score_pending() >= 1
    after = await HealthScore.get(customer_id=busy.id)
    assert Facts.from_json(after.facts).events == 30 and after.computed_at > before.computed_at
    assert after.confidence > before.confidence  # engagement has data now
    assert (await HealthScore.get(customer_id=quiet.id)).computed_at == before.computed_at
    assert not await HealthPending.filter(organization_id=tenant.id).exists()


async def test_scoring_commits_per_organization_and_does_again_a_chunk_aborted_by_a_deadlock(
    tenant: Tenant, other_tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = sorted((tenant, other_tenant), key=lambda t: t.id)  # the order it goes in
    alone = await first.customer()
    x, y = sorted([await second.customer(), await second.customer()], key=lambda c: c.id)
    due = utcnow() - timedelta(seconds=5)
    for c in (alone, x, y):
        await HealthPending.create(
            id=c.id, organization_id=c.organization_id, customer_id=c.id, due_at=due
        )
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        # Scoring `y` inserts a row referring to it, whose key-share lock waits for this one.
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", y.id)
        scoring = asyncio.create_task(spine.score_pending())
        await blocked_by(other)
        # The first organization's scores are committed while the second one's wait.
        assert await HealthScore.filter(customer_id=alone.id).exists()
        assert not await HealthPending.filter(id=alone.id).exists()
        assert not await HealthScore.filter(customer_id__in=[x.id, y.id]).exists()
        # Now the other transaction wants the pending row of `x` the scoring claimed: a
        # deadlock, broken by aborting the scoring's statement (it waited first).
        await other.execute("SELECT 1 FROM health_pending WHERE id = $1 FOR UPDATE", x.id)
        await tx.commit()
    finally:
        await other.close()
    assert await scoring >= 3  # the second organization's chunk was done again
    assert "rolled back by the database (40P01); attempt 2 of 3" in caplog.text
    assert await HealthScore.filter(customer_id__in=[alone.id, x.id, y.id]).count() == 3
    assert not await HealthPending.filter(id__in=[alone.id, x.id, y.id]).exists()


async def test_a_recompute_batch_aborted_by_a_deadlock_is_scored_again(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = sorted([await tenant.customer(), await tenant.customer()], key=lambda c: c.id)
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        # The batch inserts the scores in customer-id order: `x`'s takes a key-share lock on
        # `x`, `y`'s waits for this one. The other transaction then wants `x`: a deadlock,
        # broken by aborting the batch's statement (it waited first).
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", y.id)
        recomputing = asyncio.create_task(recompute.recompute_all(tenant.id, parallel=1))
        await blocked_by(other)
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", x.id)
        await tx.commit()
    finally:
        await other.close()
    scored, _ = await recomputing
    assert scored == 2
    assert "health batch after None rolled back by the database (40P01); attempt 2 of 3" in (
        caplog.text
    )
    assert await HealthScore.filter(customer_id__in=[x.id, y.id]).count() == 2


async def test_a_job_counts_each_batch_once_when_its_progress_waits_for_a_lock(
    tenant: Tenant, database_url: str
) -> None:
    x, _ = sorted([await tenant.customer(), await tenant.customer()], key=lambda c: c.id)
    async with transaction():
        job = await recompute.start_job(tenant.admin, recompute.Scope())
    claimed = await recompute.claim_job(now=utcnow(), organization_id=tenant.id)
    assert claimed is not None
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        # The job's progress waits for its row, held here; this transaction then wants a
        # customer whose new score holds a key-share lock until the batch commits. Were the
        # progress saved in the batch's transaction, that would be a deadlock aborting the
        # batch, and the batch done again would be counted twice.
        await other.execute("SELECT 1 FROM health_job WHERE id = $1 FOR UPDATE", job.id)
        running = asyncio.create_task(recompute.run_job(claimed, batch_size=10))
        await blocked_by(other)
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", x.id)
        await tx.commit()
    finally:
        await other.close()
    finished = await running
    assert (finished.status, finished.done, finished.total) == (JobStatus.SUCCEEDED, 2, 2)
    assert (await HealthJob.get(id=job.id)).done == 2
    assert await HealthScore.filter(organization_id=tenant.id).count() == 2
