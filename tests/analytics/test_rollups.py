"""Rollups kept by the consumer equal a from-scratch rebuild, on randomized histories."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection

from app.analytics import consumer, maintain
from app.consumers import CONSUMERS
from app.customers.models import Customer
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
        assert await maintain.rebuild(t.id, now=later, chunk=5) == 12
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
    await maintain.rebuild(tenant.id, now=utcnow())
    assert kept == await dump(tenant) and kept["analytics_cohort"]


async def test_an_interrupted_rebuild_resumes_and_counts_what_happened_meanwhile_once(
    tenant: Tenant,
) -> None:
    """A rebuild cleared the organization and got through two customers (one chunk
    committed); meanwhile new customers signed up and moved, and the consumer handled
    them. Resuming refreshes only the customers it had not reached, and the rollups equal a
    full rebuild."""
    rng = random.Random(11)
    start = utcnow() - timedelta(days=50)
    await random_history(tenant, rng, customers=6, moves=30, start=start)
    last = await drain(tenant)
    ids = sorted(await Customer.filter(organization_id=tenant.id).values_list("id", flat=True))
    async with transaction():
        await maintain.clear(tenant.id)
    assert (await dump(tenant))["analytics_cohort"] == set()
    async with transaction():
        await maintain.refresh(ids[:2], now=utcnow())
    await random_history(tenant, rng, customers=3, moves=15, start=start)
    await drain(tenant, after=last)
    seen: list[tuple[int, int]] = []
    resumed = await maintain.rebuild(
        tenant.id, now=utcnow(), chunk=2, resume=True, progress=lambda *p: seen.append(p)
    )
    assert resumed == 4  # 9 customers: 2 in the committed chunk, 3 kept by the consumer
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    kept = await dump(tenant)
    assert await maintain.rebuild(tenant.id, now=utcnow(), chunk=4) == 9
    assert await dump(tenant) == kept


async def _contributions(tenant: Tenant) -> dict[Any, Any]:
    rows = await get_connection("default").execute_query_dict(
        "SELECT id, contribution, active, last_activity_at FROM analytics_customer"
        " WHERE organization_id = $1",
        [tenant.id],
    )
    out = {}
    for r in rows:
        c = r["contribution"]
        c = json.loads(c) if isinstance(c, str) else c
        if c:
            c["steps"] = sorted(c["steps"])
        out[r["id"]] = (c, r["active"], r["last_activity_at"])
    return out


@pytest.mark.parametrize("seed", [21, 22])
async def test_the_set_based_rebuild_saves_the_consumers_contributions(
    tenant: Tenant, seed: int
) -> None:
    """The SQL rebuild saves, per customer, the contribution the consumer's Python function
    computes (so the consumer's next change subtracts the right one); changes handled after
    it keep the rollups equal to another rebuild."""
    rng = random.Random(seed)
    start = utcnow() - timedelta(days=70)
    await random_history(tenant, rng, customers=10, moves=70, start=start)
    last = await drain(tenant)
    later = utcnow() + timedelta(days=rng.choice([0, 4, 8]))
    async with transaction():
        await maintain.refresh(
            await Customer.filter(organization_id=tenant.id).values_list("id", flat=True),
            now=later,
        )
    by_consumer, kept = await _contributions(tenant), await dump(tenant)
    assert await maintain.rebuild(tenant.id, now=later, chunk=3) == 10
    assert await _contributions(tenant) == by_consumer
    assert await dump(tenant) == kept
    await random_history(tenant, rng, customers=2, moves=40, start=start)
    await drain(tenant, after=last)
    kept = await dump(tenant)
    await maintain.rebuild(tenant.id, now=utcnow())
    assert await dump(tenant) == kept


async def test_a_contribution_kept_in_memory_is_used_only_while_its_row_is_unchanged(
    tenant: Tenant,
) -> None:
    """A refresh reuses the contributions it read before (not sent again) while their rows
    are the versions it read; a row another writer rewrote meanwhile is read again."""
    await random_history(
        tenant, random.Random(11), customers=3, moves=12, start=utcnow() - timedelta(days=60)
    )
    await drain(tenant)
    ids = sorted(await Customer.filter(organization_id=tenant.id).values_list("id", flat=True))
    async with transaction():
        await maintain.refresh(ids, now=utcnow())  # reads every saved contribution
    assert all(cid in maintain._KNOWN for cid in ids)
    conn = get_connection("default")
    counted = "SELECT sum(customers) AS n FROM analytics_cohort WHERE organization_id = $1"
    [before] = await conn.execute_query_dict(counted, [tenant.id])
    kept = await dump(tenant)
    async with transaction():
        await maintain.refresh(ids, now=utcnow())  # from memory: nothing changed
    assert await dump(tenant) == kept
    # another writer leaves a row saying that its customer is not counted yet
    await conn.execute_query(
        "UPDATE analytics_customer SET contribution = '{}' WHERE id = $1", [ids[0]]
    )
    async with transaction():
        await maintain.refresh(ids, now=utcnow())
    [after] = await conn.execute_query_dict(counted, [tenant.id])
    assert after["n"] == before["n"] + 1  # the row was read, not the contribution kept
