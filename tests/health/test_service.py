"""Health services with real PostgreSQL: overrides that lapse, jobs with progress, the daily
snapshot taken once, history with why it changed, distribution."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit.models import AuditEntry
from app.db import transaction
from app.errors import Conflict, Forbidden, InvalidHealthModel, ValidationFailed
from app.events.models import OutboxEvent
from app.health import daily, overrides, recompute, service, spine, versions
from app.health.models import HealthDailyRun, HealthJob, HealthScore, HealthSnapshot, JobStatus
from app.kit.clock import utcnow
from tests.health.test_compute import add_usage
from tests.support.factories import Tenant


async def scored(tenant: Tenant, n: int = 3) -> list[object]:
    customers = [await tenant.customer() for _ in range(n)]
    for i, c in enumerate(customers):
        for day in range(i * 5, 20):
            await add_usage(tenant, c, "login", days_ago=day, count=2)  # type: ignore[arg-type]
    await recompute.recompute_all(tenant.id)
    return customers


async def test_override_shows_is_audited_and_lapses_by_itself(tenant: Tenant) -> None:
    [c, *_] = await scored(tenant)
    cid = str(c.id)  # type: ignore[attr-defined]
    computed = await HealthScore.get(customer_id=cid)
    now = utcnow()
    with pytest.raises(ValidationFailed) as refused:
        async with transaction():
            await overrides.set_override(
                tenant.csm, customer_id=cid, score=120, level=None, reason=" ",
                expires_at=now - timedelta(minutes=1), now=now,
            )  # fmt: skip
    assert len(refused.value.details["reasons"]) == 3
    async with transaction():
        row, before, after = await overrides.set_override(
            tenant.csm, customer_id=cid, score=15, level=None, reason="Champion left",
            expires_at=now + timedelta(seconds=2), now=now,
        )  # fmt: skip
    assert before == {"score": computed.score, "level": computed.level}
    assert after == {"score": 15, "level": "CRITICAL", "expiresAt": row.expires_at.isoformat()}
    view = await service.health_score(tenant.csm, cid)
    assert view is not None and view.override is not None
    assert (view.score, view.level, view.computed_score) == (15, "CRITICAL", computed.score)
    assert view.override.created_by == tenant.csm.label and view.override.reason == "Champion left"
    event = await OutboxEvent.filter(customer_id=cid, type="health.changed").first()
    assert event is not None and event.payload["topReason"] == "override: Champion left"
    # a recompute keeps the override on top of the fresh computation
    await recompute.recompute_all(tenant.id)
    assert (await HealthScore.get(customer_id=cid)).score == 15
    # nothing expires early
    assert await overrides.expire_overrides(now=utcnow()) == []
    await asyncio.sleep(2.1)
    # a reader no longer sees it even before the worker sweeps
    view = await service.health_score(tenant.csm, cid)
    assert view is not None and view.override is None and view.score == computed.score
    assert await spine.lapse_overrides() >= 1
    audit = await AuditEntry.filter(organization_id=tenant.id, target_id=cid).order_by("id")
    assert [a.action for a in audit] == ["health.override_set", "health.override_expired"]
    assert audit[0].actor == tenant.csm.subject and audit[0].reason == "Champion left"
    assert audit[0].before == before and audit[0].after["score"] == 15
    restored = await HealthScore.get(customer_id=cid)
    assert (restored.score, restored.level, restored.override_id) == (
        computed.score, computed.level, None,
    )  # fmt: skip
    assert (await overrides.HealthOverride.get(id=row.id)).ended_by == "expiry"
    with pytest.raises(Conflict):
        async with transaction():
            await overrides.clear_override(tenant.csm, customer_id=cid, now=utcnow())


async def test_a_job_reports_progress_and_resumes(tenant: Tenant) -> None:
    await scored(tenant, 5)
    async with transaction():
        job = await recompute.start_job(tenant.admin, recompute.Scope())
    assert (job.status, job.total, job.done) == (JobStatus.PENDING, 5, 0)
    with pytest.raises(Forbidden):
        await recompute.start_job(tenant.csm, recompute.Scope())
    claimed = await recompute.claim_job(now=utcnow(), organization_id=tenant.id)
    assert claimed is not None and claimed.id == job.id and claimed.status == "RUNNING"
    assert (
        await recompute.claim_job(now=utcnow(), organization_id=tenant.id) is None
    )  # nobody else takes it
    seen: list[tuple[int, int]] = []
    finished = await recompute.run_job(
        claimed, on_progress=lambda d, t: seen.append((d, t)), batch_size=2
    )
    assert finished.status == JobStatus.SUCCEEDED and finished.done == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
    # a job whose worker stopped beating is taken over and resumes after its cursor
    async with transaction():
        stale = await recompute.start_job(tenant.admin, recompute.Scope())
    await HealthJob.filter(id=stale.id).update(
        status=JobStatus.RUNNING, heartbeat_at=utcnow() - timedelta(minutes=5), done=0
    )
    taken = await recompute.claim_job(now=utcnow(), organization_id=tenant.id)
    assert taken is not None and taken.id == stale.id


async def test_daily_snapshot_runs_once_even_when_two_workers_race(tenant: Tenant) -> None:
    customers = await scored(tenant, 4)
    now = utcnow()
    results = await asyncio.gather(
        daily.snapshot_organization(tenant.id, now=now),
        daily.snapshot_organization(tenant.id, now=now),
    )
    assert sorted(results) == [0, 4]
    assert await daily.snapshot_organization(tenant.id, now=now) == 0
    assert await HealthDailyRun.filter(organization_id=tenant.id).count() == 1
    snaps = await HealthSnapshot.filter(organization_id=tenant.id, kind="DAILY")
    assert sorted(str(s.customer_id) for s in snaps) == sorted(str(c.id) for c in customers)  # type: ignore[attr-defined]


async def test_history_explains_each_move(tenant: Tenant) -> None:
    [c, *_] = await scored(tenant)
    cid = c.id  # type: ignore[attr-defined]
    await daily.snapshot_organization(tenant.id, now=utcnow() - timedelta(days=8))
    # make the snapshot eight days old, then let the customer go quiet
    await HealthSnapshot.filter(customer_id=cid).update(taken_at=utcnow() - timedelta(days=8))
    await HealthSnapshot.filter(customer_id=cid).update(day=(utcnow() - timedelta(days=8)).date())
    from tortoise.connection import get_connection

    await get_connection("default").execute_query(
        "DELETE FROM usage_daily WHERE customer_id = $1 AND day > $2",
        [cid, (utcnow() - timedelta(days=10)).date()],
    )
    await recompute.recompute_all(tenant.id)
    await daily.snapshot_organization(tenant.id, now=utcnow())
    history = await service.health_history(tenant.csm, str(cid), 30)
    assert len(history) >= 2 and history[-1].score < history[0].score
    moved_at = next(h for h in history if h.changes)
    assert moved_at.changes[0].component == "engagement"
    assert "events" in moved_at.changes[0].message
    view = await service.health_score(tenant.csm, str(cid))
    assert view is not None
    delta, moved = await service.changes_since(tenant.csm, view, 7)
    assert delta is not None and delta < 0 and moved[0].component == "engagement"
    deltas = await service.deltas(tenant.csm, [cid], 7)
    assert deltas[cid] == pytest.approx(delta, abs=0.01)


async def test_distribution_and_visibility(tenant: Tenant) -> None:
    customers = await scored(tenant, 3)
    overall, segments = await service.distribution(tenant.csm)
    assert overall.total == 3 == sum(overall.levels.values()) == sum(overall.buckets)
    assert [s.segment for s in segments] == ["standard"]
    customer = tenant.customer_viewer(customers[0])  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await service.health_score(customer, None)
    visible = versions.bundled_default().model_dump(mode="json") | {"customer_visible": True}
    async with transaction():
        await versions.install_model(tenant.admin, definition=visible, created_by="t")
    view = await service.health_score(customer, None)
    assert view is not None and view.customer_id == customers[0].id  # type: ignore[attr-defined]


async def test_install_refuses_with_every_reason(tenant: Tenant) -> None:
    with pytest.raises(InvalidHealthModel) as caught:
        await versions.install_model(
            tenant.admin, definition="levels: {healthy: 1, at_risk: 2}", created_by="t"
        )
    assert any("components" in r for r in caught.value.details["reasons"])
    with pytest.raises(Forbidden):
        await versions.install_model(tenant.csm, definition="{}", created_by="t")
    other = Viewer(subject="x", organization_id=tenant.id, role=Role.CSM)
    assert [m.version for m in await versions.model_versions(other)] == [1]


async def test_a_sweep_that_rewrote_many_scores_refreshes_their_statistics(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = get_connection("default")

    async def planner_rows() -> float:
        rows = await conn.execute_query_dict(
            "SELECT reltuples FROM pg_class WHERE oid = 'health_score'::regclass"
        )
        return float(rows[0]["reltuples"])

    assert not await recompute.refresh_statistics(0)  # under autovacuum's threshold: left alone
    monkeypatch.setattr(recompute, "ANALYZE_AT", (0, 0.0))
    await scored(tenant)  # 3 scores written: over a threshold of 0
    stored = await HealthScore.all().count()
    assert stored >= 3 and await planner_rows() == stored
    sampled = await conn.execute_query_dict(
        "SELECT attname FROM pg_stats WHERE tablename = 'health_score'"
    )
    assert {"level", "score", "organization_id"} <= {r["attname"] for r in sampled}
