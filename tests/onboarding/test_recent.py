"""Unlocked steps reuse the stages and tasks their process wrote, only at the same version."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from typing import Any

import pytest

from app.db import transaction
from app.errors import NotFound
from app.onboarding import recent, records, service
from app.onboarding.states import TaskAction, TaskStatus
from tests.support.factories import Tenant


async def _step(tenant: Tenant, customer_id: object, key: str, action: TaskAction) -> Any:
    return await service.update_task(
        tenant.csm,
        customer_id=str(customer_id),
        task_key=key,
        action=action,
        optimistic=True,
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


async def test_the_next_unlocked_step_reads_only_the_workflow_row(
    tenant: Tenant, decoded: list[int]
) -> None:
    customer = await tenant.customer()
    first, _ = await _step(tenant, customer.id, "verify_email", TaskAction.START)
    assert recent.version(tenant.id, customer.id) == (first.workflow.id, first.workflow.version)
    second, task = await _step(tenant, customer.id, "verify_email", TaskAction.COMPLETE)
    assert decoded == [13, 0]  # the second read found the version it kept
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
    """The checklist page moves tasks by id: the read finds the task's customer as before,
    and skips the stages and tasks when that customer's kept version is current; another
    customer's task stays unknown to a CUSTOMER."""
    alice, bob = await tenant.customer(), await tenant.customer()
    first, task = await _step(tenant, alice.id, "verify_email", TaskAction.START)
    assert recent.customer_of_task(tenant.id, task.id) == alice.id
    moved, row = await service.update_task(
        tenant.customer_viewer(alice),
        action=TaskAction.COMPLETE,
        task_id=str(task.id),
        optimistic=True,
    )
    assert decoded == [13, 0]
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
