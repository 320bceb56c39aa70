"""Bulk data for `bench.health`: customers with workflows, stages, tasks and days of usage
rollups, generated inside PostgreSQL chunk by chunk (`generate_series` straight into the
tables, rows in customer order so the indexes grow at their ends).

Shapes match what the app writes: one workflow per customer on the organization's default
template, as the engine would leave it after the first `level` tasks (in template order) were
done: those tasks completed, the next one available, the rest locked; stages completed when
all their tasks are; the workflow's stored figures (progress, minutes remaining, current
stage, points) computed from the template the way the engine computes them. Usage:
`usage_daily` rows per active day and event name; each customer follows one of five patterns
picked by a hash of its id (steady, fading, recovering, occasional, silent), so scores spread
over every level.
"""

from __future__ import annotations

import uuid
from typing import Any

CHUNK = 50_000
USER_TYPES = ["startup", "smb", "mid_market", "enterprise"]
CHANNELS = ["organic", "referral", "partner", "paid_search"]

_GEN = """CREATE TEMP TABLE bench_gen ON COMMIT DROP AS
SELECT i, cid, gen_random_uuid() AS wid,
  now() - make_interval(days => 5 + i % 120, secs => abs(hashtext(cid::text)) % 86400)
      AS signed_up_at,
  least($3::int, abs(hashtext(cid::text || 'l')) % ($3 + 5)) AS level,
  make_interval(secs => 1800 + abs(hashtext(cid::text || 'p')) % (4 * 86400)) AS pace,
  abs(hashtext(cid::text)) % 5 AS pattern
FROM (SELECT i, gen_random_uuid() AS cid FROM generate_series($1::int, $2::int - 1) AS i) g
ORDER BY cid"""

_CUSTOMERS = """INSERT INTO customer (id, organization_id, email, name, company, user_type,
  acquisition_channel, tags, properties, signed_up_at, workflow_status, created_at)
SELECT cid, $1, 'c' || i || '@bench.test', 'Customer ' || i, 'Bench',
  ($3::text[])[1 + i % 4], ($4::text[])[1 + (i / 4) % 4], '[]'::jsonb, '{}'::jsonb,
  signed_up_at, CASE WHEN level = $2 THEN 'COMPLETED' ELSE 'ACTIVE' END, signed_up_at
FROM bench_gen ORDER BY cid"""

# $3.. per level (0..tasks): progress, minutes remaining, current stage key, points
_WORKFLOWS = """INSERT INTO workflow (id, organization_id, customer_id, template_id, status,
  points, badges, paused, reminders_enabled, started_at, completed_at, last_activity_at,
  version, progress, minutes_remaining, current_stage_key, created_at)
SELECT wid, $1, cid, $2, CASE WHEN level = $3 THEN 'COMPLETED' ELSE 'ACTIVE' END,
  ($7::int[])[level + 1], '[]'::jsonb, false, true, signed_up_at,
  CASE WHEN level = $3 THEN least(now(), signed_up_at + pace * level) END,
  least(now(), signed_up_at + pace * level), level,
  ($4::float8[])[level + 1], ($5::int[])[level + 1], ($6::text[])[level + 1], signed_up_at
FROM bench_gen ORDER BY cid"""

_STAGES = """INSERT INTO workflow_stage (id, organization_id, workflow_id, key, name,
  description, position, status, unlock, reward_points, reward_badge, unlocked_at,
  completed_at)
SELECT md5(g.wid::text || s.key)::uuid, $1, g.wid, s.key, s.name, '', s.position,
  CASE WHEN g.level > s.last_task THEN 'COMPLETED'
       WHEN g.level > s.first_task THEN 'IN_PROGRESS'
       WHEN g.level = s.first_task THEN 'UNLOCKED' ELSE 'LOCKED' END,
  '{}'::jsonb, s.reward, NULL,
  CASE WHEN g.level >= s.first_task THEN least(now(), g.signed_up_at + g.pace * s.first_task) END,
  CASE WHEN g.level > s.last_task THEN least(now(), g.signed_up_at + g.pace * (s.last_task + 1))
  END
FROM bench_gen g,
  unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[])
    AS s(key, name, position, first_task, last_task, reward)
ORDER BY g.wid, s.position"""

_TASKS = """INSERT INTO workflow_task (id, organization_id, workflow_id, stage_id, key, title,
  description, position, points, estimated_minutes, required, depends_on, help_resources,
  success_criterion, status, progress, failure_reason, attempts, started_at, completed_at,
  updated_at)
SELECT gen_random_uuid(), $1, g.wid, md5(g.wid::text || t.stage)::uuid, t.key, t.title, '',
  t.position, t.points, t.minutes, t.required, '[]'::jsonb, '[]'::jsonb, NULL,
  CASE WHEN t.n < g.level THEN 'COMPLETED' WHEN t.n = g.level THEN 'AVAILABLE'
       ELSE 'LOCKED' END,
  CASE WHEN t.n < g.level THEN 100 ELSE 0 END, NULL, 0,
  CASE WHEN t.n < g.level THEN least(now(), g.signed_up_at + g.pace * t.n) END,
  CASE WHEN t.n < g.level THEN least(now(), g.signed_up_at + g.pace * (t.n + 1)) END,
  least(now(), g.signed_up_at + g.pace * g.level)
FROM bench_gen g,
  unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::bool[],
         $9::int[])
    AS t(key, title, stage, position, points, minutes, required, n)
ORDER BY g.wid, t.n"""

# Per (customer, day): active when a hash falls under the customer's pattern's chance that day.
# Patterns: steady, fading (active early only), recovering (late only), occasional, silent.
_USAGE = """
WITH days AS (
    SELECT g.cid, g.pattern, d.k, current_date - d.k AS day,
           abs(hashtext(g.cid::text || ':' || d.k)) % 1000 AS h
    FROM bench_gen g CROSS JOIN generate_series(0, $2::int - 1) AS d(k)
), active AS (
    SELECT * FROM days WHERE h < CASE pattern
        WHEN 0 THEN 600 WHEN 1 THEN CASE WHEN k > 20 THEN 700 ELSE 30 END
        WHEN 2 THEN CASE WHEN k < 15 THEN 700 ELSE 50 END WHEN 3 THEN 150 ELSE 0 END
), rows AS (
    SELECT cid, day, 'login' AS name, 1 + h % 6 AS n FROM active
    UNION ALL
    SELECT cid, day, (ARRAY['project_created', 'report_shared', 'teammate_invited',
                            'data_source_connected', 'integration_enabled',
                            'dashboard_created'])[1 + h % 6], 1
    FROM active WHERE h % 7 = 0
    UNION ALL SELECT cid, day, 'support_ticket_opened', 1 FROM active WHERE h % 41 = 0
    UNION ALL SELECT cid, day, 'nps_promoter', 1 FROM active WHERE h % 97 = 1
    UNION ALL SELECT cid, day, 'nps_detractor', 1 FROM active WHERE h % 131 = 2
    UNION ALL SELECT cid, day, 'payment_succeeded', 1 FROM days WHERE k % 30 = h % 30 AND h < 800
    UNION ALL SELECT cid, day, 'payment_failed', 1 FROM days WHERE k % 30 = h % 30 AND h >= 950
)
INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at, last_at)
SELECT $1, cid, day, name, n, day + time '09:00', day + time '09:00' + make_interval(mins => n)
FROM rows ORDER BY cid, day, name
"""


def template_arrays(template: Any) -> dict[str, list[Any]]:
    """The template's stages and tasks as columns, and the workflow's stored figures after
    each number of tasks done (index = tasks done), as the engine computes them."""
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "s_key", "s_name", "s_pos", "s_first", "s_last", "s_reward",
            "t_key", "t_title", "t_stage", "t_pos", "t_points", "t_minutes", "t_req", "t_n",
        )
    }  # fmt: skip
    tasks: list[tuple[int, Any]] = []
    for i, stage in enumerate(template.stages):
        first = len(tasks)
        for j, task in enumerate(stage.tasks):
            for col, value in (
                ("t_key", task.key), ("t_title", task.title), ("t_stage", stage.key),
                ("t_pos", j), ("t_points", task.points), ("t_minutes", task.estimated_minutes),
                ("t_req", task.required), ("t_n", len(tasks)),
            ):  # fmt: skip
                out[col].append(value)
            tasks.append((i, task))
        for col, value in (
            ("s_key", stage.key), ("s_name", stage.name), ("s_pos", i), ("s_first", first),
            ("s_last", len(tasks) - 1), ("s_reward", stage.reward.points),
        ):  # fmt: skip
            out[col].append(value)
    counted = [n for n, (_, t) in enumerate(tasks) if t.required] or list(range(len(tasks)))
    for level in range(len(tasks) + 1):
        done = sum(1 for n in counted if n < level)
        completed = level == len(tasks)
        out.setdefault("progress", []).append(
            100.0 if completed else round(100 * done / len(counted), 2)
        )
        out.setdefault("minutes", []).append(
            sum(tasks[n][1].estimated_minutes for n in counted if n >= level)
        )
        current = next(
            (k for k, last in zip(out["s_key"], out["s_last"], strict=True) if last >= level),
            out["s_key"][-1],
        )
        out.setdefault("stage", []).append(current)
        rewards = sum(r for r, last in zip(out["s_reward"], out["s_last"], strict=True)
                      if last < level)  # fmt: skip
        out.setdefault("points", []).append(sum(t.points for _, t in tasks[:level]) + rewards)
    return out


async def add_customers(
    organization_id: uuid.UUID,
    template_id: uuid.UUID,
    template: Any,
    *,
    start: int,
    stop: int,
    days: int = 90,
) -> None:
    """Customers `start`..`stop - 1` with their workflows, stages, tasks and `days` days of
    usage rollups (`template` is the default template's definition), one transaction per
    chunk."""
    from tortoise.connection import get_connection

    from app.db import transaction

    a = template_arrays(template)
    n_tasks = len(a["t_key"])
    for lo in range(start, stop, CHUNK):
        hi = min(stop, lo + CHUNK)
        async with transaction():
            conn = get_connection("default")
            await conn.execute_query(_GEN, [lo, hi, n_tasks])
            await conn.execute_query(_CUSTOMERS, [organization_id, n_tasks, USER_TYPES, CHANNELS])
            await conn.execute_query(
                _WORKFLOWS,
                [organization_id, template_id, n_tasks, a["progress"], a["minutes"], a["stage"],
                 a["points"]],
            )  # fmt: skip
            await conn.execute_query(
                _STAGES,
                [organization_id, a["s_key"], a["s_name"], a["s_pos"], a["s_first"],
                 a["s_last"], a["s_reward"]],
            )  # fmt: skip
            await conn.execute_query(
                _TASKS,
                [organization_id, a["t_key"], a["t_title"], a["t_stage"], a["t_pos"],
                 a["t_points"], a["t_minutes"], a["t_req"], a["t_n"]],
            )  # fmt: skip
            await conn.execute_query(_USAGE, [organization_id, days])


async def analyze() -> None:
    """Fresh planner statistics for the tables a recompute reads."""
    from tortoise.connection import get_connection

    await get_connection("default").execute_script(
        "ANALYZE customer; ANALYZE workflow; ANALYZE workflow_task; "
        "ANALYZE workflow_stage; ANALYZE usage_daily; ANALYZE health_score"
    )


async def row_count(table: str) -> int:
    """The planner's estimate of a table's rows (after ANALYZE)."""
    from tortoise.connection import get_connection

    rows = await get_connection("default").execute_query_dict(
        "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = $1", [table]
    )
    return int(rows[0]["n"]) if rows else 0
