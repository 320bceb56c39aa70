"""Live dashboard metrics: shared per (organization, filter), woken by the rollups' NOTIFY,
throttled per feed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from app.analytics import maintain, service
from app.analytics.live import LiveMetrics, Metrics, compute
from app.analytics.query import Scope
from app.db import connect_kwargs, transaction
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant


async def _next(stream: AsyncIterator[Metrics]) -> Metrics:
    return await asyncio.wait_for(anext(stream), timeout=10)


async def test_subscribers_share_one_feed_that_follows_the_rollups(db: str, tenant: Tenant) -> None:
    customer = await tenant.customer()
    async with transaction():
        await maintain.refresh([customer.id], now=utcnow())
    live = LiveMetrics(connect_kwargs(db), interval=0.2)
    scope = service.analytics(tenant.csm).scope
    first, second = live.subscribe(scope), live.subscribe(scope)
    try:
        a, b = await _next(first), await _next(second)
        assert a.overview.totals.customers == b.overview.totals.customers == 1
        assert len(live.feeds) == 1 and live.feeds[scope].computations == 1
        await asyncio.sleep(0.3)  # let the LISTEN connection come up
        for key in ("verify_email", "complete_profile"):
            await tenant.act(customer.id, key, TaskAction.COMPLETE)
        async with transaction():
            await maintain.refresh([customer.id], now=utcnow())  # NOTIFY on commit
        a, b = await _next(first), await _next(second)
        welcome = a.funnel.stages[0]
        assert (welcome.stage_key, welcome.completed) == ("welcome", 1)
        assert b.funnel.stages[0].completed == 1
    finally:
        await first.aclose()
        await second.aclose()
        await live.close()
    assert live.feeds == {}


async def test_a_burst_of_changes_is_computed_at_most_once_per_interval(tenant: Tenant) -> None:
    calls: list[float] = []

    async def work(scope: Scope) -> Metrics:
        calls.append(asyncio.get_running_loop().time())
        return await compute(scope)

    live = LiveMetrics(None, interval=0.25, work=work)
    scope = service.analytics(tenant.admin).scope
    stream = live.subscribe(scope)
    try:
        await _next(stream)
        for _ in range(40):  # 40 changes within ~0.4 s
            live.changed(tenant.id)
            live.changed(tenant.org.id)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    finally:
        await stream.aclose()
        await live.close()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert 2 <= len(calls) <= 4 and all(g >= 0.24 for g in gaps), calls


async def test_a_kept_report_answers_until_the_organizations_rollups_change(
    db: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    customer = await tenant.customer()
    async with transaction():
        await maintain.refresh([customer.id], now=utcnow())
    live = LiveMetrics(connect_kwargs(db))
    try:
        first = service.analytics(tenant.csm, keep=live.report)
        assert (await first.overview()).totals.customers == 1
        for _ in range(100):  # the first request starts the LISTEN connection
            if live.reports.listening:
                break
            await asyncio.sleep(0.05)
        assert live.reports.listening
        kept = service.analytics(tenant.csm, keep=live.report)
        assert service.analytics(tenant.admin, keep=live.report) is kept is not first
        assert service.analytics(tenant.csm, user_type="smb", keep=live.report) is not kept
        other = await other_tenant.customer()  # another organization's change retires nothing
        async with transaction():
            await maintain.refresh([other.id], now=utcnow())
        await asyncio.sleep(0.3)
        assert service.analytics(tenant.csm, keep=live.report) is kept
        await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
        async with transaction():
            await maintain.refresh([customer.id], now=utcnow())  # NOTIFY on commit
        for _ in range(100):
            fresh = service.analytics(tenant.csm, keep=live.report)
            if fresh is not kept:
                break
            await asyncio.sleep(0.05)
        assert fresh is not kept
        welcome = (await fresh.funnel()).stages[0]
        [verified] = [t for t in welcome.tasks if t.task_key == "verify_email"]
        assert verified.completed == 1
        live.reports.max_age = 0.0
        assert service.analytics(tenant.csm, keep=live.report) is not fresh
    finally:
        await live.close()
    assert not live.reports.listening
