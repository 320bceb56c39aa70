"""Unlocked steps reuse the workflow their process wrote, only at the same version: a step
computed from a kept copy is written only if nothing it was computed from changed since;
otherwise it is computed again from what is stored. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import textwrap
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection

from app.automation import actions
from app.automation import rules as automation_rules
from app.customers.models import Customer
from app.db import transaction
from app.errors import NotFound, TaskLocked, WorkflowPaused
from app.kit.clock import utcnow
from app.onboarding import recent, records, service
from app.onboarding.models import Workflow, WorkflowTask
from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord
from app.onboarding.states import StageStatus, TaskAction, TaskStatus, WorkflowStatus
from tests.graphql_shape.test_dataloaders import counting_statements
from tests.support.factories import Tenant


async def _step(
    tenant: Tenant, customer_id: object, key: str, action: TaskAction, **kw: Any
) -> Any:
    return await service.update_task(
        tenant.csm,
        customer_id=str(customer_id),
        task_key=key,
        action=action,
        optimistic=True,
        **kw,
    )


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many checklist rows each read decoded."""
    counts: list[int] = []
    decode = records._checklist_rows

    def counting(rows: Iterable[Any]) -> Any:
        listed = list(rows)
        counts.append(len(listed))
        return decode(listed)

    monkeypatch.setattr(records, "_checklist_rows", counting)
    return counts


async def test_the_next_unlocked_step_is_its_write_alone(
    tenant: Tenant, decoded: list[int]
) -> None:
    customer = await tenant.customer()
    first, _ = await _step(tenant, customer.id, "verify_email", TaskAction.START)
    assert recent.version(tenant.id, customer.id) == (first.workflow.id, first.workflow.version)
    with counting_statements() as statements:
        second, task = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert decoded == [13]  # the second step read nothing: it computed from the kept copy
    assert len(statements) == 1, statements  # the guarded write alone
    assert task.status is TaskStatus.COMPLETED
    assert second.workflow.version == first.workflow.version + 1
    assert first.tasks(["verify_email"])[0] is not task  # each step has its own records
    fresh = {t.key: t for t in await service.list_tasks(tenant.csm, str(customer.id))}
    for stage in second.loaded.stages.values():
        for t in stage.tasks:
            assert t == fresh[t.key]  # what the step kept and answered is what is stored


async def test_a_change_made_elsewhere_is_read_in_full(tenant: Tenant, decoded: list[int]) -> None:
    """A change this process did not keep (here a locked step, as another api process's
    would be) moves the version: the next unlocked step reads every row again."""
    customer = await tenant.customer()
    await _step(tenant, customer.id, "verify_email", TaskAction.START)
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)  # in a transaction
    _, task = await _step(tenant, customer.id, "complete_profile", TaskAction.START)
    assert task.status is TaskStatus.IN_PROGRESS  # its dependency's completion was seen
    assert decoded[0] == 13 and decoded[-1] == 13


async def test_nothing_is_kept_from_a_transaction(tenant: Tenant) -> None:
    customer = await tenant.customer()
    with pytest.raises(RuntimeError):
        async with transaction():
            await tenant.act(customer.id, "verify_email", TaskAction.START)
            raise RuntimeError("rolled back")
    assert recent.version(tenant.id, customer.id) is None
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    assert recent.version(tenant.id, customer.id) is None


async def test_steps_by_task_id_use_what_was_kept_too(tenant: Tenant, decoded: list[int]) -> None:
    """The checklist page moves tasks by id: the kept copy names the task's customer as the
    read would; another customer's task stays unknown to a CUSTOMER."""
    alice, bob = await tenant.customer(), await tenant.customer()
    first, task = await _step(tenant, alice.id, "verify_email", TaskAction.START)
    assert recent.customer_of_task(tenant.id, task.id) == alice.id
    moved, row = await service.update_task(
        tenant.customer_viewer(alice),
        action=TaskAction.COMPLETE,
        task_id=str(task.id),
        optimistic=True,
    )
    assert decoded == [13]  # nothing read: the kept copy knew the task and its customer
    assert (row.key, row.status) == ("verify_email", TaskStatus.COMPLETED)
    assert moved.workflow.version == first.workflow.version + 1
    with pytest.raises(NotFound):
        await service.update_task(
            tenant.customer_viewer(bob),
            action=TaskAction.RETRY,
            task_id=str(task.id),
            optimistic=True,
        )


async def test_it_keeps_a_bounded_number_of_workflows(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recent, "SIZE", 2)
    customers = [await tenant.customer() for _ in range(3)]
    for c in customers:
        await _step(tenant, c.id, "verify_email", TaskAction.START)
    kept = [recent.version(tenant.id, c.id) is not None for c in customers]
    assert kept == [False, True, True]
    owners = {recent.customer_of_task(tenant.id, t.id) for t in await _tasks(tenant, customers)}
    assert owners == {None, customers[1].id, customers[2].id}


async def _tasks(tenant: Tenant, customers: list[Any]) -> list[Any]:
    return [t for c in customers for t in await service.list_tasks(tenant.csm, str(c.id))]


async def test_a_customers_new_workflow_replaces_the_owners_of_its_old_tasks(
    tenant: Tenant,
) -> None:
    """Kept under a new workflow id, a customer's entry no longer names the old tasks."""
    alice = await tenant.customer()
    moved, _ = await _step(tenant, alice.id, "verify_email", TaskAction.START)
    wf = moved.workflow
    stages = recent.checklist(tenant.id, alice.id, wf.id, wf.version)
    assert stages is not None
    old = [t.id for s in stages for t in s.tasks]
    assert {recent.customer_of_task(tenant.id, t) for t in old} == {alice.id}
    fresh = [
        dataclasses.replace(s, tasks=[dataclasses.replace(t, id=uuid.uuid4()) for t in s.tasks])
        for s in stages
    ]
    recent.keep(tenant.id, alice.id, uuid.uuid4(), 1, fresh)
    assert {recent.customer_of_task(tenant.id, t) for t in old} == {None}
    new = [t.id for s in fresh for t in s.tasks]
    assert {recent.customer_of_task(tenant.id, t) for t in new} == {alice.id}


@contextmanager
def another_process() -> Iterator[None]:
    """Run the block with what another api process would keep: nothing of this one's."""
    saved = recent._kept, recent._owners
    recent._kept, recent._owners = OrderedDict(), {}
    try:
        yield
    finally:
        recent._kept, recent._owners = saved


async def _kept_after_start(tenant: Tenant) -> tuple[Customer, int, int]:
    """A customer whose workflow this process keeps after an unlocked START of
    verify_email; and the kept version and points."""
    customer = await tenant.customer()
    change, _ = await _step(tenant, customer.id, "verify_email", TaskAction.START)
    kept = recent.workflow(tenant.id, customer.id)
    assert kept is not None and kept[0].version == change.workflow.version
    return customer, change.workflow.version, change.workflow.points


VERIFY_EMAIL_POINTS = 10


async def _stored(customer: Customer) -> Workflow:
    return await Workflow.get(customer_id=customer.id)


async def test_another_writer_moves_the_version_and_the_step_is_computed_again(
    tenant: Tenant, decoded: list[int]
) -> None:
    """Another api process's write (its own SQL here: points and version) makes the kept copy
    stale: the step's guarded write stores nothing, the step reads and applies on what is
    stored, and the points the other writer added are not lost."""
    customer, at, points = await _kept_after_start(tenant)
    await get_connection("default").execute_query(
        "UPDATE workflow SET points = points + 1000, version = version + 1 WHERE customer_id = $1",
        [customer.id],
    )
    with counting_statements() as statements:
        change, task = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert len(statements) == 3, statements  # the rejected write, the read, the write
    assert decoded[-1] == 13  # read in full: the kept version was not the stored one
    assert task.status is TaskStatus.COMPLETED
    stored = await _stored(customer)
    assert stored.version == at + 2 == change.workflow.version
    assert stored.points == change.workflow.points == points + 1000 + VERIFY_EMAIL_POINTS
    kept = recent.workflow(tenant.id, customer.id)
    assert kept is not None and (kept[0].version, kept[0].points) == (at + 2, stored.points)


async def test_a_step_of_another_process_is_seen(tenant: Tenant) -> None:
    """Two api processes each keep their own copy: a step in one after a step in the other
    applies on top of it (the other's task move is kept, not overwritten)."""
    customer, at, _ = await _kept_after_start(tenant)
    with another_process():
        await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
        assert recent.workflow(tenant.id, customer.id) is not None
    # this process still keeps verify_email IN_PROGRESS at `at`
    change, task = await _step(tenant, customer.id, "watch_intro", TaskAction.START)
    assert task.status is TaskStatus.IN_PROGRESS
    assert change.tasks(["verify_email"])[0].status is TaskStatus.COMPLETED
    assert change.workflow.version == at + 2
    stored = {t.key: t.status for t in await WorkflowTask.filter(workflow_id=change.workflow.id)}
    assert stored["verify_email"] is TaskStatus.COMPLETED
    assert stored["watch_intro"] is TaskStatus.IN_PROGRESS


async def test_writes_between_the_kept_step_and_its_write_are_not_overwritten(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process moves the task twice after this one computed a RETRY from its kept
    copy and before that write reaches PostgreSQL: the write stores nothing and the RETRY
    runs again on what is stored (applied on the copy, it would store one attempt, not two)."""
    from app.kit import group_commit

    customer = await tenant.customer()
    await _step(tenant, customer.id, "verify_email", TaskAction.START)
    change, _ = await _step(tenant, customer.id, "verify_email", TaskAction.FAIL, reason="bounced")
    at = change.workflow.version
    commit_alone = group_commit.commit_alone
    interleaved: list[int] = []

    async def after_another(sql: str, args: list[Any]) -> Any:
        if not interleaved:
            interleaved.append(1)
            with another_process():
                await _step(tenant, customer.id, "verify_email", TaskAction.RETRY)
                await _step(tenant, customer.id, "verify_email", TaskAction.FAIL, reason="again")
        return await commit_alone(sql, args)

    monkeypatch.setattr(group_commit, "commit_alone", after_another)
    change, task = await _step(tenant, customer.id, "verify_email", TaskAction.RETRY)
    assert interleaved == [1]
    assert (task.status, task.attempts) == (TaskStatus.IN_PROGRESS, 2)
    assert change.workflow.version == at + 3
    row = await WorkflowTask.get(workflow_id=change.workflow.id, key="verify_email")
    assert (row.status, row.attempts) == (TaskStatus.IN_PROGRESS, 2)


async def test_a_changed_sign_up_time_is_detected(tenant: Tenant, decoded: list[int]) -> None:
    """The sign-up time is the customer's, not the workflow's (its version does not move):
    the write's guard checks it, and the step is computed with the stored one."""
    customer, at, _ = await _kept_after_start(tenant)
    earlier = customer.signed_up_at - timedelta(days=30)
    await Customer.filter(id=customer.id).update(signed_up_at=earlier)
    change, _ = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert decoded[-1] == 13
    assert change.workflow.signed_up_at == earlier
    assert change.workflow.version == at + 1  # the rejected write stored nothing
    kept = recent.workflow(tenant.id, customer.id)
    assert kept is not None and kept[0].signed_up_at == earlier


async def test_a_changed_status_mirror_is_detected_and_put_right(
    tenant: Tenant, decoded: list[int]
) -> None:
    """The kept copy says the customer's row mirrors the workflow's status, so its write
    would leave that row alone; the guard sees the row changed, and the step computed again
    from what is stored puts the mirror right."""
    customer, at, _ = await _kept_after_start(tenant)
    await Customer.filter(id=customer.id).update(workflow_status=WorkflowStatus.COMPLETED)
    change, _ = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert decoded[-1] == 13
    assert change.workflow.version == at + 1
    row = await Customer.get(id=customer.id)
    assert row.workflow_status is WorkflowStatus.ACTIVE is change.workflow.status


async def test_points_awarded_by_an_automation_are_not_lost(
    tenant: Tenant, decoded: list[int]
) -> None:
    customer, at, points = await _kept_after_start(tenant)
    ctx = actions.Context(
        organization_id=tenant.id,
        customer_id=customer.id,
        rule_id=uuid.uuid4(),
        rule_name="bonus",
        action_id=uuid.uuid4(),
        key="bonus",
        depth=0,
        variables={},
        now=utcnow(),
    )
    async with transaction():
        await actions.award_points(
            automation_rules.AwardPoints(type="award_points", points=500, reason="bonus"), ctx
        )
    change, _ = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert decoded[-1] == 13
    assert change.workflow.points == (await _stored(customer)).points
    assert change.workflow.points == points + 500 + VERIFY_EMAIL_POINTS
    assert change.workflow.version > at + 1


async def test_a_pause_is_seen_though_the_kept_copy_is_running(
    tenant: Tenant, decoded: list[int]
) -> None:
    """Settings move the version: a step on a workflow paused since it was kept is refused
    on what is stored, and nothing is written."""
    customer, at, _ = await _kept_after_start(tenant)
    async with transaction():
        await service.update_settings(
            tenant.admin, customer_id=str(customer.id), paused=True, reminders_enabled=None
        )
    with pytest.raises(WorkflowPaused):
        await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    stored = await _stored(customer)
    assert stored.paused and stored.version == at + 1
    task = await WorkflowTask.get(workflow_id=stored.id, key="verify_email")
    assert task.status is TaskStatus.IN_PROGRESS
    assert recent.workflow(tenant.id, customer.id) is None  # the stale copy is dropped


async def test_concurrent_steps_from_the_kept_copy_apply_once(tenant: Tenant) -> None:
    """Twenty concurrent COMPLETEs of one task, all computed from the same kept copy: one
    applies; the others find the version moved and are refused on what is stored."""
    customer, at, points = await _kept_after_start(tenant)

    async def complete() -> Any:
        try:
            return await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
        except service.Stale:
            async with transaction():
                return await service.update_task(
                    tenant.csm,
                    customer_id=str(customer.id),
                    task_key="verify_email",
                    action=TaskAction.COMPLETE,
                )

    results = await asyncio.gather(*(complete() for _ in range(20)), return_exceptions=True)
    applied = [r for r in results if not isinstance(r, BaseException)]
    assert len(applied) == 1, results
    stored = await _stored(customer)
    assert stored.version == at + 1 and stored.points == points + VERIFY_EMAIL_POINTS


_WORKER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from app.accounts.models import Role
    from app.accounts.viewer import Viewer
    from app.db import close_db, init_db, transaction
    from app.errors import DomainError
    from app.onboarding import service
    from app.onboarding.states import TaskAction

    async def main(url, org, customer, rounds):
        await init_db(url, pool_max=4)
        viewer = Viewer(subject="csm@example.com", organization_id=uuid.UUID(org), role=Role.CSM)
        retried = 0
        for i in range(rounds):
            for action in (TaskAction.FAIL, TaskAction.RETRY):
                move = dict(viewer=viewer, customer_id=customer, task_key="verify_email",
                            action=action, reason="again" if action is TaskAction.FAIL else None)
                try:
                    try:
                        await service.update_task(**move, optimistic=True)
                    except service.Stale:
                        async with transaction():
                            await service.update_task(**move)
                except DomainError:
                    continue  # the other process moved the task first
                retried += action is TaskAction.RETRY
        await close_db()
        print(retried)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


async def test_two_processes_on_one_workflow_lose_no_update(tenant: Tenant, db: str) -> None:
    """Two real api processes, each with its own kept copies, FAIL and RETRY one task as
    fast as they can: every RETRY that was answered is counted in the stored attempts (a
    step applied on stale data would store a count another one already stored)."""
    customer, _, _ = await _kept_after_start(tenant)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = [db, str(tenant.id), str(customer.id), "60"]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, *args, env=env, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    retried = sum(int(out.decode().split()[-1]) for out, _ in outs)
    assert retried > 0
    task = await WorkflowTask.get(workflow__customer_id=customer.id, key="verify_email")
    assert task.attempts == retried


async def test_a_task_added_to_a_kept_workflow_is_found_by_its_id(
    tenant: Tenant, decoded: list[int]
) -> None:
    """The kept entry of a workflow names the customer of each of its tasks, through every
    write of the same workflow: also of a task added since (as automations add them, with
    the version moved), once a step has read it."""
    customer, _, _ = await _kept_after_start(tenant)
    wf = await _stored(customer)
    stage_id = (await WorkflowTask.get(workflow_id=wf.id, key="verify_email")).stage_id
    added = await WorkflowTask.create(
        organization_id=tenant.id,
        workflow_id=wf.id,
        stage_id=stage_id,
        key="auto-added",
        title="Added",
        description="",
        position=99,
        points=0,
        required=False,
        status=TaskStatus.AVAILABLE,
        updated_at=utcnow(),
    )
    await get_connection("default").execute_query(
        "UPDATE workflow SET version = version + 1 WHERE id = $1", [wf.id]
    )
    assert recent.customer_of_task(tenant.id, added.id) is None
    await _step(tenant, customer.id, "verify_email", TaskAction.PROGRESS, progress=50)
    assert decoded[-1] == 14  # read in full, with the added task
    tasks = await WorkflowTask.filter(workflow_id=wf.id)
    assert {recent.customer_of_task(tenant.id, t.id) for t in tasks} == {customer.id}
    reads = len(decoded)
    _, row = await service.update_task(
        tenant.customer_viewer(customer),
        action=TaskAction.COMPLETE,
        task_id=str(added.id),
        optimistic=True,
    )
    assert len(decoded) == reads  # from the kept copy: nothing read
    assert (row.key, row.status) == ("auto-added", TaskStatus.COMPLETED)
    assert {recent.customer_of_task(tenant.id, t.id) for t in tasks} == {customer.id}


async def test_a_stage_that_comes_due_unlocks_before_a_kept_step_acts(tenant: Tenant) -> None:
    """A step computed from the kept copy settles what came due since it was kept: the stage
    waiting for days since signup unlocks first, so a task of it can be started at once,
    with the unlock's events before the task's."""
    customer = await tenant.customer()
    now = customer.signed_up_at + timedelta(hours=1)
    for key in (
        "verify_email", "complete_profile", "watch_intro",
        "connect_data_source", "invite_team", "configure_notifications",
        "create_first_project", "add_client", "build_report", "try_automation",
    ):  # fmt: skip
        await _step(tenant, customer.id, key, TaskAction.COMPLETE, now=now)
    kept = recent.workflow(tenant.id, customer.id)
    assert kept is not None
    assert [s.status.value for s in kept[1]] == ["COMPLETED"] * 3 + ["LOCKED"]
    # a kept step before the waiting time changes nothing of the stage
    with pytest.raises(TaskLocked):
        await _step(tenant, customer.id, "set_up_integration", TaskAction.START, now=now)
    later = customer.signed_up_at + timedelta(days=3, minutes=1)
    decoded_before = recent.version(tenant.id, customer.id)
    with counting_statements() as statements:
        change, task = await _step(
            tenant, customer.id, "set_up_integration", TaskAction.START, now=later
        )
    assert decoded_before is not None and len(statements) == 1  # from the kept copy
    assert task.status is TaskStatus.IN_PROGRESS
    assert change.outcome.unlocked_stages == ["mastery"]
    kinds = [kind for kind, _ in change.outcome.events]
    assert kinds.index("stage.unlocked") < kinds.index("task.started")


def _records(at: int) -> tuple[uuid.UUID, uuid.UUID, WorkflowRecord, list[StageRecord]]:
    """An organization, a customer, and their workflow record and checklist at version `at`
    (two stages of two tasks), as a step reads them; no database."""
    org, customer, workflow_id, now = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), utcnow()
    stages = []
    for i, status in enumerate((StageStatus.IN_PROGRESS, StageStatus.LOCKED)):
        stage = StageRecord(
            id=uuid.uuid4(),
            workflow_id=workflow_id,
            key=f"s{i}",
            name=f"S{i}",
            description="",
            position=i,
            status=status,
            unlock={"previous_stages_complete": True},
            reward_points=10,
            reward_badge=None,
            unlocked_at=now if i == 0 else None,
            completed_at=None,
        )
        for j in range(2):
            task = TaskRecord(
                id=uuid.uuid4(),
                workflow_id=workflow_id,
                stage_id=stage.id,
                stage_key=stage.key,
                key=f"t{i}{j}",
                title="",
                description="",
                position=i * 1000 + j,
                points=10,
                estimated_minutes=5,
                required=True,
                depends_on=(),
                help_resources=(),
                success_criterion=None,
                status=TaskStatus.AVAILABLE if i == 0 else TaskStatus.LOCKED,
                progress=0,
                failure_reason=None,
                attempts=0,
                started_at=None,
                completed_at=None,
                updated_at=now,
            )
            stage.tasks.append(task)
        stages.append(stage)
    record = WorkflowRecord(
        id=workflow_id,
        organization_id=org,
        customer_id=customer,
        template_id=uuid.uuid4(),
        status=WorkflowStatus.ACTIVE,
        points=0,
        badges=[],
        paused=False,
        reminders_enabled=True,
        started_at=now,
        completed_at=None,
        last_activity_at=now,
        version=at,
        progress=0.0,
        minutes_remaining=20,
        current_stage_key="s0",
        signed_up_at=now,
        customer_status=WorkflowStatus.ACTIVE,
    )
    return org, customer, record, stages


def _values(stages: list[StageRecord]) -> list[Any]:
    return [dataclasses.astuple(s) for s in stages]


def test_a_step_on_the_kept_version_copies_only_what_it_changed() -> None:
    """Kept after a step computed from the kept version, an entry shares with that version
    the copies of what the step did not change; still, nothing a caller holds is the kept
    state: records handed out and records handed in can be changed at will afterwards."""
    org, customer, record, stages = _records(1)
    recent.keep(org, customer, record.id, 1, stages, record)
    before = recent._kept[org, customer][2]
    got = recent.workflow(org, customer)
    assert got is not None
    wf, step = got
    task, stage = step[0].tasks[1], step[0]
    task.status, task.progress = TaskStatus.IN_PROGRESS, 40
    stage.status = StageStatus.COMPLETED
    wf.version, wf.points = 2, 10
    wf.badges.append({"key": "b"})
    recent.keep(org, customer, record.id, 2, step, wf, changed=([task], [stage]))
    after = recent._kept[org, customer][2]
    assert after[1] is before[1]  # the stage untouched: its kept copy reused
    assert after[0][1][0] is before[0][1][0]  # so is the task untouched of a changed stage
    expected = _values(step)
    # the caller changes every record it holds, those of unchanged tasks too
    for s in step:
        s.status, s.unlocked_at = StageStatus.LOCKED, None
        for t in s.tasks:
            t.status, t.progress, t.attempts = TaskStatus.FAILED, 99, 7
    wf.badges.append({"key": "later"})
    kept = recent.workflow(org, customer)
    assert kept is not None
    assert _values(kept[1]) == expected
    assert kept[0].version == 2 and kept[0].badges == [{"key": "b"}]
    # and records handed out again are copies too
    kept[1][1].tasks[0].status = TaskStatus.SKIPPED
    kept[0].badges.clear()
    again = recent.workflow(org, customer)
    assert again is not None
    assert _values(again[1]) == expected and again[0].badges == [{"key": "b"}]
    assert recent.checklist(org, customer, record.id, 2) is not None


def test_a_step_on_another_version_is_copied_in_full() -> None:
    """When the version a step was computed from is not the one kept (another process wrote
    one in between), what it did not change may still differ from the kept copy: every
    record is copied."""
    org, customer, record, stages = _records(1)
    recent.keep(org, customer, record.id, 1, stages, record)
    # version 2, written elsewhere: a task of the second stage failed
    stages[1].tasks[0].status = TaskStatus.FAILED
    # version 3, this step: a task of the first stage started
    task = stages[0].tasks[0]
    task.status = TaskStatus.IN_PROGRESS
    record.version = 3
    recent.keep(org, customer, record.id, 3, stages, record, changed=([task], []))
    kept = recent.workflow(org, customer)
    assert kept is not None and kept[0].version == 3
    assert _values(kept[1]) == _values(stages)
    assert kept[1][1].tasks[0].status is TaskStatus.FAILED


def test_a_changed_record_the_kept_entry_does_not_hold_copies_in_full() -> None:
    org, customer, record, stages = _records(1)
    recent.keep(org, customer, record.id, 1, stages, record)
    stranger = dataclasses.replace(stages[0].tasks[0], id=uuid.uuid4())
    stages[0].tasks.append(stranger)
    record.version = 2
    recent.keep(org, customer, record.id, 2, stages, record, changed=([stranger], []))
    kept = recent.workflow(org, customer)
    assert kept is not None and _values(kept[1]) == _values(stages)
    assert recent.customer_of_task(org, stranger.id) == customer


async def test_what_kept_steps_keep_is_what_is_stored(tenant: Tenant) -> None:
    """Steps after steps from the kept copy (a task, then its stage completed, tasks and a
    stage unlocked): the kept copy is the stored checklist each time."""
    customer = await tenant.customer()
    await _step(tenant, customer.id, "verify_email", TaskAction.START)
    outcomes = []
    for key, action in (
        ("verify_email", TaskAction.PROGRESS),
        ("verify_email", TaskAction.COMPLETE),
        ("watch_intro", TaskAction.SKIP),
        ("complete_profile", TaskAction.COMPLETE),
        ("connect_data_source", TaskAction.START),
    ):
        change, _ = await _step(tenant, customer.id, key, action, progress=50)
        outcomes.append(change.outcome)
        kept = recent.workflow(tenant.id, customer.id)
        assert kept is not None and kept[0].version == change.workflow.version
        (wf,) = await records.workflows_by_customer(tenant.id, [customer.id])
        assert wf is not None
        (stored,) = await records.checklists(tenant.id, [wf.id])
        assert _values(kept[1]) == _values(stored), key
    assert [bool(o.completed_stages) for o in outcomes] == [False] * 3 + [True, False]
    assert outcomes[3].unlocked_tasks and outcomes[4].changed_stages == {"setup"}
