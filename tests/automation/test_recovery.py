"""What a worker killed mid-batch leaves behind, made directly on real PostgreSQL, and what the
next one does with it: the batch's backend ends when its client is gone, rolling back every
run, action, effect and delivery of the batch; the same events handled again act exactly
once, and every run ends SUCCEEDED."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.automation.models import ActionExecution, ActionStatus, RunStatus
from app.customers.models import Customer
from app.deliveries.models import Delivery, DeliveryStatus
from app.kit.connections import connection_lost
from app.onboarding.models import Workflow
from app.settings import Settings
from tests.automation.support import Drain, add_rule, definition, runs_of, send_all
from tests.support.factories import Tenant
from tests.support.locks import blocked_by

ACTIONS = (
    {"type": "tag_customer", "tag": "welcomed"},
    {"type": "award_points", "points": 3},
    {"type": "send_email", "subject": "Welcome {{ customer.name }}", "text": "Hello"},
)
_END_WAITER = """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"""


async def test_a_batch_whose_worker_died_midway_is_done_again_whole_and_once(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rule = await add_rule(tenant, definition("customer.created", *ACTIONS))
    customers = [await tenant.customer(name=f"Burst {i}") for i in range(3)]
    points = {c.id: (await Workflow.get(customer_id=c.id)).points for c in customers}
    drain = Drain(tenant)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            # The batch acts for the first customer, then waits to tag the second one.
            await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", customers[1].id)
            dying = asyncio.create_task(drain())
            await blocked_by(other)
            # What the backend of a SIGKILLed worker does once its client is gone: it ends,
            # and its transaction is rolled back.
            assert await other.fetchval(_END_WAITER)
            with pytest.raises(Exception) as died:
                await dying
            assert connection_lost(died.value), died.value
    finally:
        await other.close()
    # The lost connection is no fault of the action it cut short: not reported as its failure.
    assert "automation action" not in caplog.text
    assert await runs_of(rule) == [], "nothing of the batch outlives its connection"
    assert not await Delivery.filter(organization_id=tenant.id).exists()

    await drain()  # the next worker: the same events from the same checkpoint
    await send_all(Settings(smtp_url=None))
    runs = await runs_of(rule)
    assert sorted(r.customer_id for r in runs) == sorted(c.id for c in customers)
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    actions = await ActionExecution.filter(rule_id=rule.id)
    assert len(actions) == 9 and {a.status for a in actions} == {ActionStatus.DONE}
    sent = await Delivery.filter(organization_id=tenant.id)
    assert len(sent) == 3 and {d.status for d in sent} == {DeliveryStatus.SUCCEEDED}
    for c in await Customer.filter(id__in=[c.id for c in customers]):
        assert c.tags == ["welcomed"]
        assert (await Workflow.get(customer_id=c.id)).points == points[c.id] + 3
