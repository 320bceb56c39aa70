"""Bulk customers for `bench.analytics`: rows generated inside PostgreSQL, chunk by chunk.

Each customer gets its workflow, 4 stages and 13 tasks on the organization's default
template, as the engine would leave them (customers numbered in signup order, so rows lie in
signup order as in a real table): the first `level` tasks completed one `pace` apart
from signup, the next one available, the rest locked; stages and the workflow completed
accordingly. Signups spread over the last year, over 4 user types and 6 channels.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

USER_TYPES = ["startup", "smb", "mid_market", "enterprise"]
CHANNELS = ["organic", "paid_search", "referral", "partner", "outbound", "webinar"]
CHUNK = 50_000

_ID = "({prefix} || lpad(to_hex({n}), 12, '0'))::uuid"
"""Ids that grow with the customer number (a random prefix per run and table, then the number):
every index on them is appended to, not written all over, which keeps 13 million tasks
affordable on a small buffer cache."""

_GEN = f"""CREATE TEMP TABLE bench_gen ON COMMIT DROP AS
SELECT i, {_ID.format(prefix="$6::text", n="i::bigint")} AS cid,
  {_ID.format(prefix="$7::text", n="i::bigint")} AS wid,
  now() - make_interval(secs => ((($8 - i) + random()) / $8 * 365 * 86400)::int) AS signed_up_at,
  ($4::text[])[1 + floor(random() * array_length($4::text[], 1))::int] AS user_type,
  ($5::text[])[1 + floor(random() * array_length($5::text[], 1))::int] AS channel,
  least($3::int, floor(random() * ($3 + 5))::int) AS level,
  make_interval(secs => (1800 + random() * 2 * 86400)::int) AS pace
FROM generate_series($1::int, $2::int) AS i"""

_CUSTOMERS = """INSERT INTO customer (id, organization_id, email, name, company, user_type,
  acquisition_channel, tags, signed_up_at, created_at, workflow_status)
SELECT cid, $1, 'c' || i || '@' || $2 || '.bench', 'Customer ' || i, 'Bench', user_type,
  channel, '[]'::jsonb, signed_up_at, signed_up_at,
  CASE WHEN level = $3 THEN 'COMPLETED' ELSE 'ACTIVE' END FROM bench_gen"""

_WORKFLOWS = """INSERT INTO workflow (id, organization_id, customer_id, template_id, status,
  progress, minutes_remaining, current_stage_key,
  points, badges, paused, reminders_enabled, started_at, completed_at, last_activity_at,
  version, created_at)
SELECT wid, $1, cid, $2, CASE WHEN level = $3 THEN 'COMPLETED' ELSE 'ACTIVE' END,
  round(100.0 * level / $3, 2), ($3 - level) * 5, NULL,
  level * 25, '[]'::jsonb, false, true, signed_up_at,
  CASE WHEN level = $3 THEN least(now(), signed_up_at + pace * level) END,
  least(now(), signed_up_at + pace * level), level, signed_up_at
FROM bench_gen"""

_STAGES = f"""INSERT INTO workflow_stage (id, organization_id, workflow_id, key, name,
  description, position, status, unlock, reward_points, reward_badge, unlocked_at,
  completed_at)
SELECT {_ID.format(prefix="$7::text", n="g.i::bigint * 64 + s.position")}, $1, g.wid, s.key,
  s.name, '', s.position,
  CASE WHEN g.level >= s.last_task + 1 THEN 'COMPLETED'
       WHEN g.level > s.first_task THEN 'IN_PROGRESS'
       WHEN g.level = s.first_task THEN 'UNLOCKED' ELSE 'LOCKED' END,
  '{{}}'::jsonb, 0, NULL,
  CASE WHEN g.level >= s.first_task THEN least(now(), g.signed_up_at + g.pace * s.first_task) END,
  CASE WHEN g.level >= s.last_task + 1
       THEN least(now(), g.signed_up_at + g.pace * (s.last_task + 1)) END
FROM bench_gen g,
  unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[])
    AS s(key, name, position, first_task, last_task)"""

_TASKS = f"""INSERT INTO workflow_task (id, organization_id, workflow_id, stage_id, key, title,
  description, position, points, estimated_minutes, required, depends_on, help_resources,
  success_criterion, status, progress, failure_reason, attempts, started_at, completed_at,
  updated_at)
SELECT {_ID.format(prefix="$8::text", n="g.i::bigint * 64 + t.n")}, $1, g.wid,
  {_ID.format(prefix="$9::text", n="g.i::bigint * 64 + t.stage_position")}, t.key, t.title, '',
  t.position, t.points, 5, true, '[]'::jsonb, '[]'::jsonb, NULL,
  CASE WHEN t.n < g.level THEN 'COMPLETED' WHEN t.n = g.level THEN 'AVAILABLE'
       ELSE 'LOCKED' END,
  CASE WHEN t.n < g.level THEN 100 ELSE 0 END, NULL, 0,
  CASE WHEN t.n < g.level THEN least(now(), g.signed_up_at + g.pace * t.n) END,
  CASE WHEN t.n < g.level THEN least(now(), g.signed_up_at + g.pace * (t.n + 1)) END,
  least(now(), g.signed_up_at + g.pace * g.level)
FROM bench_gen g,
  unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[])
    AS t(key, title, stage_position, position, points, n)"""


def _template_arrays(definition: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    stages: list[list[Any]] = [[], [], [], [], []]
    tasks: list[list[Any]] = [[], [], [], [], [], []]
    n = 0
    for i, stage in enumerate(definition["stages"]):
        first = n
        for j, task in enumerate(stage["tasks"]):
            for column, value in zip(
                tasks,
                (task["key"], task["title"], i, i * 1000 + j, task.get("points", 0), n),
                strict=True,
            ):
                column.append(value)
            n += 1
        for column, value in zip(
            stages, (stage["key"], stage["name"], i, first, n - 1), strict=True
        ):
            column.append(value)
    return stages, tasks


async def generate(
    conn: Any,
    organization_id: uuid.UUID,
    slug: str,
    customers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Insert `customers` customers with their workflows, stages and tasks (asyncpg `conn`)."""
    template = await conn.fetchrow(
        "SELECT id, definition FROM workflow_template WHERE organization_id = $1 AND is_default",
        organization_id,
    )
    definition = template["definition"]
    definition = json.loads(definition) if isinstance(definition, str) else definition
    stages, tasks = _template_arrays(definition)
    total_tasks = len(tasks[0])
    assert total_tasks < 64 and len(stages[0]) < 64
    prefix = {table: secrets.token_hex(10) for table in ("customer", "workflow", "stage", "task")}
    for start in range(1, customers + 1, CHUNK):
        end = min(customers, start + CHUNK - 1)
        async with conn.transaction():
            await conn.execute(
                _GEN,
                start,
                end,
                total_tasks,
                USER_TYPES,
                CHANNELS,
                prefix["customer"],
                prefix["workflow"],
                customers,
            )
            await conn.execute(_CUSTOMERS, organization_id, slug, total_tasks)
            await conn.execute(_WORKFLOWS, organization_id, template["id"], total_tasks)
            await conn.execute(_STAGES, organization_id, *stages, prefix["stage"])
            await conn.execute(_TASKS, organization_id, *tasks, prefix["task"], prefix["stage"])
        if progress:
            progress(end)
