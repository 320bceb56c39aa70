"""Ingestion against a real PostgreSQL: per-item answers, idempotency, rollups, tenancy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from tortoise.connection import get_connection

from app.db import transaction
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.usage.models import UsageDaily, UsageEvent
from app.usage.rules import EventIn, ItemStatus
from app.usage.service import INGESTED, Ingested, ingest_events
from tests.support.factories import Tenant


async def ingest(tenant: Tenant, events: list[EventIn]) -> Ingested:
    async with transaction():
        return await ingest_events(tenant.admin, events=events, actor="test", retention_days=400)


def batch(customer: object, n: int, *, name: str = "project_created") -> list[EventIn]:
    run = uuid.uuid4().hex
    now = utcnow()
    return [
        EventIn(
            customer_id=str(customer),
            name=name,
            occurred_at=now - timedelta(minutes=i),
            idempotency_key=f"{run}-{i}",
            properties={"i": i},
        )
        for i in range(n)
    ]


async def test_the_usage_event_table_is_partitioned_by_month(db: str) -> None:
    conn = get_connection("default")
    kind = await conn.execute_query_dict(
        "SELECT relkind::text AS relkind FROM pg_class WHERE relname = 'usage_event'"
    )
    assert kind[0]["relkind"] == "p"
    parts = await conn.execute_query_dict(
        "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'usage_event'::regclass"
    )
    assert parts[0]["n"] >= 14


async def test_each_item_gets_its_own_answer_and_bad_items_do_not_block_the_others(
    tenant: Tenant,
) -> None:
    customer = await tenant.customer(external_id="acct-42")
    now = utcnow()
    items = [
        EventIn(
            customer_id=str(customer.id), name="report_shared", occurred_at=now, idempotency_key="a"
        ),
        EventIn(external_id="acct-42", name="report_shared", occurred_at=now, idempotency_key="b"),
        EventIn(external_id="nobody", name="report_shared", occurred_at=now, idempotency_key="c"),
        EventIn(
            customer_id=str(customer.id), name="Bad-Name", occurred_at=now, idempotency_key="d"
        ),
        EventIn(
            customer_id=str(customer.id),
            name="x",
            occurred_at=now + timedelta(minutes=6),
            idempotency_key="e",
        ),
        EventIn(
            customer_id=str(customer.id),
            name="x",
            occurred_at=now - timedelta(days=401),
            idempotency_key="f",
        ),
        EventIn(
            customer_id=str(customer.id),
            name="x",
            occurred_at=now,
            idempotency_key="g",
            properties={"s": "x" * 9000},
        ),
        EventIn(
            customer_id=str(customer.id),
            name="x",
            occurred_at=now,
            idempotency_key="h",
            properties={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
        ),
        EventIn(customer_id=str(customer.id), name="x", occurred_at=now, idempotency_key="a"),
        EventIn(customer_id="not-a-uuid", name="x", occurred_at=now, idempotency_key="i"),
    ]
    out = await ingest(tenant, items)
    got = [(i.status.value, i.code) for i in out.items]
    assert got == [
        ("ACCEPTED", None),
        ("ACCEPTED", None),
        ("REJECTED", "NOT_FOUND"),
        ("REJECTED", "INVALID_NAME"),
        ("REJECTED", "OCCURRED_IN_FUTURE"),
        ("REJECTED", "OUTSIDE_RETENTION"),
        ("REJECTED", "PROPERTIES_TOO_LARGE"),
        ("REJECTED", "PROPERTIES_TOO_DEEP"),
        ("DUPLICATE", None),
        ("REJECTED", "NOT_FOUND"),
    ]
    assert all(i.reason for i in out.items if i.status is ItemStatus.REJECTED)
    assert await UsageEvent.filter(customer_id=customer.id).count() == 2
    day = await UsageDaily.get(customer_id=customer.id, name="report_shared")
    assert day.count == 2


async def test_the_same_batch_twice_stores_each_event_once(tenant: Tenant) -> None:
    customer = await tenant.customer()
    events = batch(customer.id, 30)
    first = await ingest(tenant, events)
    again = await ingest(tenant, events)
    assert first.count(ItemStatus.ACCEPTED) == 30
    assert again.count(ItemStatus.DUPLICATE) == 30
    assert await UsageEvent.filter(customer_id=customer.id).count() == 30
    total = sum(d.count for d in await UsageDaily.filter(customer_id=customer.id))
    assert total == 30
    announced = await OutboxEvent.filter(organization_id=tenant.id, type=INGESTED)
    assert len(announced) == 1
    assert announced[0].payload["accepted"] == 30


async def test_twenty_concurrent_copies_of_one_batch_store_each_event_once(
    tenant: Tenant,
) -> None:
    customer = await tenant.customer()
    events = batch(customer.id, 200)
    answers = await asyncio.gather(*(ingest(tenant, events) for _ in range(20)))
    accepted = sum(a.count(ItemStatus.ACCEPTED) for a in answers)
    duplicates = sum(a.count(ItemStatus.DUPLICATE) for a in answers)
    assert (accepted, duplicates) == (200, 19 * 200)
    assert await UsageEvent.filter(customer_id=customer.id).count() == 200
    total = sum(d.count for d in await UsageDaily.filter(customer_id=customer.id))
    assert total == 200


async def test_concurrent_calls_over_overlapping_customers_all_land(tenant: Tenant) -> None:
    """Each call adds new rollups for some customers and to existing ones of others, in an
    order of its own: concurrent calls neither deadlock nor lose a count."""
    import random

    customers = [(await tenant.customer()).id for _ in range(12)]
    now = utcnow()
    rng = random.Random(7)

    def call(n: int) -> list[EventIn]:
        return [
            EventIn(
                customer_id=str(rng.choice(customers)),
                name=rng.choice(["login", "report_shared", "project_created"]),
                occurred_at=now - timedelta(days=rng.randint(0, 3), minutes=i),
                idempotency_key=f"c{n}-{i}-{uuid.uuid4().hex}",
            )
            for i in range(60)
        ]

    for _ in range(2):
        answers = await asyncio.gather(*(ingest(tenant, call(n)) for n in range(8)))
        assert all(i.status is ItemStatus.ACCEPTED for a in answers for i in a.items)
    assert await UsageEvent.filter(organization_id=tenant.id).count() == 2 * 8 * 60
    rolled = sum(d.count for d in await UsageDaily.filter(organization_id=tenant.id))
    assert rolled == 2 * 8 * 60


async def test_another_organizations_customer_is_not_found_and_nothing_changes(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await tenant.customer(external_id="shared-ext")
    await other_tenant.customer(external_id="other-ext")
    now = utcnow()
    out = await ingest(
        other_tenant,
        [
            EventIn(customer_id=str(theirs.id), name="x", occurred_at=now, idempotency_key="k1"),
            EventIn(external_id="shared-ext", name="x", occurred_at=now, idempotency_key="k2"),
        ],
    )
    assert [(i.status, i.code) for i in out.items] == [(ItemStatus.REJECTED, "NOT_FOUND")] * 2
    assert await UsageEvent.filter(customer_id=theirs.id).count() == 0
    assert await UsageDaily.filter(customer_id=theirs.id).count() == 0
    assert not await OutboxEvent.filter(organization_id=other_tenant.id, type=INGESTED).exists()


async def test_idempotency_keys_are_per_organization(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = await tenant.customer()
    theirs = await other_tenant.customer()
    now = utcnow()
    a = await ingest(
        tenant,
        [EventIn(customer_id=str(mine.id), name="x", occurred_at=now, idempotency_key="same")],
    )
    b = await ingest(
        other_tenant,
        [EventIn(customer_id=str(theirs.id), name="x", occurred_at=now, idempotency_key="same")],
    )
    assert a.items[0].status is b.items[0].status is ItemStatus.ACCEPTED
