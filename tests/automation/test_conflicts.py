"""Actions meeting other transactions' row locks on real PostgreSQL: a deadlock the database
breaks by aborting an action undoes the whole batch, which is then done again (never an
action recorded as failed for good); tagging does not wait for the key-share locks that rows
being inserted elsewhere take on the customer they refer to."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.automation.models import ActionExecution, ActionStatus, RunStatus
from app.customers.models import Customer
from app.onboarding.models import Workflow
from tests.automation.support import Drain, add_rule, definition, runs_of
from tests.support.factories import Tenant

WELCOME = ({"type": "tag_customer", "tag": "welcomed"}, {"type": "award_points", "points": 3})

_BLOCKED_BY_ME = """SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"""


async def blocked_by(conn: asyncpg.Connection, *, seconds: float = 20.0) -> None:
    """Wait until some other backend waits for a lock `conn`'s transaction holds."""
    for _ in range(int(seconds / 0.02)):
        if await conn.fetchval(_BLOCKED_BY_ME):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nothing came to wait for the held lock")


async def test_an_action_aborted_to_break_a_deadlock_is_done_again_not_failed(
    tenant: Tenant, database_url: str
) -> None:
    rule = await add_rule(tenant, definition("customer.created", *WELCOME))
    first = await tenant.customer(name="First")
    second = await tenant.customer(name="Second")
    points = {c.id: (await Workflow.get(customer_id=c.id)).points for c in (first, second)}
    drain = Drain(tenant)
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", second.id)
        # One batch: `first` is tagged (its row locked until commit), then `second` waits.
        handling = asyncio.create_task(drain())
        await blocked_by(other)
        # The other transaction now wants `first`: a deadlock. PostgreSQL breaks it by
        # aborting the statement of the one that waited first, the batch's tagging of `second`.
        taking = asyncio.create_task(
            other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", first.id)
        )
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
            await handling  # the whole batch is undone, to be done again
        await taking
        await tx.commit()
    finally:
        await other.close()
    assert await runs_of(rule) == [], "nothing of the aborted batch is kept"

    await drain()  # what the consumer does next: the same events again
    runs = await runs_of(rule)
    assert sorted(r.customer_id for r in runs) == sorted([first.id, second.id])
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    actions = await ActionExecution.filter(rule_id=rule.id)
    assert len(actions) == 4 and {a.status for a in actions} == {ActionStatus.DONE}
    for c in await Customer.filter(id__in=[first.id, second.id]):
        assert c.tags == ["welcomed"]
        assert (await Workflow.get(customer_id=c.id)).points == points[c.id] + 3


async def test_tagging_does_not_wait_for_a_key_share_lock_on_the_customer(
    tenant: Tenant, database_url: str
) -> None:
    rule = await add_rule(tenant, definition("customer.created", WELCOME[0]))
    customer = await tenant.customer()
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            # What inserting a row that refers to the customer takes (a health score, a
            # snapshot): a foreign-key check's FOR KEY SHARE, held until that commit.
            await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR KEY SHARE", customer.id)
            handling = asyncio.create_task(Drain(tenant)())
            done, _ = await asyncio.wait({handling}, timeout=10)
        await handling
    finally:
        await other.close()
    assert done, "tagging waited for a transaction that only inserted rows referring to it"
    [run] = await runs_of(rule)
    assert run.status is RunStatus.SUCCEEDED
    assert (await Customer.get(id=customer.id)).tags == ["welcomed"]
