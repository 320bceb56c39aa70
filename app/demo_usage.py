"""The demo's product usage and milestones.

A 90-day usage history for the demo's customers, consistent with their onboarding (the
event that completes a task is sent when the task was completed): a login on each active
day and feature events whose mix depends on the user type; customers are steady, fading,
recovering or never active. It goes through the real ingestion service, batch by batch.

Milestones are then evaluated by the real rules over the facts as they stood week by week
(`Facts.at`), the first achieving day found by bisection, and recorded through the same
unique-key insert as live evaluation. Their rewards are added to the workflows in one
statement (the live path goes through the engine one customer at a time, too slow for a
demo seeded in seconds); past milestone events are not written to the outbox history.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.db import transaction
from app.kit.tenancy import Organization
from app.milestones import service as milestones
from app.milestones.criteria import Facts
from app.milestones.definitions import MilestoneDef
from app.milestones.facts import load_facts
from app.milestones.rules import evaluate, occurrences
from app.usage.rules import EventIn
from app.usage.service import ingest_events

RETENTION_DAYS = 400
BATCH = 1000
CONCURRENT_BATCHES = 3

# user type: active-day chance, feature events per active day
MIXES: dict[str, tuple[float, dict[str, float]]] = {
    "startup": (0.55, {"project_created": 0.5, "dashboard_created": 0.25,
                       "report_shared": 0.15, "client_added": 0.2, "teammate_invited": 0.04,
                       "integration_enabled": 0.01}),
    "smb": (0.45, {"project_created": 0.35, "report_shared": 0.25, "client_added": 0.3,
                   "dashboard_created": 0.15, "teammate_invited": 0.05}),
    "mid_market": (0.5, {"report_shared": 0.35, "dashboard_created": 0.3,
                         "project_created": 0.3, "teammate_invited": 0.1,
                         "integration_enabled": 0.02}),
    "enterprise": (0.6, {"report_shared": 0.45, "dashboard_created": 0.4,
                         "teammate_invited": 0.2, "project_created": 0.25,
                         "integration_enabled": 0.03}),
}  # fmt: skip
TRAJECTORIES = {"steady": 0.5, "fading": 0.22, "recovering": 0.18, "never": 0.1}
TASK_EVENTS = {
    "connect_data_source": "data_source_connected",
    "invite_team": "teammate_invited",
    "add_client": "client_added",
    "set_up_integration": "integration_enabled",
}

_CUSTOMERS = """SELECT c.id, c.user_type, c.signed_up_at, w.last_activity_at
FROM customer c JOIN workflow w ON w.customer_id = c.id AND w.organization_id = c.organization_id
WHERE c.organization_id = $1 ORDER BY c.email"""
_TASKS = """SELECT w.customer_id, t.key, t.completed_at FROM workflow_task t
JOIN workflow w ON w.id = t.workflow_id
WHERE t.organization_id = $1 AND t.status = 'COMPLETED' AND t.key = ANY($2::text[])"""
# like every change to a workflow, it moves the version (unlocked steps check it)
_REWARD = """UPDATE workflow w SET points = w.points + r.points,
  badges = w.badges || r.badges, version = w.version + 1
FROM (SELECT customer_id, sum(points)::int AS points,
        coalesce(jsonb_agg(badge || jsonb_build_object('awarded_at', achieved_at))
          FILTER (WHERE badge IS NOT NULL), '[]'::jsonb) AS badges
      FROM milestone_achievement WHERE organization_id = $1 GROUP BY customer_id) AS r
WHERE w.organization_id = $1 AND w.customer_id = r.customer_id"""


@dataclass(frozen=True)
class _Customer:
    id: uuid.UUID
    user_type: str
    signed_up_at: datetime
    active: bool


def _trajectory(rng: random.Random, customer: _Customer) -> str:
    if not customer.active:
        return "never"
    names = list(TRAJECTORIES)
    return rng.choices(names, [TRAJECTORIES[n] for n in names])[0]


def _chance(trajectory: str, base: float, share: float) -> float:
    """The chance of activity on a day `share` (0-1) of the way from signup to now."""
    if trajectory == "fading":
        return base * max(0.0, 1.0 - 1.3 * share)
    if trajectory == "recovering":
        return base * (0.9 if share < 0.25 else 0.08 if share < 0.7 else 0.85)
    if trajectory == "never":
        return 0.0
    return base


def usage_history(
    rng: random.Random,
    customer: _Customer,
    completed: dict[str, datetime],
    *,
    now: datetime,
) -> list[EventIn]:
    """One customer's usage events from signup to now."""
    out: list[EventIn] = []

    def add(name: str, at: datetime, properties: dict[str, str] | None = None) -> None:
        key = f"demo-usage-{customer.id}-{len(out)}"
        who = str(customer.id)
        out.append(EventIn(name, at, key, customer_id=who, properties=properties))

    for task, name in TASK_EVENTS.items():
        if task in completed:
            add(name, completed[task])
    trajectory = _trajectory(rng, customer)
    base, mix = MIXES.get(customer.user_type, MIXES["smb"])
    base *= rng.lognormvariate(0, 0.25)
    life = max((now - customer.signed_up_at).total_seconds() / 86400, 1e-9)
    day = 0
    while True:
        start = customer.signed_up_at + timedelta(days=day)
        if start >= now:
            return out
        if rng.random() < _chance(trajectory, min(base, 0.95), day / life):
            at = min(now - timedelta(minutes=1), start + timedelta(hours=rng.uniform(0.2, 10)))
            add("login", at)
            for name, rate in mix.items():
                for _ in range(_poisson(rng, rate)):
                    when = min(
                        now - timedelta(minutes=1), at + timedelta(minutes=rng.uniform(1, 90))
                    )
                    if name == "report_shared":
                        add(name, when, {"audience": "client" if rng.random() < 0.3 else "team"})
                    else:
                        add(name, when)
        day += 1


def _poisson(rng: random.Random, rate: float) -> int:
    n, p = 0, rng.random()
    threshold = 2.718281828459045**-rate
    while p > threshold:
        n += 1
        p *= rng.random()
    return n


async def seed_usage(
    organization_id: uuid.UUID,
    *,
    now: datetime,
    seed: int = 11,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Ingest the demo's usage history through the ingestion service; returns the events."""
    rng = random.Random(seed)
    conn = get_connection("default")
    done: dict[uuid.UUID, dict[str, datetime]] = {}
    for r in await conn.execute_query_dict(_TASKS, [organization_id, list(TASK_EVENTS)]):
        done.setdefault(r["customer_id"], {})[r["key"]] = r["completed_at"]
    events: list[EventIn] = []
    for r in await conn.execute_query_dict(_CUSTOMERS, [organization_id]):
        customer = _Customer(
            r["id"], r["user_type"], r["signed_up_at"], r["last_activity_at"] > r["signed_up_at"]
        )
        events += usage_history(rng, customer, done.get(r["id"], {}), now=now)
    viewer = Viewer(subject="demo", organization_id=organization_id, role=Role.ADMIN)
    gate = asyncio.Semaphore(CONCURRENT_BATCHES)
    sent = 0

    async def send(batch: list[EventIn]) -> None:
        nonlocal sent
        async with gate, transaction():
            await ingest_events(
                viewer, events=batch, actor="demo", retention_days=RETENTION_DAYS, now=now
            )
        sent += len(batch)
        if progress is not None:
            progress(sent, len(events))

    await asyncio.gather(*(send(events[i : i + BATCH]) for i in range(0, len(events), BATCH)))
    return len(events)


def _first_time(
    f: Facts, m: MilestoneDef, occurrence: int, low: datetime, high: datetime
) -> datetime:
    """The earliest time in (low, high] at which `m` reached `occurrence`, to the day."""
    while high - low > timedelta(days=1):
        middle = low + (high - low) / 2
        if occurrences(m, f.at(middle)) >= occurrence:
            high = middle
        else:
            low = middle
    return high


async def seed_milestones(organization_id: uuid.UUID, *, now: datetime) -> int:
    """Evaluate the demo's milestones over its history, week by week; returns achievements."""
    current = await milestones.current_set(Organization(organization_id))
    if current is None:
        return 0
    ids = [
        r["id"]
        for r in await get_connection("default").execute_query_dict(
            "SELECT id FROM customer WHERE organization_id = $1", [organization_id]
        )
    ]
    facts = await load_facts(organization_id, ids, current.definition, now=now, history=True)
    found: list[milestones.Achieved] = []
    for cid, f in facts.items():
        reached = dict.fromkeys((m.key for m in current.definition.milestones), 0)
        previous = f.signed_up_at
        step = f.signed_up_at
        while step < now:
            step = min(now, step + timedelta(days=7))
            then = f.at(step)
            for m in current.definition.milestones:
                if reached[m.key] and not m.repeatable:
                    continue  # once-only, already reached
                times = min(occurrences(m, then), milestones.MAX_NEW_PER_EVALUATION)
                for n in range(reached[m.key] + 1, times + 1):
                    at = _first_time(f, m, n, previous, step)
                    value = evaluate(m, f.at(at)).current
                    found.append(milestones.Achieved(cid, m, n, value, at))
                reached[m.key] = max(reached[m.key], times)
            previous = step
    async with transaction():
        recorded = await milestones.record_achievements(organization_id, current.version, found)
        await get_connection("default").execute_query(_REWARD, [organization_id])
    return len(recorded)
