"""Retention per organization: whole partitions dropped past the longest window, the rows of
organizations with a shorter one deleted, keys and rollups pruned with them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tortoise.connection import get_connection

from app.db import transaction
from app.kit.clock import utcnow
from app.usage import retention, storage
from app.usage.models import UsageDaily, UsageEvent
from app.usage.rules import EventIn, ItemStatus
from app.usage.service import ingest_events
from tests.support.factories import Tenant


async def put(tenant: Tenant, customer: object, at: datetime, key: str) -> None:
    async with transaction():
        out = await ingest_events(
            tenant.admin,
            events=[
                EventIn(customer_id=str(customer), name="x", occurred_at=at, idempotency_key=key)
            ],
            actor="test",
            retention_days=3650,
            now=utcnow(),
        )
    assert out.items[0].status is ItemStatus.ACCEPTED


async def partitions() -> set[str]:
    rows = await get_connection("default").execute_query_dict(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'usage_event'::regclass"
    )
    return {r["name"] for r in rows}


def test_only_partitions_wholly_before_the_window_are_droppable() -> None:
    at = datetime.fromisoformat
    bounds = [
        ("usage_event_p202401", at("2024-02-01T00:00:00+00:00")),
        ("usage_event_p202402", at("2024-03-01T00:00:00+00:00")),
        ("usage_event_w20240301", at("2024-03-04T00:00:00+00:00")),
        ("usage_event_w20240304", at("2024-03-11T00:00:00+00:00")),
    ]
    kept_from = at("2024-03-04T00:00:00+00:00")
    assert retention.droppable(bounds, oldest_kept=kept_from) == [
        "usage_event_p202401",
        "usage_event_p202402",
        "usage_event_w20240301",
    ]
    assert retention.droppable(bounds, oldest_kept=kept_from - timedelta(seconds=1)) == [
        "usage_event_p202401",
        "usage_event_p202402",
    ]


async def test_pruning_keeps_each_organization_its_own_window(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    now = utcnow()
    short, default = await tenant.customer(), await other_tenant.customer()
    await retention.set_retention_days(tenant.id, 30)
    run = uuid.uuid4().hex
    for who, t in ((short, tenant), (default, other_tenant)):
        await put(t, who.id, now - timedelta(days=100), f"{run}-old-{who.id}")
        await put(t, who.id, now - timedelta(days=1), f"{run}-new-{who.id}")
    # keys of the old events were received long ago
    await get_connection("default").execute_query(
        "UPDATE usage_event_key SET received_at = $1 WHERE idempotency_key LIKE $2",
        [now - timedelta(days=100), f"{run}-old-%"],
    )
    # an ancient week, past every organization's window
    ancient = now - timedelta(days=800)
    await storage.ensure_partitions(ancient.date(), ancient.date())
    ancient_name = f"usage_event_w{storage.week_of(ancient):%Y%m%d}"
    assert ancient_name in await partitions()
    try:
        pruned = await retention.prune(default_days=400, now=now)
    finally:
        await retention.set_retention_days(tenant.id, None)
    assert ancient_name in pruned.partitions and ancient_name not in await partitions()
    assert f"usage_event_w{storage.week_of(now):%Y%m%d}" in await partitions()
    short_days = await UsageEvent.filter(customer_id=short.id).values_list(
        "idempotency_key", flat=True
    )
    assert short_days == [f"{run}-new-{short.id}"]
    assert await UsageEvent.filter(customer_id=default.id).count() == 2
    assert [d.day for d in await UsageDaily.filter(customer_id=short.id)] == [
        (now - timedelta(days=1)).date()
    ]
    assert await UsageDaily.filter(customer_id=default.id).count() == 2
    keys = await get_connection("default").execute_query_dict(
        "SELECT idempotency_key FROM usage_event_key WHERE idempotency_key LIKE $1 ORDER BY 1",
        [f"{run}-%"],
    )
    assert sorted(k["idempotency_key"] for k in keys) == sorted(
        [f"{run}-new-{short.id}", f"{run}-new-{default.id}", f"{run}-old-{default.id}"]
    )
    # a resend of the pruned event is outside the window, not accepted again
    async with transaction():
        again = await ingest_events(
            tenant.admin,
            events=[
                EventIn(
                    customer_id=str(short.id),
                    name="x",
                    occurred_at=now - timedelta(days=100),
                    idempotency_key=f"{run}-old-{short.id}",
                )
            ],
            actor="test",
            retention_days=30,
        )
    assert again.items[0].code == "OUTSIDE_RETENTION"


async def test_pruning_deletes_in_batches_until_nothing_is_left(tenant: Tenant) -> None:
    now = utcnow()
    customer = await tenant.customer()
    await retention.set_retention_days(tenant.id, 30)
    run = uuid.uuid4().hex
    for i in range(5):
        await put(tenant, customer.id, now - timedelta(days=40 + i), f"{run}-old-{i}")
    await put(tenant, customer.id, now - timedelta(days=1), f"{run}-new")
    try:
        pruned = await retention.prune(default_days=400, now=now, batch=2)
    finally:
        await retention.set_retention_days(tenant.id, None)
    assert pruned.events >= 5 and pruned.rollups >= 5
    kept = await UsageEvent.filter(customer_id=customer.id).values_list(
        "idempotency_key", flat=True
    )
    assert kept == [f"{run}-new"]
    assert await UsageDaily.filter(customer_id=customer.id).count() == 1
