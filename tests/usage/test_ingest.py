"""Ingestion against a real PostgreSQL: per-item answers, idempotency, rollups, tenancy."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import date, datetime, timedelta

from tortoise.connection import get_connection

from app.db import transaction
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.usage import storage
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


async def bounds() -> list[tuple[str, datetime, datetime]]:
    rows = await get_connection("default").execute_query_dict(
        "SELECT name, lower_at, upper_at FROM usage_event_bounds() ORDER BY lower_at"
    )
    return [(r["name"], r["lower_at"], r["upper_at"]) for r in rows]


async def test_the_usage_event_table_is_partitioned_by_week(db: str) -> None:
    conn = get_connection("default")
    kind = await conn.execute_query_dict(
        "SELECT relkind::text AS relkind FROM pg_class WHERE relname = 'usage_event'"
    )
    assert kind[0]["relkind"] == "p"
    now = utcnow()
    parts = [b for b in await bounds() if b[2] > now - timedelta(days=400)]
    assert len(parts) >= 60
    for (_, _, upper), (_, lower, _) in itertools.pairwise(parts):
        assert upper == lower  # no gap, no overlap
    for name, lower, upper in parts:
        assert name == f"usage_event_w{lower:%Y%m%d}"
        assert lower.weekday() == 0 and upper - lower == timedelta(days=7)
    assert parts[0][1] <= now - timedelta(days=400) and parts[-1][2] >= now + timedelta(days=62)


async def test_weeks_meet_an_existing_month_without_overlapping_it(db: str) -> None:
    conn = get_connection("default")
    month = "usage_event_p209003"  # a month partition as the months before migration 0036
    await conn.execute_script(
        f"CREATE TABLE {month} PARTITION OF usage_event"
        " FOR VALUES FROM ('2090-03-01 00:00+00') TO ('2090-04-01 00:00+00')"
    )
    try:
        created = await storage.ensure_partitions(date(2090, 2, 20), date(2090, 4, 10))
        assert created == 5  # 2090-02-20 is a Monday, 2090-03-01 a Wednesday
        parts = [b for b in await bounds() if b[1].year == 2090]
        assert [(n, f"{lo:%m-%d}", f"{hi:%m-%d}") for n, lo, hi in parts] == [
            ("usage_event_w20900220", "02-20", "02-27"),
            ("usage_event_w20900227", "02-27", "03-01"),
            (month, "03-01", "04-01"),
            ("usage_event_w20900401", "04-01", "04-03"),
            ("usage_event_w20900403", "04-03", "04-10"),
            ("usage_event_w20900410", "04-10", "04-17"),
        ]
        assert await storage.ensure_partitions(date(2090, 2, 1), date(2090, 4, 16)) == 3
        for day in ("2090-02-26T23:59:59Z", "2090-03-01T00:00:00Z", "2090-03-31T23:59:59Z",
                    "2090-04-01T00:00:00Z", "2090-04-02T12:00:00Z"):  # fmt: skip
            await conn.execute_query(
                "INSERT INTO usage_event (organization_id, customer_id, name, occurred_at,"
                " idempotency_key) VALUES ($1, $1, 'x', $2, 'k')",
                [uuid.uuid4(), datetime.fromisoformat(day)],
            )
        where = await conn.execute_query_dict(
            "SELECT tableoid::regclass::text AS part FROM usage_event"
            " WHERE occurred_at >= '2090-01-01' ORDER BY occurred_at"
        )
        assert [w["part"] for w in where] == [
            "usage_event_w20900220", month, month, "usage_event_w20900401",
            "usage_event_w20900401",
        ]  # fmt: skip
    finally:
        for name, lower, _ in await bounds():
            if lower.year == 2090:
                await conn.execute_script(f'DROP TABLE "{name}"')


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
