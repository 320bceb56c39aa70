"""The health summary kept by triggers on `health_score` matches a count from scratch after
randomized recomputes, overrides, edits and deletions, in two organizations; distributions
and the analytics slot read it."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.db import transaction
from app.health import overrides, recompute, service
from app.health.models import HealthScore
from app.health.rules import HealthLevel
from app.kit.clock import utcnow
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.health.test_compute import add_usage
from tests.support.factories import Tenant

FROM_SCRATCH = """
SELECT organization_id, segment, channel, level, least(floor(score / 10), 9)::int AS bucket,
       count(*)::int AS customers, sum(score::numeric(24, 6)) AS score_sum
FROM health_score WHERE organization_id = ANY($1::uuid[]) GROUP BY 1, 2, 3, 4, 5
"""
SUMMARY = """
SELECT organization_id, segment, channel, level, bucket::int, customers, score_sum
FROM health_summary WHERE organization_id = ANY($1::uuid[]) AND customers <> 0
"""


def _keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[int, Decimal]]:
    return {
        (r["organization_id"], r["segment"], r["channel"], r["level"], r["bucket"]): (
            int(r["customers"]),
            Decimal(r["score_sum"]).quantize(Decimal("0.000001")),
        )
        for r in rows
    }


async def _check(orgs: list[Any]) -> None:
    conn = get_connection("default")
    want = _keyed(await conn.execute_query_dict(FROM_SCRATCH, [orgs]))
    got = _keyed(await conn.execute_query_dict(SUMMARY, [orgs]))
    assert got == want
    negative = await conn.execute_query_dict(
        "SELECT count(*) AS n FROM health_summary WHERE customers < 0", []
    )
    assert negative[0]["n"] == 0


async def _customers(tenant: Tenant, rng: random.Random, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        c = await tenant.customer(
            user_type=rng.choice(["smb", "enterprise", "standard"]),
            acquisition_channel=rng.choice(["ads", "direct"]),
        )
        for day in range(rng.randrange(0, 25), 25, rng.choice([1, 3])):
            await add_usage(tenant, c, "login", days_ago=day, count=rng.randrange(1, 4))
        out.append(c)
    return out


async def test_summary_matches_a_count_from_scratch_after_random_changes(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    rng = random.Random(7)
    orgs = [tenant.id, other_tenant.id]
    people = {t.id: (t, await _customers(t, rng, 8)) for t in (tenant, other_tenant)}
    for t, _ in people.values():
        await recompute.recompute_all(t.id)
    await _check(orgs)
    conn = get_connection("default")
    for step in range(40):
        t, customers = people[rng.choice(orgs)]
        c = rng.choice(customers)
        kind = rng.choice(["usage", "override", "clear", "edit", "delete", "bulk", "recompute"])
        if kind == "usage":
            await add_usage(t, c, "login", days_ago=0, count=rng.randrange(1, 30))
            async with transaction():
                await recompute.recompute_customers(t.id, [c.id], now=utcnow())
        elif kind == "override" and await HealthScore.exists(customer_id=c.id):
            score = rng.choice([None, 3.5, 99.0])
            level = rng.choice([None, HealthLevel.AT_RISK]) if score else HealthLevel.AT_RISK
            async with transaction():
                await overrides.set_override(
                    t.csm, customer_id=str(c.id), score=score,
                    level=level, reason=f"step {step}",
                    expires_at=utcnow() + timedelta(days=1), now=utcnow(),
                )  # fmt: skip
        elif kind == "clear" and await HealthScore.exists(
            customer_id=c.id, override_id__not_isnull=True
        ):
            async with transaction():
                await overrides.clear_override(t.csm, customer_id=str(c.id), now=utcnow())
        elif kind == "edit":
            await conn.execute_query(
                "UPDATE health_score SET score = $1, segment = $2 WHERE customer_id = $3",
                [rng.uniform(0, 100), rng.choice(["smb", "x"]), c.id],
            )
        elif kind == "delete":
            await conn.execute_query("DELETE FROM health_score WHERE customer_id = $1", [c.id])
        elif kind == "bulk":  # one statement moving many rows across groups, rolled back or not
            try:
                async with transaction():
                    await conn.execute_query(
                        "UPDATE health_score SET score = 100 - score, level = 'CRITICAL' "
                        "WHERE organization_id = $1",
                        [t.id],
                    )
                    if rng.random() < 0.5:
                        raise RuntimeError("rolled back")
            except RuntimeError:
                pass
        else:
            await recompute.recompute_all(t.id)
        await _check(orgs)


async def test_distributions_and_the_analytics_slot_read_the_summary(tenant: Tenant) -> None:
    rng = random.Random(3)
    await _customers(tenant, rng, 6)
    await recompute.recompute_all(tenant.id)
    rows = await HealthScore.filter(organization_id=tenant.id)
    overall, segments = await service.distribution(tenant.csm)
    assert overall.total == len(rows) == sum(overall.buckets)
    assert overall.average == round(sum(r.score for r in rows) / len(rows), 2)
    for s in segments:
        mine = [r for r in rows if r.segment == s.segment]
        assert s.total == len(mine)
        for level in ("HEALTHY", "AT_RISK", "CRITICAL"):
            assert s.levels.get(level, 0) == sum(r.level == level for r in mine)
    ads = [r for r in rows if r.channel == "ads"]
    by_ads, _ = await service.distribution(tenant.csm, acquisition_channel="ADS")
    assert by_ads.total == len(ads) > 0
    smb, only = await service.distribution(tenant.csm, user_type="smb")
    assert [s.segment for s in only] in ([], ["smb"]) and smb.total == sum(
        r.segment == "smb" for r in rows
    )

    gql = InProcessGraphQL(make_settings())
    token = token_for(
        gql.settings, organization_id=tenant.id, role=Role.CSM, subject=tenant.csm.subject
    )
    query = (
        "query($f: AnalyticsFilter) { analytics(filter: $f) "
        "{ healthDistribution { segment healthy atRisk critical } } }"
    )
    body = await gql.execute(query, {"f": {"acquisitionChannel": "ads"}}, token=token)
    assert "errors" not in body, body
    slot = body["data"]["analytics"]["healthDistribution"]
    want: dict[str, list[int]] = {}
    for r in ads:
        counts = want.setdefault(r.segment, [0, 0, 0])
        counts[["HEALTHY", "AT_RISK", "CRITICAL"].index(r.level)] += 1
    assert {d["segment"]: [d["healthy"], d["atRisk"], d["critical"]] for d in slot} == want
    await get_connection("default").execute_query(
        "DELETE FROM health_score WHERE organization_id = $1", [tenant.id]
    )
    body = await gql.execute(query, {}, token=token)
    assert body["data"]["analytics"]["healthDistribution"] is None


async def test_concurrent_sweeps_over_new_and_scored_customers_keep_the_summary_exact(
    tenant: Tenant,
) -> None:
    from app.health.compute import prepare

    customers = await _customers(tenant, random.Random(11), 24)
    async with transaction():  # half scored already: each batch below inserts and updates
        await recompute.recompute_customers(tenant.id, [c.id for c in customers[::2]], now=utcnow())
    for _ in range(2):
        async with transaction():
            run = await prepare(tenant.id, now=utcnow(), fresh_norm=True)
        swept = await asyncio.gather(
            *(
                recompute.sweep(run, recompute.Scope(), after=lo, upto=hi, batch_size=2)
                for lo, hi in recompute.id_ranges(4)
            )
        )
        assert sum(scored for scored, _ in swept) == 24
        await _check([tenant.id])
