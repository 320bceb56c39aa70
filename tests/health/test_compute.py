"""Set-based recompute against real PostgreSQL: facts from rollups and workflows, scores,
level-change snapshots and change events."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta

import pytest
from tortoise.connection import get_connection

from app.customers.models import Customer
from app.db import transaction
from app.errors import DomainError
from app.events.models import OutboxEvent
from app.health import recompute, rules
from app.health.compute import prepare, score_batch
from app.health.definitions import bundled_default
from app.health.models import HealthScore, HealthSnapshot
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant


async def add_usage(
    tenant: Tenant,
    customer: Customer,
    name: str,
    *,
    days_ago: int,
    count: int = 1,
    now: datetime | None = None,
) -> None:
    """One rollup row, as the usage domain keeps them (its day that of its moment, UTC)."""
    at = (now or utcnow()) - timedelta(days=days_ago)
    await get_connection("default").execute_query(
        "INSERT INTO usage_daily (organization_id, customer_id, day, name, count, first_at, "
        "last_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (organization_id, "
        "customer_id, day, name) DO UPDATE SET count = usage_daily.count + EXCLUDED.count, "
        "last_at = greatest(usage_daily.last_at, EXCLUDED.last_at)",
        [tenant.id, customer.id, at.date(), name, count, at],
    )


async def test_scores_follow_usage_and_onboarding(tenant: Tenant) -> None:
    busy = await tenant.customer(user_type="smb")
    fading = await tenant.customer(user_type="mid_market")
    silent = await tenant.customer()
    for day in range(0, 20):
        await add_usage(tenant, busy, "login", days_ago=day, count=3)
    for feature in ("project_created", "report_shared", "teammate_invited"):
        await add_usage(tenant, busy, feature, days_ago=2)
    await add_usage(tenant, busy, "nps_promoter", days_ago=5)
    await add_usage(tenant, fading, "login", days_ago=13, count=2)
    await add_usage(tenant, fading, "payment_failed", days_ago=3, count=2)
    await add_usage(tenant, fading, "support_ticket_opened", days_ago=4, count=3)
    await tenant.act(busy.id, "verify_email", TaskAction.COMPLETE)

    scored, changed = await recompute.recompute_all(tenant.id)
    assert (scored, changed) == (3, 0)
    rows = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    b, f, s = rows[busy.id], rows[fading.id], rows[silent.id]
    assert b.score > f.score and b.level == "HEALTHY", (b.score, b.components)
    assert f.level == "CRITICAL", (f.score, f.components)
    assert s.segment == "standard" and f.segment == "mid_market"
    for row in rows.values():
        assert abs(sum(c[3] for c in row.components) - row.score) < 1e-6
    bf, ff = rules.Facts.from_json(b.facts), rules.Facts.from_json(f.facts)
    assert bf.events == 63 and bf.features_used == (
        "project_created",
        "report_shared",
        "teammate_invited",
    )
    assert ff.payment_failures == 2 and ff.tickets == 3
    # distinct days with usage other than signals, in the engagement window
    assert (bf.active_days, ff.active_days) == (20, 1)
    # silent: no survey answers, no billing events: 80 % of the model had data
    assert (b.confidence, f.confidence, s.confidence) == (90, 90, 80)
    # no previous score: nothing was pushed
    assert not await OutboxEvent.filter(
        organization_id=tenant.id, type__startswith="health."
    ).exists()


async def test_a_notable_move_is_recorded_once_with_its_reason(tenant: Tenant) -> None:
    customer = await tenant.customer()
    other = await tenant.customer()
    for day in range(0, 10):
        await add_usage(tenant, customer, "login", days_ago=day, count=2)
        await add_usage(tenant, other, "login", days_ago=day, count=2)
    await recompute.recompute_all(tenant.id)
    before = await HealthScore.get(customer_id=customer.id)
    # the customer goes quiet: its recent rows disappear, the others' stay
    await get_connection("default").execute_query(
        "DELETE FROM usage_daily WHERE customer_id = $1 AND day > $2",
        [customer.id, (utcnow() - timedelta(days=9)).date()],
    )
    async with transaction():
        run = await prepare(tenant.id, now=utcnow(), fresh_norm=False)
        got = await score_batch(run, ids=[customer.id, other.id])
    assert got.scored == 2 and got.changed == [customer.id]
    after = await HealthScore.get(customer_id=customer.id)
    assert after.score < before.score - 5
    events = await OutboxEvent.filter(customer_id=customer.id, type__startswith="health.")
    kinds = sorted(e.type for e in events)
    assert "health.changed" in kinds
    changed = next(e for e in events if e.type == "health.changed")
    assert changed.payload["previousScore"] == round(before.score, 1)
    assert changed.payload["topReason"] == "no activity for 9 days"
    if after.level != before.level:
        assert "health.level_changed" in kinds
        assert (
            await HealthSnapshot.filter(customer_id=customer.id, kind="LEVEL_CHANGE").count() == 1
        )


async def test_scope_limits_a_sweep(tenant: Tenant) -> None:
    a = await tenant.customer(user_type="startup")
    await tenant.customer(user_type="smb")
    async with transaction():
        total = await recompute.count(tenant.id, recompute.Scope(user_type="startup"))
    assert total == 1
    async with transaction():
        run = await prepare(tenant.id, now=utcnow(), fresh_norm=True)
    scored, _ = await recompute.sweep(run, recompute.Scope(user_type="STARTUP"), batch_size=1)
    assert scored == 1
    assert [r.customer_id for r in await HealthScore.filter(organization_id=tenant.id)] == [a.id]  # type: ignore[attr-defined]
    assert uuid.UUID(str(a.id))


async def test_the_sql_formulas_agree_with_the_pure_rules(tenant: Tenant) -> None:
    """The set-based SQL scores exactly as `rules.compute` does on the same facts."""
    import math
    import random

    from app.health.compute import stored_norm
    from app.health.definitions import bundled_default

    rng = random.Random(10)
    names = [
        "login", "project_created", "report_shared", "teammate_invited", "support_ticket_opened",
        "support_ticket_escalated", "nps_promoter", "nps_passive", "nps_detractor",
        "payment_succeeded", "payment_failed", "subscription_downgraded", "dashboard_created",
    ]  # fmt: skip
    segments = ["startup", "smb", "enterprise", "mid_market", "standard"]
    customers = []
    for i in range(40):
        c = await tenant.customer(
            user_type=segments[i % len(segments)],
            signed_up_at=utcnow() - timedelta(days=rng.randint(0, 120)),
        )
        customers.append(c)
        for _ in range(rng.randint(0, 12)):
            await add_usage(
                tenant, c, rng.choice(names), days_ago=rng.randint(0, 95),
                count=rng.randint(1, 6),
            )  # fmt: skip
        tasks = ["verify_email", "complete_profile", "watch_intro"]
        for key in rng.sample(tasks, rng.randint(0, 3)):
            with contextlib.suppress(DomainError):  # a task whose dependency is open stays
                await tenant.act(c.id, key, TaskAction.COMPLETE)
    await recompute.recompute_all(tenant.id)
    found = await stored_norm(tenant.id)
    assert found is not None
    norm = found[0]
    model = bundled_default()
    rows = await HealthScore.filter(organization_id=tenant.id)
    assert len(rows) == 40
    levels = set()
    for row in rows:
        facts = rules.Facts.from_json(row.facts)
        expected = rules.compute(model.for_segment(row.segment), facts, norm)
        got = {k: (v, w, c) for k, v, w, c in row.components}
        assert list(got) == [p.key for p in expected.parts]
        for part in expected.parts:
            v, w, c = got[part.key]
            assert (v is None) == (part.value is None), (part, got)
            assert v is None or math.isclose(v, part.value or 0, abs_tol=1e-9), (part, v)
            assert w == part.weight and math.isclose(c, part.contribution, abs_tol=1e-9)
        assert math.isclose(row.computed_score, expected.score, abs_tol=1e-9)
        assert row.computed_level == expected.level.value
        assert math.isclose(row.confidence, expected.confidence, abs_tol=1e-9)
        levels.add(row.computed_level)
    assert len(levels) >= 2


async def test_a_recompute_rewrites_only_scores_that_changed(tenant: Tenant) -> None:
    """Unchanged scores are left alone; a listed customer scores as in a sweep."""
    steady = await tenant.customer()
    moving = await tenant.customer()
    for day in range(0, 6):
        await add_usage(tenant, steady, "login", days_ago=day, count=2)
        await add_usage(tenant, moving, "login", days_ago=day, count=2)
    now = utcnow()
    await recompute.recompute_all(tenant.id, now=now)
    before = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    later = now + timedelta(seconds=30)
    await recompute.recompute_all(tenant.id, now=later)
    again = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    for cid, row in again.items():
        assert row.computed_at == before[cid].computed_at, "an unchanged score was rewritten"
    await add_usage(tenant, moving, "support_ticket_opened", days_ago=0, count=4)
    async with transaction():
        run = await prepare(tenant.id, now=later, fresh_norm=False)
        listed = await score_batch(run, ids=[moving.id, steady.id])
    assert listed.scored == 2
    after = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    assert after[steady.id].computed_at == before[steady.id].computed_at
    assert (
        after[moving.id].computed_at == later
        and rules.Facts.from_json(after[moving.id].facts).tickets == 4
    )
    # the sweep finds the same values for the listed customer: nothing to rewrite
    await recompute.recompute_all(tenant.id, now=later + timedelta(seconds=1))
    swept = await HealthScore.get(customer_id=moving.id)
    assert swept.computed_at == later and swept.components == after[moving.id].components


async def test_a_new_day_leaves_a_score_that_did_not_move(tenant: Tenant) -> None:
    """Day counts are stored as the moments they count from: a dormant customer's score, the
    same a day later, is not rewritten, and reads its days as of the reading."""
    dormant = await tenant.customer(signed_up_at=utcnow() - timedelta(days=200))
    active = await tenant.customer()
    await add_usage(tenant, dormant, "login", days_ago=60)  # past the inactivity limit
    for day in range(0, 3):
        await add_usage(tenant, active, "login", days_ago=day, count=2)
    now = utcnow()
    await recompute.recompute_all(tenant.id, now=now)
    before = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    await recompute.recompute_all(tenant.id, now=now + timedelta(days=1))
    after = {r.customer_id: r for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    assert after[dormant.id].computed_at == before[dormant.id].computed_at
    assert after[dormant.id].facts == before[dormant.id].facts
    assert after[active.id].computed_at == now + timedelta(days=1)  # recency moved
    was = rules.Facts.from_json(before[dormant.id].facts, as_of=now)
    is_ = rules.Facts.from_json(after[dormant.id].facts, as_of=now + timedelta(days=1))
    assert (is_.days_since_active, is_.days_since_signup) == (
        was.days_since_active + 1,  # type: ignore[operator]
        was.days_since_signup + 1,
    )


async def test_the_norm_of_a_large_organization_is_measured_on_the_lowest_ids(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.health import compute

    customers = sorted([await tenant.customer() for _ in range(5)], key=lambda c: c.id)
    for n, c in enumerate(customers):  # logins per day: 1, 2, 3, 4, 5
        for day in range(0, 3):
            await add_usage(tenant, c, "login", days_ago=day, count=n + 1)
    spec = compute.Spec.of(bundled_default())
    today = utcnow().date()
    whole = await compute.measure_norm(tenant.id, spec, today)
    assert (whole.median_events, whole.median_active_days) == (9.0, 3.0)
    monkeypatch.setattr(compute, "NORM_SAMPLE", 2)
    sample = await compute.measure_norm(tenant.id, spec, today)
    assert (sample.median_events, sample.median_active_days) == (4.5, 3.0)


async def test_the_usage_facts_match_the_rollups_they_come_from(tenant: Tenant) -> None:
    """The facts read from the rollups are those of every rollup in the lookback, although
    the recompute reads the ordinary events before the engagement window only for a customer
    with none inside it: the last activity, counts, active days and features agree with a
    count of the rows written here, for customers active only before the window, only
    inside it, both, only with classed events, or not at all."""
    import random

    from app.health import compute

    rng = random.Random(7)
    names = [
        "login", "login", "login", "project_created", "report_shared",
        "support_ticket_opened", "nps_promoter", "nps_detractor", "payment_failed",
    ]  # fmt: skip
    patterns = [
        [("login", 40), ("project_created", 35)],  # ordinary events before the window only
        [("login", 50), ("nps_promoter", 20), ("support_ticket_opened", 3)],
        [("login", 2), ("login", 60), ("report_shared", 70)],
        [("login", 95)],  # before the lookback
        [("support_ticket_opened", 40), ("payment_failed", 45)],  # classed events only
        [],
    ]
    for _ in range(14):
        days = rng.sample(range(0, 100), rng.randint(1, 10))
        patterns.append([(rng.choice(names), d) for d in days])
    customers = [await tenant.customer() for _ in patterns]
    now = utcnow()
    rows: dict[uuid.UUID, list[tuple[str, int, int]]] = {}
    for c, pattern in zip(customers, patterns, strict=True):
        rows[c.id] = []
        for name, days_ago in dict.fromkeys(pattern):
            count = rng.randint(1, 4)
            await add_usage(tenant, c, name, days_ago=days_ago, count=count, now=now)
            rows[c.id].append((name, days_ago, count))
    await recompute.recompute_all(tenant.id, now=now)
    spec = compute.Spec.of(bundled_default())
    today = now.date()

    def since(key: str, day: object) -> bool:
        return day >= spec.since(today, key)  # type: ignore[operator]

    stored = {r.customer_id: r.facts for r in await HealthScore.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    for cid, written in rows.items():
        moments = [(n, now - timedelta(days=d), k) for n, d, k in written]
        kept = [(n, at, k) for n, at, k in moments if at.date() >= spec.lookback(today)]
        ordinary = [(n, at, k) for n, at, k in kept if n not in spec.special]
        last = max((at for _, at, _ in ordinary), default=None)
        facts = rules.Facts.from_json(stored[cid], as_of=now)
        raw = stored[cid][rules.FACT_FIELDS.index("days_since_active")]
        assert (raw is None) == (last is None), (written, raw)
        if last is not None:
            assert rules.days_since(raw, now) == max(0, (now - last).days), (written, raw)
            assert datetime.fromisoformat(raw) == last.replace(tzinfo=None), (written, raw)
        recent = [(n, at, k) for n, at, k in ordinary if since("engagement", at.date())]
        assert facts.events == sum(k for _, _, k in recent), written
        assert facts.active_days == len({at.date() for _, at, _ in recent}), written
        assert facts.features_used == tuple(
            sorted({n for n, at, _ in kept if n in spec.features and since("adoption", at.date())})
        ), written
        assert facts.tickets == sum(
            k for n, at, k in kept if n in spec.tickets and since("support", at.date())
        ), written
        assert facts.payment_failures == sum(
            k for n, at, k in kept if n in spec.failures and since("billing", at.date())
        ), written


async def test_a_rewritten_score_holds_what_a_new_one_would(tenant: Tenant) -> None:
    """A stored score is rewritten in place (UPDATE) and a new one inserted: after a day's
    changes, every column of the rewritten scores is what scoring them afresh writes."""
    customers = [
        await tenant.customer(**fields)
        for fields in (
            {"user_type": "smb", "acquisition_channel": "organic"},
            {"user_type": "startup", "acquisition_channel": "paid_search"},
            {"user_type": "enterprise"},
            {},
        )
    ]
    now = utcnow()
    for n, c in enumerate(customers):
        for day in range(0, 3 + 4 * n):
            await add_usage(tenant, c, "login", days_ago=day, count=1 + n, now=now)
    await recompute.recompute_all(tenant.id, now=now)
    later = now + timedelta(days=3)
    await add_usage(tenant, customers[0], "support_ticket_opened", days_ago=0, count=9, now=later)
    await add_usage(tenant, customers[1], "project_created", days_ago=1, now=later)
    await recompute.recompute_all(tenant.id, now=later)
    columns = (
        "score", "level", "computed_score", "computed_level", "confidence", "components",
        "facts", "segment", "channel", "model_version", "override_id", "computed_at",
    )  # fmt: skip
    rewritten = {
        r["customer_id"]: r
        for r in await HealthScore.filter(organization_id=tenant.id).values("customer_id", *columns)
    }
    assert all(r["computed_at"] == later for r in rewritten.values())
    await HealthScore.filter(organization_id=tenant.id).delete()
    await recompute.recompute_all(tenant.id, now=later)
    fresh = {
        r["customer_id"]: r
        for r in await HealthScore.filter(organization_id=tenant.id).values("customer_id", *columns)
    }
    assert fresh == rewritten


async def test_only_a_recompute_that_rewrote_scores_refreshes_their_statistics(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`refresh_statistics` hears of the scores written, not of those scored: the same inputs
    again write nothing and do not ANALYZE the table."""
    for _ in range(3):
        c = await tenant.customer()
        await add_usage(tenant, c, "login", days_ago=1)
    heard: list[int] = []
    analyze = recompute.refresh_statistics

    async def refresh(written: int) -> bool:
        heard.append(written)
        return await analyze(written)

    monkeypatch.setattr(recompute, "refresh_statistics", refresh)
    monkeypatch.setattr(recompute, "ANALYZE_AT", (0, 0.0))
    now = utcnow()
    await recompute.recompute_all(tenant.id, now=now)
    await recompute.recompute_all(tenant.id, now=now)
    assert heard == [3, 0]
    assert not await analyze(0)
