"""Shared helpers of the analytics tests: random histories, draining the outbox, table dumps."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.analytics import consumer
from app.db import transaction
from app.errors import DomainError
from app.events.channels import Published
from app.events.models import OutboxEvent
from app.onboarding import service
from app.onboarding.states import StageAction, TaskAction, TaskStatus
from tests.support.factories import Tenant

USER_TYPES = ("startup", "smb", "enterprise")
CHANNELS = ("organic", "paid_search", "referral")


async def drain(*tenants: Tenant, after: int = 0) -> int:
    """Hand these organizations' outbox events past id `after` to the analytics consumer, in
    batches of the consumer's size (mixing organizations); return the last id handled."""
    query = OutboxEvent.filter(id__gt=after, organization_id__in=[t.id for t in tenants])
    rows = await query.order_by("id").values(
        "id",
        "organization_id",
        "customer_id",
        "sequence",
        "type",
        "payload",
        "actor",
        "created_at",
    )
    for start in range(0, len(rows), 200):
        batch = [Published.of_row(r) for r in rows[start : start + 200]]
        batch = [e for e in batch if e.type.startswith(consumer.TYPES)]
        async with transaction():
            await consumer.handle(batch)
    return int(rows[-1]["id"]) if rows else after


async def dump(tenant: Tenant) -> dict[str, set[tuple[Any, ...]]]:
    """Every non-zero rollup row of the organization, without ids."""
    conn = get_connection("default")
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table in (
        "analytics_cohort",
        "analytics_cohort_week",
        "analytics_step",
        "analytics_step_week",
        "analytics_completion",
        "analytics_flight",
        "analytics_completion_day",
    ):
        rows = await conn.execute_query_dict(
            f"SELECT * FROM {table} WHERE organization_id = $1", [tenant.id]
        )
        kept = set()
        for r in rows:
            r.pop("id")
            values = tuple(tuple(v) if isinstance(v, list) else v for _, v in sorted(r.items()))
            if any(
                (any(v) if isinstance(v, tuple) else isinstance(v, int) and v)
                for k, v in sorted(r.items())
                if k not in ("template_version", "position")
            ):
                kept.add(values)
        out[table] = kept
    return out


async def random_history(
    tenant: Tenant, rng: random.Random, *, customers: int, moves: int, start: datetime
) -> list[Any]:
    """Customers with random segments and signup days, then random task moves and stage
    overrides at increasing times; refusals are part of the history."""
    people = []
    for i in range(customers):
        people.append(
            await tenant.customer(
                user_type=rng.choice(USER_TYPES),
                acquisition_channel=rng.choice(CHANNELS),
                signed_up_at=start + timedelta(days=rng.randrange(0, 30), minutes=i),
            )
        )
    now = start + timedelta(days=31)
    for _ in range(moves):
        who = rng.choice(people)
        now += timedelta(minutes=rng.randrange(1, 600))
        try:
            if rng.random() < 0.04:
                async with transaction():
                    await service.update_stage(
                        tenant.admin,
                        customer_id=str(who.id),
                        stage_key=rng.choice(["welcome", "setup", "features", "mastery"]),
                        action=rng.choice(list(StageAction)),
                        reason="random history",
                        now=now,
                    )
                continue
            tasks = await service.list_tasks(tenant.csm, str(who.id))
            open_ = [t for t in tasks if t.status not in (TaskStatus.LOCKED, TaskStatus.COMPLETED)]
            if not open_:
                continue
            task = rng.choice(open_)
            action = rng.choice(
                [TaskAction.COMPLETE] * 5
                + [TaskAction.START, TaskAction.PROGRESS, TaskAction.SKIP]
                + [TaskAction.FAIL, TaskAction.RETRY]
            )
            await tenant.act(
                who.id,
                task.key,
                action,
                now=now,
                progress=rng.randrange(0, 101),
                reason="random failure",
            )
        except DomainError:
            pass
    return people
