"""Large demos: customers beyond the simulated ones are copies of them, written in SQL.

The first `ORIGINALS` customers of a demo are played one by one through the engine, with
their usage, health history and milestones (`app.demo`). Each further customer copies one
of them: its own id, name, email and external id, and the original's whole history (workflow,
stages, tasks, badges, usage rollups, milestones, health history) moved by a whole number of
days, so every row stays on the same weekday and hour and each daily rollup on its day. A
journey the engine played, started on another day, is a journey the engine plays: the copy
holds a state the engine produces (a test replays a sample through the engine).

Copies are written chunk by chunk with `INSERT ... SELECT` from the originals' rows, one
transaction per chunk, on up to `workers` connections at once: the work is in PostgreSQL.
A chunk's customer ids share a random prefix and then count up, and the ids of a copy's
workflow, stages and tasks are its own id with the last two bytes replaced (`child_id`), so
each chunk appends to a few places of every index instead of touching random pages of
indexes far larger than the database's buffers; the prefixes spread chunks over the id space
(the health sweeps split it in halves). To keep a million-customer
database within reach of a laptop, a copy keeps only the recent part of what the system
itself does not keep for long: outbox events younger than the relay's retention (older ones
the relay prunes; the stream's sequence still counts them), raw usage events of the last
`RAW_DAYS` days with their idempotency keys (the daily rollups cover the whole history) and
health snapshots of the last `HEALTH_DAYS` days (today's comes from the daily job).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from tortoise.connection import get_connection

from app.analytics import maintain
from app.analytics import rules as analytics
from app.db import transaction
from app.health.rules import FACT_FIELDS, MOMENTS

ORIGINALS = 2000
"""Customers a demo simulates one by one; the rest copy them."""
SHIFT_DAYS = 4
"""A copy's history moves by up to this many days either way (never past now)."""
RAW_DAYS = 7
"""Raw usage events a copy keeps (the daily rollups keep everything)."""
HEALTH_DAYS = 3
"""Health history a copy keeps (its snapshots are the largest rows of a customer)."""
OUTBOX_HOURS = 72
"""Outbox history a copy keeps: what the relay's pruning leaves (outbox_retention_hours)."""
CHUNK = 10_000
DEMO_DAYS = 90

_ORIGINALS = """SELECT c.id, w.id AS workflow_id, c.signed_up_at, GREATEST(
  w.last_activity_at, w.completed_at,
  (SELECT max(occurred_at) FROM usage_event u WHERE u.organization_id = $1 AND u.customer_id = c.id),
  (SELECT max(achieved_at) FROM milestone_achievement a
     WHERE a.organization_id = $1 AND a.customer_id = c.id),
  (SELECT max(created_at) FROM outbox_event e WHERE e.organization_id = $1 AND e.stream = c.id),
  (SELECT max(taken_at) FROM health_snapshot h
     WHERE h.organization_id = $1 AND h.customer_id = c.id)) AS last_at
FROM customer c JOIN workflow w ON w.customer_id = c.id AND w.organization_id = c.organization_id
WHERE c.organization_id = $1 ORDER BY c.email"""  # noqa: E501

_MAP = """CREATE TEMP TABLE demo_clone (
  id uuid PRIMARY KEY, original uuid NOT NULL, original_workflow uuid NOT NULL,
  days int NOT NULL, name text NOT NULL, company text NOT NULL, email text NOT NULL,
  external_id text NOT NULL
) ON COMMIT DROP"""
_IN_ORDER = "\nORDER BY m.id"
"""Rows in the order of the copies' ids: each chunk appends to its part of every index."""
_MAP_COLUMNS = ["id", "original", "original_workflow", "days", "name", "company", "email",
                "external_id"]  # fmt: skip
_CONTRIBUTIONS = """CREATE TEMP TABLE demo_contribution (
  original uuid NOT NULL, days int NOT NULL, contribution jsonb NOT NULL, active boolean NOT NULL,
  PRIMARY KEY (original, days))"""

# The originals' rows, copied once per connection into temporary tables: the condition (or
# the whole query) and the names of its parameters ($1, $2, ... in order). Stages and tasks
# are numbered within their workflow, for their copies' ids.
_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer": ("id = ANY($1::uuid[])", ("ids",)),
    "workflow": ("id = ANY($1::uuid[])", ("workflows",)),
    "workflow_stage": (
        "SELECT *, row_number() OVER (PARTITION BY workflow_id ORDER BY position, key) AS n"
        " FROM workflow_stage WHERE workflow_id = ANY($1::uuid[])",
        ("workflows",),
    ),
    "workflow_task": (
        "SELECT t.*, row_number() OVER (PARTITION BY t.workflow_id ORDER BY t.position, t.key)"
        " AS n, s.n AS stage_n FROM workflow_task t"
        " JOIN demo_src_workflow_stage s ON s.id = t.stage_id"
        " WHERE t.workflow_id = ANY($1::uuid[])",
        ("workflows",),
    ),
    "event_stream": ("id = ANY($1::uuid[])", ("ids",)),
    "outbox_event": (
        "organization_id = $1 AND stream = ANY($2::uuid[]) AND created_at >= $3",
        ("org", "ids", "outbox_since"),
    ),
    "usage_daily": ("organization_id = $1 AND customer_id = ANY($2::uuid[])", ("org", "ids")),
    "usage_event": (
        "organization_id = $1 AND customer_id = ANY($2::uuid[]) AND occurred_at >= $3",
        ("org", "ids", "raw_since"),
    ),
    "milestone_achievement": (
        "organization_id = $1 AND customer_id = ANY($2::uuid[])",
        ("org", "ids"),
    ),
    "health_snapshot": ("organization_id = $1 AND customer_id = ANY($2::uuid[])", ("org", "ids")),
}

# $1 organization, $2 now (when used)
_SHIFT = "make_interval(days => m.days)"
_MOMENT_AT = ", ".join(str(FACT_FIELDS.index(name)) for name in MOMENTS)
_FACTS_MOVED = f"""CASE WHEN jsonb_typeof(h.facts) <> 'array' THEN h.facts ELSE (
    SELECT jsonb_agg(CASE WHEN x.i - 1 IN ({_MOMENT_AT}) AND jsonb_typeof(x.e) = 'string'
        THEN to_jsonb((x.e #>> '{{}}')::timestamp + {_SHIFT}) ELSE x.e END ORDER BY x.i)
    FROM jsonb_array_elements(h.facts) WITH ORDINALITY AS x(e, i)) END"""
"""A snapshot's facts with the moments its day counts start from moved with the copy."""
WORKFLOW, STAGE, TASK = 0x0100, 0x0200, 0x0300


def child_id(parent: str, kind: int, n: str = "0") -> str:
    """SQL: the id of a copy's row of `kind` (its n-th of that kind): the copy's id with its
    last two bytes replaced."""
    return (
        f"encode(overlay(uuid_send({parent}) PLACING int2send(({kind} + {n})::int2)"
        " FROM 15 FOR 2), 'hex')::uuid"
    )


_WF = child_id("m.id", WORKFLOW)
_COPY: list[str] = [
    f"""INSERT INTO customer (id, organization_id, external_id, email, name, company, user_type,
  acquisition_channel, tags, signed_up_at, created_at, workflow_status, properties)
SELECT m.id, $1, m.external_id, m.email, m.name, m.company, c.user_type, c.acquisition_channel,
  c.tags, c.signed_up_at + {_SHIFT}, c.created_at + {_SHIFT}, c.workflow_status, c.properties
FROM demo_clone m JOIN demo_src_customer c ON c.id = m.original""",
    f"""INSERT INTO workflow (id, organization_id, customer_id, template_id, status, points,
  badges, paused, reminders_enabled, started_at, completed_at, last_activity_at, version,
  created_at, current_stage_key, minutes_remaining, progress)
SELECT {_WF}, $1, m.id, w.template_id, w.status, w.points,
  (SELECT coalesce(jsonb_agg(CASE WHEN b ? 'awarded_at' THEN b || jsonb_build_object(
     'awarded_at', (b->>'awarded_at')::timestamptz + {_SHIFT}) ELSE b END ORDER BY n), '[]')
   FROM jsonb_array_elements(w.badges) WITH ORDINALITY AS x(b, n)),
  w.paused, w.reminders_enabled, w.started_at + {_SHIFT}, w.completed_at + {_SHIFT},
  w.last_activity_at + {_SHIFT}, w.version, w.created_at + {_SHIFT}, w.current_stage_key,
  w.minutes_remaining, w.progress
FROM demo_clone m JOIN demo_src_workflow w ON w.id = m.original_workflow""",
    f"""INSERT INTO workflow_stage (id, organization_id, workflow_id, key, name, description,
  position, status, unlock, reward_points, reward_badge, unlocked_at, completed_at)
SELECT {child_id("m.id", STAGE, "s.n")}, $1, {_WF},
  s.key, s.name, s.description, s.position, s.status, s.unlock, s.reward_points, s.reward_badge,
  s.unlocked_at + {_SHIFT}, s.completed_at + {_SHIFT}
FROM demo_clone m JOIN demo_src_workflow_stage s ON s.workflow_id = m.original_workflow""",
    f"""INSERT INTO workflow_task (id, organization_id, workflow_id, stage_id, key, title,
  description, position, points, estimated_minutes, required, depends_on, help_resources,
  success_criterion, status, progress, failure_reason, attempts, started_at, completed_at,
  updated_at)
SELECT {child_id("m.id", TASK, "t.n")}, $1, {_WF},
  {child_id("m.id", STAGE, "t.stage_n")}, t.key, t.title, t.description, t.position,
  t.points, t.estimated_minutes, t.required, t.depends_on, t.help_resources,
  t.success_criterion, t.status, t.progress, t.failure_reason, t.attempts,
  t.started_at + {_SHIFT}, t.completed_at + {_SHIFT}, t.updated_at + {_SHIFT}
FROM demo_clone m JOIN demo_src_workflow_task t ON t.workflow_id = m.original_workflow""",
    """INSERT INTO event_stream (id, organization_id, last_sequence)
SELECT m.id, $1, s.last_sequence
FROM demo_clone m JOIN demo_src_event_stream s ON s.id = m.original""",
    f"""INSERT INTO outbox_event (organization_id, customer_id, stream, sequence, type, payload,
  actor, created_at, published_at)
SELECT $1, m.id, m.id, e.sequence, e.type,
  replace(replace(e.payload::text, m.original::text, m.id::text), m.original_workflow::text,
    ({_WF})::text)::jsonb,
  CASE WHEN e.actor LIKE 'customer:%' THEN 'customer:' || m.email ELSE e.actor END,
  e.created_at + {_SHIFT}, e.published_at
FROM demo_clone m JOIN demo_src_outbox_event e ON e.stream = m.original
  AND e.created_at + {_SHIFT} >= $2::timestamptz - make_interval(hours => {OUTBOX_HOURS})""",
    f"""INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at,
  last_at)
SELECT $1, m.id, d.day + m.days, d.name, d.count, d.first_at + {_SHIFT}, d.last_at + {_SHIFT}
FROM demo_clone m JOIN demo_src_usage_daily d ON d.customer_id = m.original""",
    f"""WITH raw AS (
  SELECT m.id, u.name, u.occurred_at + {_SHIFT} AS occurred_at, u.received_at,
    replace(u.idempotency_key, m.original::text, m.id::text) AS idempotency_key, u.properties
  FROM demo_clone m JOIN demo_src_usage_event u ON u.customer_id = m.original
    AND u.occurred_at + {_SHIFT} >= $2::timestamptz - make_interval(days => {RAW_DAYS})
), keys AS (
  INSERT INTO usage_event_key (organization_id, idempotency_key, received_at)
  SELECT $1, idempotency_key, received_at FROM raw
)
INSERT INTO usage_event (organization_id, customer_id, name, occurred_at, received_at,
  idempotency_key, properties)
SELECT $1, id, name, occurred_at, received_at, idempotency_key, properties FROM raw
ORDER BY id""",
    f"""INSERT INTO milestone_achievement (organization_id, customer_id, milestone_key,
  occurrence, set_version, name, value, points, badge, achieved_at)
SELECT $1, m.id, a.milestone_key, a.occurrence, a.set_version, a.name, a.value, a.points,
  a.badge, a.achieved_at + {_SHIFT}
FROM demo_clone m JOIN demo_src_milestone_achievement a ON a.customer_id = m.original""",
    f"""INSERT INTO health_snapshot (organization_id, customer_id, day, kind, taken_at, score,
  level, confidence, components, facts, model_version)
SELECT $1, m.id, h.day + m.days, h.kind, h.taken_at + {_SHIFT}, h.score, h.level,
  h.confidence, h.components, {_FACTS_MOVED}, h.model_version
FROM demo_clone m JOIN demo_src_health_snapshot h ON h.customer_id = m.original
  AND h.day + m.days < ($2::timestamptz AT TIME ZONE 'UTC')::date
  AND h.day + m.days >= ($2::timestamptz AT TIME ZONE 'UTC')::date - {HEALTH_DAYS}""",
    f"""INSERT INTO analytics_customer (id, organization_id, contribution, active,
  last_activity_at, updated_at)
SELECT m.id, $1, k.contribution, k.active, w.last_activity_at + {_SHIFT}, $2
FROM demo_clone m JOIN demo_contribution k ON k.original = m.original AND k.days = m.days
JOIN demo_src_workflow w ON w.id = m.original_workflow""",
]


_COPY = [sql if sql.startswith("WITH") else sql + _IN_ORDER for sql in _COPY]


@dataclass(frozen=True)
class Original:
    """A simulated customer that copies are made of, and how far its history may move."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    earliest: int  # most days back
    latest: int  # most days forward


@dataclass(frozen=True)
class Copy:
    """One copy to write: who it is, whose history it takes, moved by how many days."""

    id: uuid.UUID
    original: Original
    days: int
    name: str
    company: str
    email: str
    external_id: str

    def record(self) -> tuple[Any, ...]:
        o = self.original
        return (self.id, o.id, o.workflow_id, self.days, self.name, self.company, self.email,
                self.external_id)  # fmt: skip


def _days(delta: timedelta) -> int:
    return int(delta.total_seconds() // 86400)


async def originals(organization_id: uuid.UUID, *, now: datetime) -> list[Original]:
    """The organization's customers as originals, with the moves their history allows."""
    rows = await get_connection("default").execute_query_dict(_ORIGINALS, [organization_id])
    oldest = now - timedelta(days=DEMO_DAYS)
    return [
        Original(
            r["id"],
            r["workflow_id"],
            max(0, min(SHIFT_DAYS, _days(r["signed_up_at"] - oldest))),
            max(0, min(SHIFT_DAYS, _days(now - r["last_at"]))),
        )
        for r in rows
    ]


def plan(
    rng: random.Random,
    pool: Sequence[Original],
    people: Sequence[tuple[str, str, str]],
    *,
    organization_id: uuid.UUID,
) -> list[Copy]:
    """A copy per person: an original drawn at random, moved by a random number of days.

    Ids count up within each chunk of `CHUNK` copies after a random prefix per chunk (then
    random bits, of which `child_id` replaces the last 16). They come from a generator seeded
    with the organization's id, not from `rng`: demos of the same seed and size in one
    database (one per organization) get ids of their own."""
    ids = random.Random(organization_id.int)
    out = []
    prefix = 0
    for i, (name, company, email) in enumerate(people):
        if i % CHUNK == 0:
            prefix = ids.getrandbits(16)
        o = pool[rng.randrange(len(pool))]
        number = prefix << 112 | (i % CHUNK) << 80 | ids.getrandbits(80)
        out.append(
            Copy(
                uuid.UUID(int=number, version=4),
                o,
                rng.randint(-o.earliest, o.latest),
                name,
                company,
                email,
                f"cus_{rng.getrandbits(48):012x}",
            )
        )
    return out


def _moved(facts: analytics.CustomerFacts, days: int) -> analytics.CustomerFacts:
    """The facts of a copy: every moment moved by `days` days."""
    by = timedelta(days=days)

    def at(value: datetime | None) -> datetime | None:
        return None if value is None else value + by

    return dataclasses.replace(
        facts,
        signed_up_at=facts.signed_up_at + by,
        completed_at=at(facts.completed_at),
        last_activity_at=facts.last_activity_at + by,
        stages=tuple(
            dataclasses.replace(s, unlocked_at=at(s.unlocked_at), completed_at=at(s.completed_at))
            for s in facts.stages
        ),
        tasks=tuple(
            dataclasses.replace(t, started_at=at(t.started_at), completed_at=at(t.completed_at))
            for t in facts.tasks
        ),
    )


async def contributions(
    copies: Sequence[Copy], *, now: datetime
) -> dict[tuple[uuid.UUID, int], tuple[dict[str, Any], bool]]:
    """The analytics contribution of each (original, days) the copies use, by the same
    rules as the rollup consumer."""
    pairs = {(c.original.id, c.days) for c in copies}
    facts = await maintain.load_facts(sorted({o for o, _ in pairs}))
    out = {}
    for original, days in pairs:
        moved = _moved(facts[original][1], days)
        out[(original, days)] = (analytics.entries(moved, now=now), analytics.is_active(moved, now))
    return out


async def _chunk(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    copies: Sequence[Copy],
    now: datetime,
    *,
    checked: bool,
) -> int:
    async with connection.transaction():
        # demo data can be re-seeded: do not wait for each chunk's WAL flush
        await connection.execute("SET LOCAL synchronous_commit TO off")
        if not checked:  # copies of consistent rows: skip the foreign-key triggers
            await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute(_MAP)
        await connection.copy_records_to_table(
            "demo_clone", records=[c.record() for c in copies], columns=_MAP_COLUMNS
        )
        await connection.execute("ANALYZE demo_clone")
        for statement in _COPY:
            args = (organization_id, now) if "$2" in statement else (organization_id,)
            await connection.execute(statement, *args)
    return len(copies)


async def write(
    organization_id: uuid.UUID,
    copies: Sequence[Copy],
    *,
    now: datetime,
    connect: dict[str, Any] | None,
    workers: int,
    progress: Callable[[int], None],
) -> None:
    """Write the copies and add their contributions to the analytics rollups."""
    table = await contributions(copies, now=now)
    records = [
        (o, d, json.dumps(contribution), active) for (o, d), (contribution, active) in table.items()
    ]
    chunks = [copies[i : i + CHUNK] for i in range(0, len(copies), CHUNK)]
    queue = list(reversed(chunks))

    pool = sorted({c.original for c in copies}, key=lambda o: o.id)
    shift = timedelta(days=SHIFT_DAYS)
    values: dict[str, Any] = {
        "ids": [o.id for o in pool],
        "workflows": [o.workflow_id for o in pool],
        "org": organization_id,
        "outbox_since": now - timedelta(hours=OUTBOX_HOURS) - shift,
        "raw_since": now - timedelta(days=RAW_DAYS) - shift,
    }

    async def drain(connection: asyncpg.Connection) -> None:
        for name, (where, params) in _SOURCES.items():
            await connection.execute(f"DROP TABLE IF EXISTS demo_src_{name}")
            query = where if where.startswith("SELECT") else f"SELECT * FROM {name} WHERE {where}"
            await connection.execute(
                f"CREATE TEMP TABLE demo_src_{name} AS {query}", *(values[p] for p in params)
            )
            await connection.execute(f"ANALYZE demo_src_{name}")
        await connection.execute("DROP TABLE IF EXISTS demo_contribution")
        await connection.execute(_CONTRIBUTIONS)
        await connection.copy_records_to_table(
            "demo_contribution",
            records=records,
            columns=["original", "days", "contribution", "active"],
        )
        checked = not await connection.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        while queue:
            progress(await _chunk(connection, organization_id, queue.pop(), now, checked=checked))
        await connection.execute("DROP TABLE demo_contribution")
        for name in _SOURCES:
            await connection.execute(f"DROP TABLE demo_src_{name}")

    if connect is None or workers <= 1:
        async with get_connection("default").acquire_connection() as connection:
            await drain(connection)
    else:
        opened = [await asyncpg.connect(**connect) for _ in range(workers)]
        try:
            await asyncio.gather(*(drain(c) for c in opened))
        finally:
            for c in opened:
                await c.close()
    delta: analytics.Delta = {}
    for (original, days), n in Counter((c.original.id, c.days) for c in copies).items():
        analytics.expand(table[(original, days)][0], n, delta)
    analytics.weekly(delta)
    async with transaction():
        await maintain.lock_organizations([organization_id], exclusive=False)
        await maintain.apply(organization_id, {k: v for k, v in delta.items() if any(v)})
