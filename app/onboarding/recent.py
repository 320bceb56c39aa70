"""The workflows this process wrote lately: their row, stages and tasks, by workflow version.

An unlocked step (`service.update_task(..., optimistic=True)`) whose workflow is kept here
at all computes its step from the kept copy and sends only the guarded write (one
statement); otherwise, or when that write finds the workflow changed, it reads the workflow
row, and its stages and tasks only when the workflow's id and version are not those kept
here (`records.customer_workflow(..., unless=...)`), and writes (two statements).

Why a kept copy is the stored one while the workflow row still has its id and version: it
is kept only after a write that committed on its own (the unlocked step's guarded
statement, which moved the version from the one it computed from to this one and stored
exactly these values), and every change to a workflow's row, stages or tasks moves its
version, which only ever goes up: the engine's writes (`snapshot.write`), the settings
(`snapshot.write_settings`), the automation actions (`automation.actions`: added tasks,
awarded points) and the demo data's rewards (`demo_usage`). A workflow's id, its customer
and its tasks' ids and keys never change. The customer's values a step uses are not the
workflow's: its sign-up time (time-based unlocks) and the status its row mirrors for lists
(whether the write updates it); the write's guard checks both against the copy's, along
with the version (`snapshot.write(..., guarded=True)`). So a step computed from a kept copy
is written only if nothing it was computed from changed since the copy was stored; when
anything did, nothing is written and the step is computed again from what it reads.

Several api processes each keep their own: a step in one that did not write the last
version finds out by its write's guard, then reads everything, as before. Nothing is kept
from a write inside a transaction, which could still roll back. Entries are copies both
ways (the records a step changes and answers with are its own), at most `SIZE` workflows,
least recently used out first. They are tuples (the workflow's badges copied in and out; a
stage's unlock rule and reward badge, which nothing changes in place, shared), so an entry
kept after a step computed from the version kept before it copies only the tasks and stages
the step changed and shares the others' tuples with that version (`keep(..., changed=...)`).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import fields
from operator import attrgetter
from typing import Any

from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord

SIZE = 1024

_STAGE_FIELDS = tuple(f.name for f in fields(StageRecord) if f.name != "tasks")
_TASK_FIELDS = tuple(f.name for f in fields(TaskRecord))
_WORKFLOW_FIELDS = tuple(f.name for f in fields(WorkflowRecord))
_stage_values = attrgetter(*_STAGE_FIELDS)
_task_values = attrgetter(*_TASK_FIELDS)
_workflow_values = attrgetter(*_WORKFLOW_FIELDS)
_BADGES = _WORKFLOW_FIELDS.index("badges")

_Checklist = tuple[tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]], ...]
"""Each stage's values (but its tasks) with its tasks' values, in order."""
_Kept = tuple[uuid.UUID, int, _Checklist, tuple[Any, ...] | None]
"""Workflow id, version, the stages with their tasks, and the workflow row (with the
customer's values a step uses) when kept too."""
_kept: OrderedDict[tuple[uuid.UUID, uuid.UUID], _Kept] = OrderedDict()
_owners: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = {}
"""(organization, task id) -> the customer whose kept workflow holds the task."""


def version(organization_id: uuid.UUID, customer_id: uuid.UUID) -> tuple[uuid.UUID, int] | None:
    """The workflow id and version whose checklist is kept for the customer, if any."""
    kept = _kept.get((organization_id, customer_id))
    return None if kept is None else (kept[0], kept[1])


def customer_of_task(organization_id: uuid.UUID, task_id: uuid.UUID) -> uuid.UUID | None:
    """The customer whose kept workflow holds the task, if one does."""
    return _owners.get((organization_id, task_id))


def checklist(
    organization_id: uuid.UUID, customer_id: uuid.UUID, workflow_id: uuid.UUID, at: int
) -> list[StageRecord] | None:
    """Fresh records of the customer's kept stages with their tasks, if kept for that
    workflow at version `at`; None otherwise."""
    key = (organization_id, customer_id)
    kept = _kept.get(key)
    if kept is None or kept[0] != workflow_id or kept[1] != at:
        return None
    _kept.move_to_end(key)
    return _stages(kept)


def _stages(kept: _Kept) -> list[StageRecord]:
    return [
        StageRecord(*stage, tasks=[TaskRecord(*t) for t in tasks])  # type: ignore[misc]
        for stage, tasks in kept[2]
    ]


def workflow(
    organization_id: uuid.UUID, customer_id: uuid.UUID
) -> tuple[WorkflowRecord, list[StageRecord]] | None:
    """Fresh records of the customer's kept workflow row and checklist, as the last write of
    this process left them, if the row was kept too; None otherwise. They are current only
    while the stored row has their version and the customer the values they hold (see the
    module): a step computed from them must be written guarded."""
    key = (organization_id, customer_id)
    kept = _kept.get(key)
    if kept is None or kept[3] is None:
        return None
    _kept.move_to_end(key)
    values = list(kept[3])
    values[_BADGES] = list(values[_BADGES])
    return WorkflowRecord(*values), _stages(kept)


def forget(
    organization_id: uuid.UUID, customer_id: uuid.UUID, workflow_id: uuid.UUID, at: int
) -> None:
    """Drop what is kept for the customer if it is the workflow `workflow_id` at version
    `at` (found changed since)."""
    key = (organization_id, customer_id)
    kept = _kept.get(key)
    if kept is not None and kept[0] == workflow_id and kept[1] == at:
        del _kept[key]
        _forget(key, kept)


def keep(
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    workflow_id: uuid.UUID,
    at: int,
    stages: list[StageRecord],
    record: WorkflowRecord | None = None,
    *,
    changed: tuple[list[TaskRecord], list[StageRecord]] | None = None,
) -> None:
    """Keep a copy of a workflow's stages and tasks, and of its `record` (with the
    customer's sign-up time and mirrored status) if given, as a committed write left them at
    version `at` (an older version than the one kept does not replace it).

    `changed`: the task and stage records the write changed, all others of `stages` being
    as stored at version `at - 1`. When that version is the one kept, the kept copies of the
    others are still theirs and are reused (only the changed ones are copied)."""
    key = (organization_id, customer_id)
    kept = _kept.get(key)
    owned = False
    checklist = None
    if kept is not None:
        if kept[0] == workflow_id:
            if kept[1] >= at:
                return
            if changed is not None and kept[1] == at - 1:
                checklist = _patched(kept[2], *changed)
            # a workflow's tasks are never removed: those of the kept version still own
            # their entries, and only tasks added since (same count: none) need one
            owned = checklist is not None or _count(kept) == sum(len(s.tasks) for s in stages)
        else:
            _forget(key, kept)  # its tasks are another workflow's
    if checklist is None:
        checklist = tuple([(_stage_values(s), tuple(map(_task_values, s.tasks))) for s in stages])
    _kept[key] = (
        workflow_id,
        at,
        checklist,
        None if record is None else _record_values(record),
    )
    _kept.move_to_end(key)
    if not owned:
        for s in stages:
            for t in s.tasks:
                _owners[organization_id, t.id] = customer_id
    while len(_kept) > SIZE:
        _forget(*_kept.popitem(last=False))


def _patched(
    checklist: _Checklist, tasks: list[TaskRecord], stages: list[StageRecord]
) -> _Checklist | None:
    """A kept checklist with copies of the changed `tasks` and `stages` in place of theirs,
    the others' kept copies reused (immutable tuples, shared by versions only); None when
    one of them is not in it (then it is not the checklist they changed)."""
    if not tasks and not stages:
        return checklist
    new_tasks = {t.id: _task_values(t) for t in tasks}
    new_stages = {s.id: s for s in stages}
    touched = {t.stage_id for t in tasks}
    found = 0
    patched = []
    for kept in checklist:
        stage, stage_tasks = kept
        stage_id = stage[0]
        if stage_id not in new_stages and stage_id not in touched:
            patched.append(kept)
            continue
        if stage_id in new_stages:
            stage = _stage_values(new_stages[stage_id])
            found += 1
        if stage_id in touched:
            replaced = []
            for task in stage_tasks:
                values = new_tasks.get(task[0])
                if values is None:
                    replaced.append(task)
                else:
                    replaced.append(values)
                    found += 1
            stage_tasks = tuple(replaced)
        patched.append((stage, stage_tasks))
    return tuple(patched) if found == len(new_tasks) + len(new_stages) else None


def _record_values(record: WorkflowRecord) -> tuple[Any, ...] | None:
    """The values of a workflow record to keep; None when the customer's values a step uses
    were not read with it."""
    if record.signed_up_at is None or record.customer_status is None:
        return None
    values = list(_workflow_values(record))
    values[_BADGES] = list(values[_BADGES])
    return tuple(values)


def _count(kept: _Kept) -> int:
    """How many tasks a kept entry holds."""
    return sum(len(tasks) for _, tasks in kept[2])


def _forget(key: tuple[uuid.UUID, uuid.UUID], kept: _Kept) -> None:
    """Drop the task owners of a kept entry that is replaced or evicted."""
    org, customer = key
    for _, tasks in kept[2]:
        for task in tasks:
            if _owners.get((org, task[0])) == customer:
                del _owners[org, task[0]]


def clear() -> None:
    """Forget everything kept."""
    _kept.clear()
    _owners.clear()
