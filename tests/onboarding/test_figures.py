"""The workflow row carries the engine's derived figures, written with every change, and the
migration's backfill computes the same figures from stages and tasks."""

from __future__ import annotations

import importlib

from tortoise.connection import get_connection

from app.db import transaction
from app.onboarding import records, service
from app.onboarding.states import TaskAction, WorkflowStatus
from tests.support.factories import Tenant

BACKFILL = importlib.import_module("migrations.0007_performance").BACKFILL_FIGURES


async def _stored(tenant: Tenant, customer_id: object) -> tuple[float, int, str | None, str]:
    (wf,) = await records.workflows_by_customer(tenant.id, [customer_id])  # type: ignore[list-item]
    assert wf is not None
    return wf.progress, wf.minutes_remaining, wf.current_stage_key, wf.status.value


async def _engine(tenant: Tenant, customer_id: object) -> tuple[float, int, str | None, str]:
    async with transaction():
        loaded = await service.load(tenant.csm, customer_id)  # type: ignore[arg-type]
    state = loaded.state
    current = state.current_stage
    return (
        state.progress,
        state.minutes_remaining,
        current.key if current else None,
        state.status.value,
    )


async def _backfilled(tenant: Tenant, customer_id: object) -> tuple[float, int, str | None, str]:
    conn = get_connection("default")
    await conn.execute_query(
        "UPDATE workflow SET progress = -1, minutes_remaining = -1, current_stage_key = NULL"
        " WHERE customer_id = $1",
        [customer_id],
    )
    await conn.execute_script(BACKFILL)
    return await _stored(tenant, customer_id)


async def test_stored_figures_follow_every_change(tenant: Tenant) -> None:
    customer = await tenant.customer()
    fresh = await _stored(tenant, customer.id)
    assert fresh == await _engine(tenant, customer.id)
    assert fresh[0] == 0 and fresh[1] > 0 and fresh[2] == "welcome"

    await tenant.act(customer.id, "verify_email", TaskAction.START)
    await tenant.act(customer.id, "verify_email", TaskAction.PROGRESS, progress=40)
    mid = await _stored(tenant, customer.id)
    assert mid == await _engine(tenant, customer.id)
    assert mid[1] < fresh[1]  # partial progress shortens the estimate

    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    await tenant.act(customer.id, "complete_profile", TaskAction.COMPLETE)
    later = await _stored(tenant, customer.id)
    assert later == await _engine(tenant, customer.id)
    assert later[0] > 0 and later[2] == "setup"


async def test_backfill_computes_what_the_engine_stores(tenant: Tenant) -> None:
    fresh, moved = await tenant.customer(), await tenant.customer()
    await tenant.act(moved.id, "verify_email", TaskAction.START)
    await tenant.act(moved.id, "verify_email", TaskAction.PROGRESS, progress=30)
    await tenant.act(moved.id, "watch_intro", TaskAction.COMPLETE)
    for customer in (fresh, moved):
        stored = await _stored(tenant, customer.id)
        assert await _backfilled(tenant, customer.id) == stored
    assert (await _stored(tenant, moved.id))[3] == WorkflowStatus.ACTIVE.value
