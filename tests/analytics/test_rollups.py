"""Rollups kept by the consumer equal a from-scratch rebuild, on randomized histories."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from app.analytics import consumer, maintain
from app.consumers import CONSUMERS
from app.db import transaction
from app.events.consumers import consume_batch, ensure_checkpoints
from app.kit.clock import utcnow
from tests.analytics.support import drain, dump, random_history
from tests.support.factories import Tenant


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_incremental_rollups_equal_a_rebuild(
    tenant: Tenant, other_tenant: Tenant, seed: int
) -> None:
    """Two organizations whose customers share signup days and segments, handled in batches
    that mix them; part of the history is handled before the rest happens."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    for t in (tenant, other_tenant):
        await random_history(t, rng, customers=8, moves=30, start=start)
    last = await drain(tenant, other_tenant)
    for t in (tenant, other_tenant):
        await random_history(t, rng, customers=4, moves=60, start=start)
    await drain(tenant, other_tenant, after=last)
    later = utcnow() + timedelta(days=rng.choice([0, 3, 9]))
    async with transaction():
        await maintain.age(now=later)
    incremental = {t.id: await dump(t) for t in (tenant, other_tenant)}
    assert incremental[tenant.id]["analytics_cohort"] and incremental[tenant.id]["analytics_step"]
    for t in (tenant, other_tenant):
        async with transaction():
            assert await maintain.rebuild(t.id, now=later) == 12
    assert {t.id: await dump(t) for t in (tenant, other_tenant)} == incremental


async def test_handling_the_same_state_twice_changes_nothing(tenant: Tenant) -> None:
    await random_history(
        tenant, random.Random(7), customers=5, moves=20, start=utcnow() - timedelta(days=40)
    )
    await drain(tenant)
    once = await dump(tenant)
    await drain(tenant)
    assert await dump(tenant) == once


async def test_the_registered_consumer_keeps_the_rollups(tenant: Tenant) -> None:
    """The consumer as the worker runs it (checkpoint, transaction, batches) over new events."""
    [registered] = [c for c in CONSUMERS if c.name == consumer.NAME]
    fresh = dataclasses.replace(registered, name=f"analytics-test-{tenant.id}", start="now")
    await ensure_checkpoints([fresh])
    await random_history(
        tenant, random.Random(5), customers=4, moves=25, start=utcnow() - timedelta(days=40)
    )
    while await consume_batch(fresh):
        pass
    kept = await dump(tenant)
    async with transaction():
        await maintain.rebuild(tenant.id, now=utcnow())
    assert kept == await dump(tenant) and kept["analytics_cohort"]
