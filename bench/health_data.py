"""Bulk data for `bench.health`: customers with workflows, stages, tasks and 90 days of usage
rollups, generated with set-based SQL (millions of rows in minutes, not through services).

Shapes match what the app writes: one workflow per customer on the organization's default
template (its stages and tasks copied), and `usage_daily` rows per active day and event name.
Each customer follows one of five patterns picked by a hash of its id: steady, fading,
recovering, occasional and silent, so scores spread over every level.
"""

from __future__ import annotations

import uuid
from typing import Any

CHUNK = 50_000

_CUSTOMERS = """
WITH ids AS (
    SELECT gen_random_uuid() AS id, i FROM generate_series($2::int, $3::int - 1) AS i
), c AS (
    INSERT INTO customer (id, organization_id, email, name, company, user_type,
        acquisition_channel, tags, properties, signed_up_at, workflow_status, created_at)
    SELECT id, $1, 'c' || i || '@bench.test', 'Customer ' || i, 'Bench',
           (ARRAY['startup', 'smb', 'mid_market', 'enterprise'])[1 + i % 4],
           (ARRAY['organic', 'referral', 'partner', 'paid_search'])[1 + (i / 4) % 4],
           '[]'::jsonb, '{}'::jsonb, now() - make_interval(days => 5 + i % 120),
           CASE WHEN abs(hashtext(id::text)) % 10 = 0 THEN 'COMPLETED' ELSE 'ACTIVE' END, now()
    FROM ids
    RETURNING id, organization_id, signed_up_at
), w AS (
    INSERT INTO workflow (id, organization_id, customer_id, template_id, status, points,
        badges, paused, reminders_enabled, started_at, completed_at, last_activity_at,
        version, progress, minutes_remaining, created_at)
    SELECT gen_random_uuid(), c.organization_id, c.id, $4,
           CASE WHEN abs(hashtext(c.id::text)) % 10 = 0 THEN 'COMPLETED' ELSE 'ACTIVE' END,
           0, '[]'::jsonb, false, true, c.signed_up_at,
           CASE WHEN abs(hashtext(c.id::text)) % 10 = 0 THEN now() END,
           now() - make_interval(days => abs(hashtext(c.id::text || 'a')) % 20), 0, 0, 0,
           now()
    FROM c
    RETURNING id, organization_id, status, started_at
), s AS (
    INSERT INTO workflow_stage (id, organization_id, workflow_id, key, name, description,
        position, status, unlock, reward_points, reward_badge, unlocked_at, completed_at)
    SELECT gen_random_uuid(), w.organization_id, w.id, d.key, d.name, '', d.position,
           CASE WHEN w.status = 'COMPLETED' OR d.position < abs(hashtext(w.id::text)) % 4
                THEN 'COMPLETED' ELSE 'UNLOCKED' END,
           '{}'::jsonb, 0, NULL, w.started_at, NULL
    FROM w CROSS JOIN unnest($5::text[], $6::text[], $7::int[]) AS d(key, name, position)
    RETURNING id, organization_id, workflow_id, key, status
)
INSERT INTO workflow_task (id, organization_id, workflow_id, stage_id, key, title,
    description, position, points, estimated_minutes, required, depends_on, help_resources,
    success_criterion, status, progress, failure_reason, attempts, started_at, completed_at,
    updated_at)
SELECT gen_random_uuid(), s.organization_id, s.workflow_id, s.id, t.key, t.key, '',
       t.position, 10, 5, t.required, '[]'::jsonb, '[]'::jsonb, NULL,
       CASE WHEN s.status = 'COMPLETED' THEN 'COMPLETED' ELSE 'AVAILABLE' END,
       0, NULL, 0, NULL, NULL, now()
FROM s JOIN unnest($8::text[], $9::text[], $10::int[], $11::bool[])
    AS t(stage, key, position, required) ON t.stage = s.key
"""

# Per (customer, day): active when a hash falls under the customer's pattern's chance that day.
# Patterns by hash % 5: steady, fading (active early only), recovering (late only),
# occasional, silent.
_USAGE = """
WITH c AS (
    SELECT id, abs(hashtext(id::text)) % 5 AS pattern FROM customer
    WHERE organization_id = $1 AND id > $2 AND id <= $3
      AND NOT EXISTS (SELECT 1 FROM usage_daily u
                      WHERE u.organization_id = $1 AND u.customer_id = customer.id)
), days AS (
    SELECT c.id, c.pattern, g.k, current_date - g.k AS day,
           abs(hashtext(c.id::text || ':' || g.k)) % 1000 AS h
    FROM c CROSS JOIN generate_series(0, $4::int - 1) AS g(k)
), active AS (
    SELECT * FROM days WHERE h < CASE pattern
        WHEN 0 THEN 600 WHEN 1 THEN CASE WHEN k > 20 THEN 700 ELSE 30 END
        WHEN 2 THEN CASE WHEN k < 15 THEN 700 ELSE 50 END WHEN 3 THEN 150 ELSE 0 END
), rows AS (
    SELECT id, day, 'login' AS name, 1 + h % 6 AS n FROM active
    UNION ALL
    SELECT id, day, (ARRAY['project_created', 'report_shared', 'teammate_invited',
                           'data_source_connected', 'integration_enabled',
                           'dashboard_created'])[1 + h % 6], 1
    FROM active WHERE h % 7 = 0
    UNION ALL SELECT id, day, 'support_ticket_opened', 1 FROM active WHERE h % 41 = 0
    UNION ALL SELECT id, day, 'nps_promoter', 1 FROM active WHERE h % 97 = 1
    UNION ALL SELECT id, day, 'nps_detractor', 1 FROM active WHERE h % 131 = 2
    UNION ALL SELECT id, day, 'payment_succeeded', 1 FROM days WHERE k % 30 = h % 30 AND h < 800
    UNION ALL SELECT id, day, 'payment_failed', 1 FROM days WHERE k % 30 = h % 30 AND h >= 950
)
INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at, last_at)
SELECT $1, id, day, name, n, day + time '09:00', day + time '09:00' + make_interval(mins => n)
FROM rows
"""


async def _execute(sql: str, args: list[Any]) -> None:
    from tortoise.connection import get_connection

    await get_connection("default").execute_query(sql, args)


async def add_customers(
    organization_id: uuid.UUID, template_id: uuid.UUID, template: Any, *, start: int, stop: int
) -> None:
    """Customers `start`..`stop - 1` with their workflows, stages and tasks (`template` is the
    default template's definition)."""
    from app.db import transaction

    stages = template.stages
    s_keys = [s.key for s in stages]
    s_names = [s.name for s in stages]
    s_pos = list(range(len(stages)))
    t_stage, t_key, t_pos, t_req = [], [], [], []
    for s in stages:
        for i, t in enumerate(s.tasks):
            t_stage.append(s.key)
            t_key.append(t.key)
            t_pos.append(i)
            t_req.append(t.required)
    for lo in range(start, stop, CHUNK):
        hi = min(stop, lo + CHUNK)
        async with transaction():
            await _execute(
                _CUSTOMERS,
                [organization_id, lo, hi, template_id, s_keys, s_names, s_pos,
                 t_stage, t_key, t_pos, t_req],
            )  # fmt: skip


async def add_usage(organization_id: uuid.UUID, *, days: int) -> None:
    """`days` days of rollups for every customer of the organization that has none."""
    from tortoise.connection import get_connection

    from app.db import transaction

    conn = get_connection("default")
    last = uuid.UUID(int=0)
    while True:
        ids = await conn.execute_query_dict(
            "SELECT id FROM customer WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            [organization_id, last, 10_000],
        )
        if not ids:
            break
        async with transaction():
            await _execute(_USAGE, [organization_id, last, ids[-1]["id"], days])
        last = ids[-1]["id"]
    await conn.execute_script(
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
