"""The outbox against real PostgreSQL: typed events, written in the transaction of the change.

Every engine step records its events with the state change; a rollback leaves none; each
customer's stream is numbered 1..n without gaps; every event carries its organization, its
customer, a type, a payload with the fresh workflow figures, the actor and its time.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from tortoise.connection import get_connection

from app.customers.models import Customer
from app.db import transaction
from app.errors import TaskLocked
from app.events import outbox
from app.events.models import EventStream, OutboxEvent
from app.kit.clock import utcnow
from app.onboarding import service
from app.onboarding.states import StageAction, TaskAction
from tests.support.factories import Tenant, last_sequence

FIGURES = {"workflowId", "status", "points", "progress", "minutesRemaining", "currentStage"}


async def events_of(customer_id: uuid.UUID, *, after: int = 0) -> list[OutboxEvent]:
    """The customer's events above sequence `after`, in sequence order."""
    return (
        await OutboxEvent.filter(customer_id=customer_id, sequence__gt=after)
        .order_by("sequence")
        .all()
    )


async def step(
    tenant: Tenant, customer_id: uuid.UUID, key: str, action: TaskAction, **kw: Any
) -> list[OutboxEvent]:
    """Apply one task action in its own transaction; return the events it recorded."""
    before = await last_sequence(customer_id)
    await tenant.act(customer_id, key, action, **kw)
    return await events_of(customer_id, after=before)


async def current_figures(tenant: Tenant, customer_id: uuid.UUID) -> dict[str, Any]:
    """The workflow figures as the database holds them now."""
    loaded = await service.load(tenant.csm, customer_id)
    return service.figures(loaded.state, loaded.workflow.id)


def types(rows: list[OutboxEvent]) -> list[str]:
    return [r.type for r in rows]


async def assert_fresh(tenant: Tenant, rows: list[OutboxEvent]) -> None:
    """Every event of the step carries the figures the workflow has right after it."""
    assert rows
    figures = await current_figures(tenant, rows[0].customer_id)  # type: ignore[arg-type]
    for row in rows:
        assert row.payload["workflow"] == figures, row.type


async def test_customer_creation_records_its_events(tenant: Tenant) -> None:
    before = utcnow()
    customer = await tenant.customer()
    after = utcnow()
    rows = await events_of(customer.id)
    assert types(rows) == ["customer.created", "workflow.started"]
    assert [r.sequence for r in rows] == [1, 2]
    for row in rows:
        assert row.organization_id == tenant.id  # type: ignore[attr-defined]
        assert row.customer_id == customer.id
        assert row.stream == customer.id
        assert row.actor == tenant.admin.label
        assert before - timedelta(seconds=1) <= row.created_at <= after + timedelta(seconds=1)
        assert row.published_at is None
    created, started = rows
    assert created.payload == {
        "customerId": str(customer.id),
        "name": customer.name,
        "email": customer.email,
    }
    assert started.payload["template"] == "default"
    assert set(started.payload["workflow"]) == FIGURES
    assert started.payload["workflow"]["points"] == 0
    assert started.payload["workflow"]["currentStage"] == "welcome"
    await assert_fresh(tenant, [started])


async def test_each_task_action_records_a_typed_event(tenant: Tenant) -> None:
    customer = await tenant.customer()
    cid = customer.id

    started = await step(tenant, cid, "verify_email", TaskAction.START)
    assert types(started) == ["task.started"]
    assert started[0].payload["task"] == "verify_email"
    assert started[0].payload["stage"] == "welcome"
    assert started[0].payload["status"] == "IN_PROGRESS"
    await assert_fresh(tenant, started)

    progressed = await step(tenant, cid, "verify_email", TaskAction.PROGRESS, progress=40)
    assert types(progressed) == ["task.progressed"]
    assert progressed[0].payload["progress"] == 40
    await assert_fresh(tenant, progressed)

    failed = await step(tenant, cid, "verify_email", TaskAction.FAIL, reason="bounced")
    assert types(failed) == ["task.failed"]
    assert failed[0].payload["status"] == "FAILED"
    assert failed[0].payload["reason"] == "bounced"

    retried = await step(tenant, cid, "verify_email", TaskAction.RETRY)
    assert types(retried) == ["task.retried"]
    assert retried[0].payload["status"] == "IN_PROGRESS"

    completed = await step(tenant, cid, "verify_email", TaskAction.COMPLETE)
    assert types(completed) == ["task.completed", "points.awarded", "task.unlocked"]
    assert completed[1].payload["points"] == 10
    assert completed[1].payload["total"] == 10
    assert completed[2].payload["task"] == "complete_profile"
    await assert_fresh(tenant, completed)
    assert completed[0].payload["workflow"]["points"] == 10

    skipped = await step(tenant, cid, "watch_intro", TaskAction.SKIP)
    assert types(skipped) == ["task.skipped"]
    assert skipped[0].payload["status"] == "SKIPPED"
    await assert_fresh(tenant, skipped)

    rows = await events_of(cid)
    assert [r.sequence for r in rows] == list(range(1, len(rows) + 1))
    assert {r.actor for r in rows[2:]} == {tenant.csm.label}


async def test_finishing_a_stage_records_unlocks_points_badge_and_celebrations(
    tenant: Tenant,
) -> None:
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    rows = await step(tenant, customer.id, "complete_profile", TaskAction.COMPLETE)
    kinds = types(rows)
    assert kinds[:2] == ["task.completed", "points.awarded"]
    for expected in ("stage.completed", "badge.earned", "stage.unlocked"):
        assert kinds.count(expected) == 1, kinds
    assert kinds.index("stage.completed") < kinds.index("stage.unlocked")
    by_type = {r.type: r for r in rows}
    assert by_type["stage.completed"].payload["stage"] == "welcome"
    assert by_type["stage.unlocked"].payload["stage"] == "setup"
    assert by_type["badge.earned"].payload["badge"]["key"] == "first-steps"
    awarded = [r.payload["points"] for r in rows if r.type == "points.awarded"]
    assert awarded == [15, 50]
    unlocked = {r.payload["task"] for r in rows if r.type == "task.unlocked"}
    assert unlocked == {"connect_data_source", "invite_team"}
    celebrations = [r.payload for r in rows if r.type == "celebration"]
    assert [c["kind"] for c in celebrations] == ["STAGE_COMPLETED", "BADGE_EARNED"]
    assert all(c["title"] and c["message"] for c in celebrations)
    await assert_fresh(tenant, rows)
    assert rows[-1].payload["workflow"]["points"] == 10 + 15 + 50
    assert rows[-1].payload["workflow"]["currentStage"] == "setup"


async def test_completing_the_workflow_records_it(tenant: Tenant) -> None:
    customer = await tenant.customer(signed_up_at=utcnow() - timedelta(days=10))
    required = [
        "verify_email",
        "complete_profile",
        "connect_data_source",
        "invite_team",
        "create_first_project",
        "add_client",
        "build_report",
        "set_up_integration",
    ]
    for key in required:
        await tenant.act(customer.id, key, TaskAction.COMPLETE)
    rows = await step(tenant, customer.id, "schedule_review", TaskAction.COMPLETE)
    kinds = types(rows)
    assert "workflow.completed" in kinds
    assert kinds.index("stage.completed") < kinds.index("workflow.completed")
    celebrations = [r.payload["kind"] for r in rows if r.type == "celebration"]
    assert celebrations[-1] == "WORKFLOW_COMPLETED"
    await assert_fresh(tenant, rows)
    figures = rows[-1].payload["workflow"]
    assert figures["status"] == "COMPLETED"
    assert figures["progress"] == 100.0
    assert figures["minutesRemaining"] == 0
    all_rows = await events_of(customer.id)
    assert [r.sequence for r in all_rows] == list(range(1, len(all_rows) + 1))
    unlocked = [r.payload["stage"] for r in all_rows if r.type == "stage.unlocked"]
    assert unlocked == ["setup", "features", "mastery"]


async def test_admin_override_records_who_and_why(tenant: Tenant) -> None:
    customer = await tenant.customer()
    before = await last_sequence(customer.id)
    async with transaction():
        await service.update_stage(
            tenant.admin,
            customer_id=str(customer.id),
            stage_key="welcome",
            action=StageAction.COMPLETE,
            reason="verified on a call",
        )
    rows = await events_of(customer.id, after=before)
    kinds = types(rows)
    assert kinds.count("stage.overridden") == 1
    assert "stage.completed" in kinds and "badge.earned" in kinds
    override = next(r for r in rows if r.type == "stage.overridden")
    assert override.payload["stage"] == "welcome"
    assert override.payload["action"] == "COMPLETE"
    assert override.actor == tenant.admin.label
    await assert_fresh(tenant, rows)


async def test_admin_override_event_carries_the_reason(tenant: Tenant) -> None:
    customer = await tenant.customer()
    before = await last_sequence(customer.id)
    async with transaction():
        await service.update_stage(
            tenant.admin,
            customer_id=str(customer.id),
            stage_key="welcome",
            action=StageAction.COMPLETE,
            reason="verified on a call",
        )
    rows = await events_of(customer.id, after=before)
    override = next(r for r in rows if r.type == "stage.overridden")
    assert override.payload.get("reason") == "verified on a call"
    assert [r.type for r in rows if "reason" in r.payload] == ["stage.overridden"]


async def test_settings_changes_are_recorded(tenant: Tenant) -> None:
    customer = await tenant.customer()
    before = await last_sequence(customer.id)
    for change in ({"paused": True}, {"paused": False}, {"reminders_enabled": False}):
        async with transaction():
            await service.update_settings(
                tenant.csm,
                customer_id=str(customer.id),
                paused=change.get("paused"),
                reminders_enabled=change.get("reminders_enabled"),
            )
    async with transaction():  # no change, no event
        await service.update_settings(
            tenant.csm, customer_id=str(customer.id), paused=False, reminders_enabled=None
        )
    rows = await events_of(customer.id, after=before)
    assert types(rows) == ["workflow.paused", "workflow.resumed", "workflow.settings_changed"]
    assert rows[2].payload["remindersEnabled"] is False
    assert all(set(r.payload["workflow"]) == FIGURES for r in rows)
    assert [r.sequence for r in rows] == [before + 1, before + 2, before + 3]


async def test_events_are_written_in_the_transaction_of_the_change(tenant: Tenant, db: str) -> None:
    customer = await tenant.customer()
    before = await last_sequence(customer.id)
    other = await asyncpg.connect(db)
    try:
        async with transaction() as conn:
            await service.update_task(
                tenant.csm,
                customer_id=str(customer.id),
                task_key="verify_email",
                action=TaskAction.COMPLETE,
            )
            xid = (await conn.execute_query_dict("SELECT txid_current() % 4294967296 AS x"))[0]
            # Not visible outside the transaction before it commits.
            seen = await other.fetchval(
                "SELECT count(*) FROM outbox_event WHERE customer_id = $1 AND sequence > $2",
                customer.id,
                before,
            )
            assert seen == 0
        rows = await other.fetch(
            "SELECT xmin::text::bigint AS x FROM outbox_event WHERE customer_id = $1 "
            "AND sequence > $2",
            customer.id,
            before,
        )
        workflow_xmin = await other.fetchval(
            "SELECT xmin::text::bigint FROM workflow WHERE customer_id = $1", customer.id
        )
        task_xmin = await other.fetchval(
            "SELECT t.xmin::text::bigint FROM workflow_task t JOIN workflow w "
            "ON w.id = t.workflow_id WHERE w.customer_id = $1 AND t.key = 'verify_email'",
            customer.id,
        )
    finally:
        await other.close()
    assert rows
    assert {r["x"] for r in rows} == {int(xid["x"])} == {workflow_xmin} == {task_xmin}


async def test_rolled_back_transaction_leaves_no_event_and_no_gap(tenant: Tenant) -> None:
    customer = await tenant.customer()
    before = await last_sequence(customer.id)

    with pytest.raises(RuntimeError, match="boom"):
        async with transaction():
            await service.update_task(
                tenant.csm,
                customer_id=str(customer.id),
                task_key="verify_email",
                action=TaskAction.COMPLETE,
            )
            assert await last_sequence(customer.id) > before  # recorded inside...
            raise RuntimeError("boom")
    assert await events_of(customer.id, after=before) == []  # ...and gone with the rollback
    stream = await EventStream.get(id=customer.id)
    assert stream.last_sequence == before

    with pytest.raises(TaskLocked):  # refused by the engine: nothing recorded either
        await tenant.act(customer.id, "invite_team", TaskAction.START)
    assert await events_of(customer.id, after=before) == []

    await tenant.act(customer.id, "verify_email", TaskAction.START)
    rows = await events_of(customer.id)
    assert [r.sequence for r in rows] == list(range(1, before + 2))
    assert rows[-1].type == "task.started"


async def test_notify_is_sent_on_commit_only(tenant: Tenant, db: str) -> None:
    customer = await tenant.customer()
    listener = await asyncpg.connect(db)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[3]))
    try:
        with pytest.raises(RuntimeError):
            async with transaction():
                await service.update_task(
                    tenant.csm,
                    customer_id=str(customer.id),
                    task_key="verify_email",
                    action=TaskAction.START,
                )
                raise RuntimeError("rolled back")
        await tenant.act(customer.id, "verify_email", TaskAction.START)
        payload = await asyncio.wait_for(received.get(), 5)
        assert payload == str(tenant.id)
        await asyncio.sleep(0.1)
        assert received.empty()  # exactly one NOTIFY: the committed transaction's
    finally:
        await listener.close()


async def _start_unlocked(tenant: Tenant, customer: Customer) -> None:
    """START on the customer's first task as an unlocked (optimistic) step."""
    await service.update_task(
        tenant.csm,
        customer_id=str(customer.id),
        task_key="verify_email",
        action=TaskAction.START,
        optimistic=True,
    )


async def test_an_unlocked_step_notifies_after_its_commit_once_per_burst(
    tenant: Tenant, db: str
) -> None:
    """The optimistic `updateTask` step commits on its own without a NOTIFY in its statement;
    the process sends one after it, one in flight at a time, so a burst of steps sends at
    least one and at most one per step, the last after every commit."""
    customers = [await tenant.customer() for _ in range(6)]
    listener = await asyncpg.connect(db)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[3]))

    try:
        await _start_unlocked(tenant, customers[0])
        assert await asyncio.wait_for(received.get(), 5) == str(tenant.id)
        await asyncio.sleep(0.2)
        assert received.empty()  # one step, one NOTIFY

        await asyncio.gather(*(_start_unlocked(tenant, c) for c in customers[1:]))
        await asyncio.wait_for(received.get(), 5)
        await asyncio.sleep(0.3)
        assert received.qsize() <= len(customers) - 2
        for customer in customers:
            assert types(await events_of(customer.id))[-1:] == ["task.started"]
    finally:
        await listener.close()


async def test_unlocked_steps_in_a_stream_share_notifies_at_least_an_interval_apart(
    tenant: Tenant, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A steady stream of steps is announced once per interval, never left unannounced: the
    step after an immediate NOTIFY waits for the next interval, then rides on its NOTIFY."""
    monkeypatch.setattr(outbox._waker, "interval", 0.5)
    customers = [await tenant.customer() for _ in range(4)]
    listener = await asyncpg.connect(db)
    received: asyncio.Queue[float] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, lambda *_: received.put_nowait(loop.time()))

    try:
        await asyncio.sleep(0.6)  # past any interval an earlier test started
        await _start_unlocked(tenant, customers[0])
        first = await asyncio.wait_for(received.get(), 5)
        for customer in customers[1:]:
            await _start_unlocked(tenant, customer)
        last_commit = loop.time()
        second = await asyncio.wait_for(received.get(), 5)
        assert second - first >= 0.45  # held for the interval, not one per step
        if last_commit < first + 0.45:  # the three steps within one interval (not too slow)
            assert second >= last_commit  # the held NOTIFY came after every commit
            await asyncio.sleep(0.7)
            assert received.empty()  # and it was the only one for them
        for customer in customers:
            assert types(await events_of(customer.id))[-1:] == ["task.started"]
    finally:
        await listener.close()


async def test_concurrent_changes_get_gap_free_sequences(tenant: Tenant) -> None:
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    before = await last_sequence(customer.id)

    async def progress(value: int) -> None:
        await tenant.act(customer.id, "verify_email", TaskAction.PROGRESS, progress=value)

    await asyncio.gather(*(progress(v) for v in range(10, 90, 8)))
    rows = await events_of(customer.id, after=before)
    assert [r.sequence for r in rows] == list(range(before + 1, before + 11))
    assert types(rows) == ["task.progressed"] * 10
    # Commit order is sequence order: the ids (taken at insert, under the stream lock) agree.
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    stream = await EventStream.get(id=customer.id)
    assert stream.last_sequence == before + 10


async def test_streams_are_per_customer_and_per_organization(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await tenant.customer()
    second = await tenant.customer()
    third = await other_tenant.customer()
    for customer in (first, second, third):
        rows = await events_of(customer.id)
        assert [r.sequence for r in rows] == [1, 2]

    async with transaction():  # organization-level events have their own stream
        await outbox.record(
            organization_id=tenant.id,
            customer_id=None,
            events=[("org.note", {"n": 1}), ("org.note", {"n": 2})],
            actor="test",
        )
    org_rows = await OutboxEvent.filter(stream=tenant.id).order_by("sequence")
    assert [(r.sequence, r.customer_id, r.payload["n"]) for r in org_rows] == [
        (1, None, 1),
        (2, None, 2),
    ]


async def test_a_stream_cannot_be_written_by_another_organization(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    customer = await tenant.customer()
    with pytest.raises(RuntimeError, match="another organization"):
        async with transaction():
            await outbox.record(
                organization_id=other_tenant.id,
                customer_id=customer.id,
                events=[("forged", {})],
            )
    assert types(await events_of(customer.id)) == ["customer.created", "workflow.started"]
    count = await get_connection("default").execute_query_dict(
        "SELECT count(*) AS n FROM outbox_event WHERE organization_id = $1", [other_tenant.id]
    )
    assert count[0]["n"] == 0
    assert await Customer.filter(id=customer.id).count() == 1


async def test_many_streams_are_recorded_in_one_statement_in_order(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    """`record_many` numbers each stream's events after its last one, in the given order, and
    refuses a stream of another organization."""
    a, b, fresh = await tenant.customer(), await tenant.customer(), uuid.uuid4()
    before = {c: await last_sequence(c) for c in (a.id, b.id)}
    async with transaction():
        n = await outbox.record_many(
            organization_id=tenant.id,
            events={
                a.id: [("health.changed", {"i": 1}), ("health.level_changed", {"i": 2})],
                b.id: [("health.changed", {"i": 3})],
                fresh: [("health.changed", {"i": 4})],
            },
            actor="system:test",
        )
    assert n == 4
    rows = await events_of(a.id, after=before[a.id])
    assert [(r.sequence, r.type, r.payload, r.actor) for r in rows] == [
        (before[a.id] + 1, "health.changed", {"i": 1}, "system:test"),
        (before[a.id] + 2, "health.level_changed", {"i": 2}, "system:test"),
    ]
    assert [(r.sequence, r.payload) for r in await events_of(b.id, after=before[b.id])] == [
        (before[b.id] + 1, {"i": 3})
    ]
    assert [(r.sequence, r.organization_id) for r in await events_of(fresh)] == [  # type: ignore[attr-defined]
        (1, tenant.id)
    ]
    assert (await EventStream.get(id=a.id)).last_sequence == before[a.id] + 2
    with pytest.raises(RuntimeError, match="another organization"):
        async with transaction():
            await outbox.record_many(
                organization_id=other_tenant.id, events={a.id: [("health.changed", {})]}
            )
    assert (await EventStream.get(id=a.id)).last_sequence == before[a.id] + 2
