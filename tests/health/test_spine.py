"""Health on the event spine with real PostgreSQL: events mark customers, the debounced
drain scores each once, nothing runs in the request."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.db import transaction
from app.events.consumers import consume_batch, ensure_checkpoints
from app.health import recompute, spine
from app.health.models import HealthPending, HealthScore
from app.health.rules import Facts
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from app.usage.rules import EventIn
from app.usage.service import ingest_events
from tests.support.factories import Tenant


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
