"""Actions meeting other transactions' row locks on real PostgreSQL: a deadlock the database
breaks by aborting an action undoes the whole batch, which is then done again (never an
action recorded as failed for good); tagging does not wait for the key-share locks that rows
being inserted elsewhere take on the customer they refer to; a time trigger aborted the same
way is fired again within its tick, the other firings going on, and so is a run resumed
after its delay; recording the outcomes of sent emails and webhooks takes the runs in id order
(after a resumed run, never deadlocking with it), and a recording aborted the same way is
recorded again, nothing sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import pytest

from app.automation import timed
from app.automation.models import ActionExecution, ActionStatus, AutomationRule, RunStatus
from app.customers.models import Customer
from app.db import transaction
from app.deliveries import service as deliveries
from app.deliveries.models import Delivery, DeliveryStatus
from app.kit.clock import utcnow
from app.onboarding.models import Workflow
from app.settings import Settings
from tests.automation.peers import SmtpServer, WebhookReceiver
from tests.automation.support import Drain, add_rule, definition, runs_of, send_all
from tests.support.factories import Tenant
from tests.support.locks import blocked_by

T = TypeVar("T")
WELCOME = ({"type": "tag_customer", "tag": "welcomed"}, {"type": "award_points", "points": 3})


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


async def through_a_deadlock(
    database_url: str, customer_id: object, unit: Callable[[], Coroutine[Any, Any, T]]
) -> T:
    """Run `unit()` into a deadlock over a customer and return what it returns: another
    transaction holds the customer's workflow row; the unit tags the customer (its row locked)
    and waits to award points; the other transaction then wants the customer row, and the
    database breaks the deadlock by aborting the statement that waited first, the unit's."""
    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM workflow WHERE customer_id = $1 FOR UPDATE", customer_id)
        running = asyncio.create_task(unit())
        await blocked_by(other)
        await other.execute("SELECT 1 FROM customer WHERE id = $1 FOR UPDATE", customer_id)
        await tx.commit()
    finally:
        await other.close()
    return await running


async def welcomed(customers: list[Customer], points: dict[uuid.UUID, int]) -> None:
    """Each customer tagged once and awarded the points once."""
    for c in await Customer.filter(id__in=[c.id for c in customers]):
        assert c.tags == ["welcomed"]
        assert (await Workflow.get(customer_id=c.id)).points == points[c.id] + 3


async def test_a_time_trigger_aborted_to_break_a_deadlock_is_fired_again_in_the_same_tick(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    stalled = [await tenant.customer(name=n) for n in ("Stuck", "Quiet")]
    await Workflow.filter(customer_id__in=[c.id for c in stalled]).update(
        last_activity_at=utcnow() - timedelta(days=4)
    )
    rule = await add_rule(tenant, definition({"type": "no_progress", "days": 3}, *WELCOME))
    points = {c.id: (await Workflow.get(customer_id=c.id)).points for c in stalled}
    fired = await through_a_deadlock(database_url, stalled[0].id, timed.fire_time_triggers)
    assert fired >= 2  # the tick went on, and fired `Stuck` again once it could
    assert "rolled back by the database (40P01); attempt 2 of 3" in caplog.text
    runs = await runs_of(rule)
    assert sorted(r.customer_id for r in runs) == sorted(c.id for c in stalled)
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    actions = await ActionExecution.filter(rule_id=rule.id)
    assert len(actions) == 4 and {a.status for a in actions} == {ActionStatus.DONE}
    await welcomed(stalled, points)


async def test_a_resumed_run_aborted_to_break_a_deadlock_is_resumed_again_in_the_same_tick(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rule = await add_rule(
        tenant, definition("customer.created", {"type": "delay", "minutes": 5}, *WELCOME)
    )
    customer = await tenant.customer()
    points = {customer.id: (await Workflow.get(customer_id=customer.id)).points}
    await Drain(tenant)()
    [waiting] = await runs_of(rule)
    assert waiting.status is RunStatus.WAITING
    later = utcnow() + timedelta(minutes=6)
    resumed = await through_a_deadlock(
        database_url, customer.id, lambda: timed.resume_waiting(now=later)
    )
    assert resumed >= 1
    assert "rolled back by the database (40P01); attempt 2 of 3" in caplog.text
    [run] = await runs_of(rule)
    assert run.status is RunStatus.SUCCEEDED
    actions = await ActionExecution.filter(rule_id=rule.id)
    assert len(actions) == 3 and {a.status for a in actions} == {ActionStatus.DONE}
    await welcomed([customer], points)


EMAIL = {"type": "send_email", "subject": "Welcome", "text": "Hi {{ customer.name }}"}
HOOK = {"type": "webhook", "event": "customer.welcomed", "data": {"n": "{{ customer.name }}"}}


@asynccontextmanager
async def peers_and_runs(tenant: Tenant, *names: str) -> AsyncIterator[Peers]:
    """An SMTP server and a webhook receiver, and one run per customer of a rule that sends
    an email and a webhook, its deliveries due."""
    rule = await add_rule(tenant, definition("customer.created", EMAIL, HOOK))
    with SmtpServer() as smtp, WebhookReceiver() as receiver:
        async with transaction():
            await deliveries.create_endpoint(
                tenant.admin, url=receiver.url, event_types=["customer.welcomed"]
            )
        for name in names:
            await tenant.customer(name=name)
        await Drain(tenant)()
        runs = sorted(r.id for r in await runs_of(rule))
        settings = Settings(smtp_url=smtp.url, webhook_allow_private=True)
        yield Peers(rule, runs, settings, smtp, receiver)


@dataclass
class Peers:
    rule: AutomationRule
    runs: list[uuid.UUID]
    settings: Settings
    smtp: SmtpServer
    receiver: WebhookReceiver

    async def sent_once_and_settled(self, tenant: Tenant) -> None:
        """Every delivery recorded as sent after one attempt, each message received once,
        every action done and every run succeeded."""
        rows = await Delivery.filter(organization_id=tenant.id)
        assert len(rows) == 2 * len(self.runs)
        assert {(r.status, r.attempts) for r in rows} == {(DeliveryStatus.SUCCEEDED, 1)}
        mails = self.smtp.by_id()
        hooks = [r.headers["webhook-id"] for r in self.receiver.received]
        for row in rows:
            sent = len(mails.get(row.message_id, [])) + hooks.count(row.message_id)
            assert sent == 1, f"{row.kind} sent {sent} times"
        assert {r.status for r in await runs_of(self.rule)} == {RunStatus.SUCCEEDED}
        actions = await ActionExecution.filter(rule_id=self.rule.id)
        assert len(actions) == len(rows) and {a.status for a in actions} == {ActionStatus.DONE}


async def test_delivery_outcomes_aborted_to_break_a_deadlock_are_recorded_again_not_resent(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with peers_and_runs(tenant, "Ada", "Grace") as peers:
        low, high = peers.runs
        other = await asyncpg.connect(database_url)
        try:
            tx = other.transaction()
            await tx.start()
            # Another transaction holds the later run; the recording of the sent messages takes
            # the earlier run and waits for it. The other then wants the earlier run too: a
            # deadlock, broken by aborting the recording (it waited first).
            await other.execute(RUN_FOR_UPDATE, high)
            sending = asyncio.create_task(send_all(peers.settings))
            await blocked_by(other)
            await other.execute(RUN_FOR_UPDATE, low)
            await tx.commit()
        finally:
            await other.close()
        await sending
        await send_all(peers.settings)  # nothing is left to send again
        await peers.sent_once_and_settled(tenant)
    assert "delivery outcomes rolled back by the database (40P01); attempt 2 of 3" in caplog.text


async def test_recording_delivery_outcomes_waits_for_a_resumed_run_without_deadlock(
    tenant: Tenant, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with peers_and_runs(tenant, "Linus") as peers:
        [run_id] = peers.runs
        other = await asyncpg.connect(database_url)
        try:
            # What resuming a run does: lock the run, then write its actions. The recording of
            # the run's sent messages waits for the run before it touches the actions.
            async with other.transaction():
                await other.execute(RUN_FOR_UPDATE, run_id)
                sending = asyncio.create_task(send_all(peers.settings))
                await blocked_by(other)
                await other.execute(
                    "SELECT 1 FROM automation_action WHERE run_id = $1 FOR UPDATE", run_id
                )
        finally:
            await other.close()
        await sending
        await peers.sent_once_and_settled(tenant)
    assert "rolled back by the database" not in caplog.text


RUN_FOR_UPDATE = "SELECT 1 FROM automation_run WHERE id = $1 FOR UPDATE"
