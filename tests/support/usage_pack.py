"""`usage_pack` (kept by triggers on `usage_daily`) against one packed afresh from the rollups."""

from __future__ import annotations

import uuid

from tortoise.connection import get_connection

_MISMATCHES = """
WITH fresh AS (
    SELECT customer_id, organization_id, array_agg(day ORDER BY day, name) AS days,
           array_agg(name::text ORDER BY day, name) AS names,
           array_agg(count ORDER BY day, name) AS counts,
           array_agg(last_at ORDER BY day, name) AS last_ats
    FROM usage_daily WHERE $1::uuid IS NULL OR organization_id = $1
    GROUP BY 1, 2
), kept AS (
    SELECT * FROM usage_pack WHERE $1::uuid IS NULL OR organization_id = $1
)
SELECT count(*) AS n, count(*) FILTER (WHERE k.customer_id IS NULL) AS missing,
       count(*) FILTER (WHERE f.customer_id IS NULL) AS extra
FROM fresh f FULL JOIN kept k USING (customer_id, organization_id)
WHERE (f.days, f.names, f.counts, f.last_ats) IS DISTINCT FROM
      (k.days, k.names, k.counts, k.last_ats)
"""


async def pack_mismatches(organization_id: uuid.UUID | None = None) -> dict[str, int]:
    """Customers whose packed rollups differ from their rollups (of one organization, or all):
    all counts zero when the pack is right."""
    rows = await get_connection("default").execute_query_dict(_MISMATCHES, [organization_id])
    return {k: int(v) for k, v in rows[0].items()}


async def assert_pack_matches(organization_id: uuid.UUID | None = None) -> None:
    """The pack equals one rebuilt from `usage_daily`."""
    assert await pack_mismatches(organization_id) == {"n": 0, "missing": 0, "extra": 0}
