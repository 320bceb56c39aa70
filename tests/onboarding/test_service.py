"""The engine through its service, against real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from app.customers.models import Customer
from app.db import transaction
from app.errors import (
    DependencyNotMet,
    Forbidden,
    InvalidTransition,
    NotFound,
    TaskLocked,
    TaskRequired,
    WorkflowPaused,
)
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.onboarding import engine, service
from app.onboarding.engine import Outcome
from app.onboarding.models import StageOverride
from app.onboarding.states import (
    StageAction,
    StageStatus,
    TaskAction,
    TaskStatus,
    WorkflowStatus,
)
from tests.support.factories import Tenant


async def test_new_customer_gets_the_default_workflow(tenant: Tenant) -> None:
    customer = await tenant.customer()
    stages = await service.list_stages(tenant.csm, str(customer.id))
    assert [s.key for s in stages] == ["welcome", "setup", "features", "mastery"]
    assert [s.status for s in stages] == [StageStatus.UNLOCKED] + [StageStatus.LOCKED] * 3
    tasks = await service.list_tasks(tenant.csm, str(customer.id))
    assert len(tasks) >= 10
    available = {t.key for t in tasks if t.status == TaskStatus.AVAILABLE}
    assert available == {"verify_email", "watch_intro"}
    types = [e.type for e in await OutboxEvent.filter(customer_id=customer.id).order_by("sequence")]
    assert types[0] == "customer.created" and "workflow.started" in types


async def test_stage_completion_awards_reward_and_unlocks_next(tenant: Tenant) -> None:
    customer = await tenant.customer()
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    change, task = await tenant.act(customer.id, "complete_profile", TaskAction.COMPLETE)
    assert task.status == TaskStatus.COMPLETED
    assert change.outcome.completed_stages == ["welcome"]
    assert change.outcome.unlocked_stages == ["setup"]
    assert change.outcome.points_awarded == 15 + 50
    assert change.workflow.points == 10 + 15 + 50
    assert [b["key"] for b in change.workflow.badges] == ["first-steps"]
    kinds = [c.kind for c in change.outcome.celebrations]
    assert kinds == ["STAGE_COMPLETED", "BADGE_EARNED"]


async def test_refusals_carry_codes(tenant: Tenant) -> None:
    customer = await tenant.customer()
    with pytest.raises(TaskLocked):
        await tenant.act(customer.id, "invite_team", TaskAction.START)
    with pytest.raises(DependencyNotMet) as dep:
        await tenant.act(customer.id, "complete_profile", TaskAction.START)
    assert dep.value.details["missing"] == ["verify_email"]
    with pytest.raises(TaskRequired):
        await tenant.act(customer.id, "verify_email", TaskAction.SKIP)
    with pytest.raises(InvalidTransition):
        await tenant.act(customer.id, "verify_email", TaskAction.FAIL, reason="x")
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    _, failed = await tenant.act(customer.id, "verify_email", TaskAction.FAIL, reason="bounced")
    assert failed.status == TaskStatus.FAILED and failed.failure_reason == "bounced"
    _, retried = await tenant.act(customer.id, "verify_email", TaskAction.RETRY)
    assert retried.status == TaskStatus.IN_PROGRESS and retried.attempts == 1
    _, skipped = await tenant.act(customer.id, "watch_intro", TaskAction.SKIP)
    assert skipped.status == TaskStatus.SKIPPED


async def test_paused_workflow_refuses_moves(tenant: Tenant) -> None:
    customer = await tenant.customer()
    async with transaction():
        await service.update_settings(
            tenant.csm, customer_id=str(customer.id), paused=True, reminders_enabled=None
        )
    with pytest.raises(WorkflowPaused):
        await tenant.act(customer.id, "verify_email", TaskAction.START)


async def test_failed_unit_of_work_leaves_nothing(tenant: Tenant) -> None:
    customer = await tenant.customer()
    before = await OutboxEvent.filter(customer_id=customer.id).count()
    with pytest.raises(RuntimeError):
        async with transaction():
            await service.update_task(
                tenant.csm,
                customer_id=str(customer.id),
                task_key="verify_email",
                action=TaskAction.COMPLETE,
            )
            raise RuntimeError("boom")
    tasks = {t.key: t for t in await service.list_tasks(tenant.csm, str(customer.id))}
    assert tasks["verify_email"].status == TaskStatus.AVAILABLE
    assert await OutboxEvent.filter(customer_id=customer.id).count() == before


async def test_admin_overrides_are_audited(tenant: Tenant) -> None:
    customer = await tenant.customer()
    with pytest.raises(Forbidden):
        async with transaction():
            await service.update_stage(
                tenant.csm,
                customer_id=str(customer.id),
                stage_key="setup",
                action=StageAction.UNLOCK,
                reason="vip",
            )
    async with transaction():
        change, stage = await service.update_stage(
            tenant.admin,
            customer_id=str(customer.id),
            stage_key="setup",
            action=StageAction.COMPLETE,
            reason="migrated from the old tool",
        )
    assert stage.status == StageStatus.COMPLETED
    assert change.workflow.points == 30 + 20 + 10 + 100  # the stage's tasks and its reward
    audit = await StageOverride.get(stage_id=stage.id)
    assert (audit.action, audit.actor, audit.reason) == (
        "COMPLETE",
        tenant.admin.subject,
        "migrated from the old tool",
    )
    async with transaction():
        change, stage = await service.update_stage(
            tenant.admin,
            customer_id=str(customer.id),
            stage_key="setup",
            action=StageAction.RESET,
            reason="redo",
        )
    assert stage.status == StageStatus.LOCKED and change.workflow.points == 0


async def test_time_based_stage_unlocks_on_the_next_move_and_by_the_scheduler(
    tenant: Tenant,
) -> None:
    from datetime import timedelta

    from app.jobs import unlock_due_stages
    from app.kit.clock import utcnow

    done = [
        "verify_email",
        "complete_profile",
        "connect_data_source",
        "invite_team",
        "create_first_project",
        "add_client",
        "build_report",
    ]
    early = utcnow() - timedelta(days=10)
    for cid_holder in range(2):
        customer = await tenant.customer(signed_up_at=early)
        for key in done:
            await tenant.act(
                customer.id,
                key,
                TaskAction.COMPLETE,
                now=early + timedelta(hours=cid_holder),
            )
        stages = {s.key: s.status for s in await service.list_stages(tenant.csm, str(customer.id))}
        assert (
            stages["features"] == StageStatus.COMPLETED and stages["mastery"] == StageStatus.LOCKED
        )
        if cid_holder == 0:
            # the wait passed long ago: the next move unlocks Mastery before applying itself
            change, task = await tenant.act(customer.id, "set_up_integration", TaskAction.START)
            assert task.status == TaskStatus.IN_PROGRESS
            assert change.outcome.unlocked_stages == ["mastery"]
        else:
            assert await unlock_due_stages() >= 1
            stages = {
                s.key: s.status for s in await service.list_stages(tenant.csm, str(customer.id))
            }
            assert stages["mastery"] == StageStatus.UNLOCKED


async def test_an_unlocked_step_overtaken_by_another_writes_nothing(tenant: Tenant) -> None:
    customer = await tenant.customer()
    loaded = await service.load(tenant.csm, customer.id, lock=False)
    out = engine.apply_task_action(loaded.state, "verify_email", TaskAction.COMPLETE, now=utcnow())
    await tenant.act(customer.id, "verify_email", TaskAction.START)  # another change first
    before = await OutboxEvent.filter(customer_id=customer.id).count()
    assert not await service.persist(loaded, out, utcnow(), actor="test")
    tasks = {t.key: t for t in await service.list_tasks(tenant.csm, str(customer.id))}
    assert tasks["verify_email"].status == TaskStatus.IN_PROGRESS  # the other change stands
    assert await OutboxEvent.filter(customer_id=customer.id).count() == before
    # the same step computed from a fresh unlocked read is written, with its events
    _, task = await service.update_task(
        tenant.csm,
        customer_id=str(customer.id),
        task_key="verify_email",
        action=TaskAction.COMPLETE,
        optimistic=True,
    )
    assert task.status == TaskStatus.COMPLETED
    assert await OutboxEvent.filter(customer_id=customer.id).count() > before
    with pytest.raises(service.Stale):  # what the caller retries under the row lock
        stale = await service.load(tenant.csm, customer.id, lock=False)
        await tenant.act(customer.id, "watch_intro", TaskAction.START)
        engine.apply_task_action(stale.state, "watch_intro", TaskAction.COMPLETE, now=utcnow())
        await service._persist(tenant.csm, stale, Outcome(), utcnow())


async def test_an_unlocked_step_by_task_id_finds_the_workflow_in_its_one_read(
    tenant: Tenant,
) -> None:
    """By task id, the unlocked step reads the task's workflow in the same statement as its
    checklist; a customer reaches its own tasks only, an operator those of its organization."""
    alice, bob = await tenant.customer(), await tenant.customer()
    (alice_task,) = [
        t for t in await service.list_tasks(tenant.csm, str(alice.id)) if t.key == "verify_email"
    ]
    moved = await service.update_task(
        tenant.customer_viewer(alice),
        action=TaskAction.START,
        task_id=str(alice_task.id),
        optimistic=True,
    )
    assert (moved[1].key, moved[1].status) == ("verify_email", TaskStatus.IN_PROGRESS)
    with pytest.raises(NotFound):
        await service.update_task(
            tenant.customer_viewer(bob),
            action=TaskAction.COMPLETE,
            task_id=str(alice_task.id),
            optimistic=True,
        )
    _, row = await service.update_task(
        tenant.csm, action=TaskAction.COMPLETE, task_id=str(alice_task.id), optimistic=True
    )
    assert row.status is TaskStatus.COMPLETED
    with pytest.raises(NotFound):
        await service.update_task(
            tenant.csm, action=TaskAction.START, task_id=str(uuid.uuid4()), optimistic=True
        )


async def test_the_customer_row_mirrors_the_workflow_status(tenant: Tenant) -> None:
    """The step's write updates the customer's mirror only when it differs from the new status:
    a step that leaves the status alone does not touch the customer row, one that completes
    the workflow does, and a mirror found out of date is put right by the next step."""
    customer = await tenant.customer()
    await Customer.filter(id=customer.id).update(workflow_status=WorkflowStatus.COMPLETED)
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    assert (await Customer.get(id=customer.id)).workflow_status is WorkflowStatus.ACTIVE
    for stage in ("welcome", "setup", "features", "mastery"):
        async with transaction():
            change, _ = await service.update_stage(
                tenant.admin,
                customer_id=str(customer.id),
                stage_key=stage,
                action=StageAction.COMPLETE,
                reason="migrated from the old onboarding tool",
            )
    assert change.workflow.status is WorkflowStatus.COMPLETED
    assert (await Customer.get(id=customer.id)).workflow_status is WorkflowStatus.COMPLETED
