"""The set-based rebuild: many customers' contributions computed inside PostgreSQL at once.

The same contribution `rules.entries` computes for one customer in Python, written in SQL
over a chunk of customers: their facts go into temporary tables, each customer's compact
contribution (the JSON the consumer subtracts on its next change) is saved, and the rollup
rows are added from grouped sums, one statement per table. A test compares both ways on
randomized histories; the consumer keeps using the Python function, one customer at a time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app.analytics.histogram import BOUNDS, BUCKETS, WEEKS
from app.analytics.rules import (
    COHORT,
    COHORT_COLUMNS,
    COHORT_WEEK,
    COMPLETION,
    COMPLETION_DAY,
    FLIGHT,
    IDLE_DAYS,
    STEP,
    STEP_COLUMNS,
    STEP_WEEK,
)

_NEGATED = ", ".join(str(-b) for b in reversed(BOUNDS))


def bucket_sql(seconds: str) -> str:
    """`histogram.bucket_of` in SQL: the number of bounds below the duration, less one, so a
    duration equal to a bound falls in the bucket below it (width_bucket counts bounds <= x,
    hence the negated, reversed bounds)."""
    return f"greatest(0, {BUCKETS - 1} - width_bucket(-({seconds}), ARRAY[{_NEGATED}]::numeric[]))"


def _span(later: str, earlier: str) -> str:
    """Exact seconds between two timestamps (numeric, as Python's timedelta has them)."""
    return bucket_sql(f"extract(epoch FROM {later}) - extract(epoch FROM {earlier})")


def _week(day: str) -> str:
    return f"({day} - (extract(isodow FROM {day})::int - 1))"


_PAGE_HEAD = """CREATE TEMP TABLE ax_page ON COMMIT DROP AS
SELECT c.id, c.signed_up_at FROM customer c
WHERE c.organization_id = $1
  AND NOT EXISTS (SELECT 1 FROM analytics_customer a WHERE a.id = c.id)"""
BY_PAGES = f"""{_PAGE_HEAD}
  AND c.ctid >= format('(%s,0)', $2::bigint)::tid AND c.ctid < format('(%s,0)', $3::bigint)::tid"""
"""The customers without a contribution stored in a range of the customer table's pages: a
chunk reads their workflows, stages and tasks where they lie, in the order they were written."""
BY_SIGNUP = f"""{_PAGE_HEAD} AND (c.signed_up_at, c.id) > ($2, $3)
ORDER BY c.signed_up_at, c.id LIMIT $4"""
"""The next customers without a contribution in signup order (the sweep after the page ranges:
rows an update moved behind the ranges, customers added meanwhile)."""


FACTS = f"""CREATE TEMP TABLE ax_c ON COMMIT DROP AS
SELECT x.*, 0 AS started, {_week("x.day")} AS signup_week,
  CASE WHEN x.done_bucket >= 0
    THEN least(({_week("x.finished")} - {_week("x.day")}) / 7, {WEEKS - 1}) ELSE -1
  END AS done_week
FROM (SELECT c.id, c.signed_up_at, (c.signed_up_at AT TIME ZONE 'UTC')::date AS day, c.user_type,
  c.acquisition_channel AS channel, t.version AS template_version, w.id AS wid,
  w.status, w.completed_at, w.points, coalesce(jsonb_array_length(w.badges), 0) AS badges,
  w.last_activity_at, w.last_activity_at >= $2::timestamptz - interval '{IDLE_DAYS} days' AS active,
  CASE WHEN w.status = 'COMPLETED' AND w.completed_at IS NOT NULL
       THEN {_span("w.completed_at", "c.signed_up_at")} ELSE -1 END AS done_bucket,
  (w.completed_at AT TIME ZONE 'UTC')::date AS finished
FROM ax_page p
JOIN customer c ON c.id = p.id
JOIN workflow w ON w.customer_id = c.id AND w.organization_id = c.organization_id
JOIN workflow_template t ON t.id = w.template_id
WHERE c.organization_id = $1) AS x"""

STAGES = """CREATE TEMP TABLE ax_s ON COMMIT DROP AS
SELECT s.id, s.workflow_id AS wid, s.key, s.position, s.status, s.unlocked_at, s.completed_at
FROM ax_c c JOIN workflow_stage s ON s.workflow_id = c.wid AND s.organization_id = $1"""

TASKS = """CREATE TEMP TABLE ax_t ON COMMIT DROP AS
SELECT t.workflow_id AS wid, s.key AS stage_key, s.unlocked_at AS stage_unlocked_at, t.key,
  t.position, t.status, t.attempts, t.started_at, t.completed_at
FROM ax_c c JOIN workflow_task t ON t.workflow_id = c.wid AND t.organization_id = $1
JOIN ax_s s ON s.id = t.stage_id"""

STARTED = """ANALYZE ax_s; ANALYZE ax_t;
UPDATE ax_c c SET started = 1 FROM (SELECT DISTINCT wid FROM ax_t
  WHERE status IN ('IN_PROGRESS', 'COMPLETED', 'SKIPPED', 'FAILED') OR started_at IS NOT NULL
) AS m WHERE m.wid = c.wid"""

HERE = """CREATE TEMP TABLE ax_here ON COMMIT DROP AS
WITH cur AS (
  SELECT DISTINCT ON (s.wid) s.wid, s.key FROM ax_s s JOIN ax_c c ON c.wid = s.wid
  WHERE c.status <> 'COMPLETED' AND s.status <> 'COMPLETED' ORDER BY s.wid, s.position
), task AS (
  SELECT DISTINCT ON (t.wid) t.wid, t.key FROM ax_t t JOIN cur ON cur.wid = t.wid
  WHERE t.stage_key = cur.key AND t.status NOT IN ('COMPLETED', 'SKIPPED')
  ORDER BY t.wid, t.position
)
SELECT cur.wid, cur.key AS stage_key, coalesce(task.key, '') AS task_key
FROM cur LEFT JOIN task ON task.wid = cur.wid"""

_CELL = "c.id AS cid, c.day, c.user_type, c.channel, c.template_version"
STEPS = f"""CREATE TEMP TABLE ax_step ON COMMIT DROP AS
SELECT {_CELL}, s.key AS stage_key, ''::text AS task_key, s.position * 1000 - 1 AS position,
  (s.status <> 'LOCKED')::int AS f0, (s.status = 'COMPLETED')::int AS f1,
  coalesce(k.skipped, 0) AS f2, coalesce(k.failed, 0) AS f3,
  (h.wid IS NOT NULL AND c.active)::int AS f4, (h.wid IS NOT NULL AND NOT c.active)::int AS f5,
  CASE WHEN s.status = 'COMPLETED' AND s.completed_at IS NOT NULL AND s.unlocked_at IS NOT NULL
       THEN {_span("s.completed_at", "s.unlocked_at")} ELSE -1 END AS spent,
  CASE WHEN h.wid IS NOT NULL
       THEN {_span("coalesce(s.unlocked_at, c.signed_up_at)", "c.signed_up_at")} ELSE -1
  END AS entered
FROM ax_s s JOIN ax_c c ON c.wid = s.wid
LEFT JOIN (SELECT wid, stage_key, max((status = 'SKIPPED')::int) AS skipped,
    max((status = 'FAILED' OR attempts > 0)::int) AS failed FROM ax_t GROUP BY wid, stage_key
  ) k ON k.wid = s.wid AND k.stage_key = s.key
LEFT JOIN ax_here h ON h.wid = s.wid AND h.stage_key = s.key
UNION ALL
SELECT {_CELL}, t.stage_key, t.key, t.position,
  (t.status <> 'LOCKED')::int, (t.status = 'COMPLETED')::int, (t.status = 'SKIPPED')::int,
  (t.status = 'FAILED' OR t.attempts > 0)::int,
  (h.task_key IS NOT DISTINCT FROM t.key AND c.active)::int,
  (h.task_key IS NOT DISTINCT FROM t.key AND NOT c.active)::int,
  CASE WHEN t.status = 'COMPLETED' AND t.completed_at IS NOT NULL
         AND coalesce(t.started_at, t.stage_unlocked_at) IS NOT NULL
       THEN {_span("t.completed_at", "coalesce(t.started_at, t.stage_unlocked_at)")} ELSE -1
  END,
  -1
FROM ax_t t JOIN ax_c c ON c.wid = t.wid LEFT JOIN ax_here h ON h.wid = t.wid"""

CONTRIBUTIONS = """INSERT INTO analytics_customer
  (id, organization_id, contribution, active, last_activity_at, updated_at)
SELECT c.id, $1::uuid, jsonb_build_object(
    'cell', jsonb_build_array(c.day::text, c.user_type, c.channel, c.template_version),
    'cohort', jsonb_build_array(c.started, (c.status = 'COMPLETED')::int, c.active::int,
      c.points, c.badges, c.done_bucket, c.done_week),
    'steps', coalesce(st.steps, '[]'::jsonb),
    'completion', CASE WHEN c.done_bucket >= 0
      THEN jsonb_build_array(c.finished::text, c.signup_week::text, c.done_bucket)
      ELSE '[]'::jsonb END),
  c.active, c.last_activity_at, $2::timestamptz
FROM ax_c c LEFT JOIN (
  SELECT cid, jsonb_agg(jsonb_build_array(stage_key, task_key, position,
    jsonb_build_array(f0, f1, f2, f3, f4, f5), spent, entered)) AS steps
  FROM ax_step GROUP BY cid) st ON st.cid = c.id
UNION ALL
SELECT p.id, $1::uuid, '{}'::jsonb, false, $2::timestamptz, $2::timestamptz FROM ax_page p
WHERE NOT EXISTS (SELECT 1 FROM ax_c c WHERE c.id = p.id)"""


def _hist(expr: str, size: int) -> str:
    """A histogram's bucket columns: how many rows have `expr` equal to each bucket."""
    return ", ".join(f"count(*) FILTER (WHERE {expr} = {i})" for i in range(size))


_COHORT_VALUES = (
    "count(*), sum(started), sum((status = 'COMPLETED')::int), sum(active::int), sum(points),"
    f" sum(badges), {_hist('done_bucket', BUCKETS)}, {_hist('done_week', WEEKS)}"
)
_STEP_SUMS = ", ".join(f"sum(f{i})" for i in range(len(STEP_COLUMNS)))
_STEP_ANY = " + ".join(f"sum(f{i})" for i in range(len(STEP_COLUMNS)))
_STEP_KEYS = "user_type, channel, template_version, stage_key, task_key, position"

GROUPED: dict[str, str] = {
    COHORT: f"SELECT day, user_type, channel, template_version, {_COHORT_VALUES}"
    " FROM ax_c GROUP BY 1, 2, 3, 4",
    COHORT_WEEK: f"SELECT signup_week, user_type, channel, template_version, {_COHORT_VALUES}"
    " FROM ax_c GROUP BY 1, 2, 3, 4",
    STEP: f"SELECT day, {_STEP_KEYS}, {_STEP_SUMS}, {_hist('spent', BUCKETS)}"
    f" FROM ax_step GROUP BY day, {_STEP_KEYS}"
    f" HAVING {_STEP_ANY} + count(*) FILTER (WHERE spent >= 0) > 0",
    STEP_WEEK: f"SELECT {_week('day')}, {_STEP_KEYS}, {_STEP_SUMS}, {_hist('spent', BUCKETS)}"
    f" FROM ax_step GROUP BY 1, {_STEP_KEYS}"
    f" HAVING {_STEP_ANY} + count(*) FILTER (WHERE spent >= 0) > 0",
    FLIGHT: "SELECT day, user_type, channel, template_version, stage_key,"
    f" {_hist('entered', BUCKETS)} FROM ax_step WHERE entered >= 0 GROUP BY 1, 2, 3, 4, 5",
    COMPLETION_DAY: "SELECT finished, user_type, channel, template_version, count(*),"
    f" {_hist('done_bucket', BUCKETS)} FROM ax_c WHERE done_bucket >= 0 GROUP BY 1, 2, 3, 4",
    COMPLETION: "SELECT finished, user_type, channel, template_version, signup_week, count(*),"
    f" {_hist('done_bucket', BUCKETS)} FROM ax_c WHERE done_bucket >= 0 GROUP BY 1, 2, 3, 4, 5",
}
"""Per rollup table: a chunk's rows, key columns then counters in the table's layout."""
assert len(COHORT_COLUMNS) == 6


async def add_chunk(
    conn: BaseDBAsyncClient,
    organization_id: uuid.UUID,
    *,
    now: datetime,
    page: tuple[str, list[Any]],
    upserts: dict[str, tuple[str, str]],
) -> list[dict[str, Any]]:
    """Add the customers `page` selects (BY_PAGES or BY_SIGNUP with its parameters after the
    organization) to the rollups and save their contributions; return the last one's (id,
    signed_up_at) in signup order with the chunk's size `n` (empty when it selected none).

    The caller holds the organization's exclusive lock, in its transaction. `upserts` gives
    per rollup table its INSERT head and its ON CONFLICT clause (adding to existing rows).
    """
    await conn.execute_query(page[0], [organization_id, *page[1]])
    last = await conn.execute_query_dict(
        "SELECT id, signed_up_at, (SELECT count(*) FROM ax_page) AS n FROM ax_page"
        " ORDER BY signed_up_at DESC, id DESC LIMIT 1"
    )
    if not last:
        await conn.execute_script("DROP TABLE ax_page")
        return []
    await conn.execute_query(FACTS, [organization_id, now])
    await conn.execute_script("ANALYZE ax_c")
    await conn.execute_query(STAGES, [organization_id])
    await conn.execute_query(TASKS, [organization_id])
    await conn.execute_script(STARTED)
    await conn.execute_script(HERE)
    await conn.execute_script(STEPS)
    await conn.execute_query(CONTRIBUTIONS, [organization_id, now])
    for kind, (head, conflict) in upserts.items():
        await conn.execute_query(
            f"{head} SELECT $1::uuid, g.* FROM ({GROUPED[kind]}) AS g {conflict}",
            [organization_id],
        )
    await conn.execute_script("DROP TABLE ax_page, ax_c, ax_s, ax_t, ax_here, ax_step")
    return last
