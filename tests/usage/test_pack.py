"""`usage_pack` follows every write of `usage_daily`: inserts and upserts in any day order,
deletes, and writes under `session_replication_role = replica`."""

from __future__ import annotations

from datetime import date, timedelta

from tortoise.connection import get_connection

from app.db import transaction
from app.kit.clock import utcnow
from tests.support.factories import Tenant
from tests.support.usage_pack import assert_pack_matches

_UPSERT = """INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at,
    last_at)
SELECT $1, c, d, n, k, $5, $5 FROM unnest($2::uuid[], $3::date[], $4::text[]) AS u(c, d, n),
    LATERAL (SELECT 2::bigint AS k) kk
ON CONFLICT (organization_id, customer_id, day, name) DO UPDATE
SET count = usage_daily.count + EXCLUDED.count,
    last_at = greatest(usage_daily.last_at, EXCLUDED.last_at)"""


async def upsert(tenant: Tenant, rows: list[tuple[object, date, str]]) -> None:
    await get_connection("default").execute_query(
        _UPSERT,
        [
            tenant.id,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            utcnow(),
        ],
    )


async def test_the_pack_follows_writes_in_any_order(tenant: Tenant) -> None:
    a, b = (await tenant.customer()).id, (await tenant.customer()).id
    today = utcnow().date()
    day = lambda n: today - timedelta(days=n)  # noqa: E731
    await upsert(tenant, [(a, day(0), "login"), (b, day(3), "login")])
    await assert_pack_matches(tenant.id)
    # older days after newer ones, a name between existing ones, repeats of existing keys
    await upsert(tenant, [(a, day(5), "login"), (a, day(0), "a_first"), (b, day(3), "login")])
    await upsert(tenant, [(a, day(2), "report"), (a, day(0), "login"), (b, day(9), "x")])
    await upsert(tenant, [(b, day(0), "login"), (b, day(3), "b"), (a, day(7), "login")])
    await assert_pack_matches(tenant.id)
    counts = await get_connection("default").execute_query_dict(
        "SELECT counts FROM usage_pack WHERE customer_id = $1", [b]
    )
    assert sum(counts[0]["counts"]) == 2 * 5  # (3, login) twice, (3, b), (9, x), (0, login)
    # deletes: one middle element, then every row of a customer
    await get_connection("default").execute_query(
        "DELETE FROM usage_daily WHERE customer_id = $1 AND day = $2", [a, day(2)]
    )
    await assert_pack_matches(tenant.id)
    await get_connection("default").execute_query(
        "DELETE FROM usage_daily WHERE customer_id = $1", [b]
    )
    await assert_pack_matches(tenant.id)
    gone = await get_connection("default").execute_query_dict(
        "SELECT count(*) AS n FROM usage_pack WHERE customer_id = $1", [b]
    )
    assert gone[0]["n"] == 0
    # bulk copies may skip ordinary triggers; the pack's fire always
    async with transaction() as conn:
        await conn.execute_script("SET LOCAL session_replication_role = replica")
        await upsert(tenant, [(b, day(1), "login"), (a, day(1), "login")])
    await assert_pack_matches(tenant.id)
