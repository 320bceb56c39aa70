"""The stages and tasks of workflows this process wrote lately, by workflow version.

An unlocked step (`service.load(..., lock=False)`) reads the customer's workflow row every
time, and its stages and tasks only when the workflow's id and version are not those kept
here (`records.customer_workflow(..., unless=...)`): one statement either way, and a step on a
workflow this process wrote last reads one row instead of one per task.

Why a kept checklist is the stored one: it is kept only after a write that committed on its
own (the unlocked step's guarded statement, which moved the version from the one it read to
this one and stored exactly these rows), and every change to a workflow's stages or tasks
moves its version (the engine's writes, `automation.actions`), which only ever goes up. So
while the row still has that id and version, nobody changed its stages or tasks. Several api
processes each keep their own: one that did not write the last version reads everything,
as before. Nothing is kept from a write inside a transaction, which could still roll back.
Entries are copies both ways (the records a step changes and answers with are its own), at
most `SIZE` workflows, least recently used out first.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import fields
from operator import attrgetter
from typing import Any

from app.onboarding.records import StageRecord, TaskRecord

SIZE = 1024

_STAGE_FIELDS = tuple(f.name for f in fields(StageRecord) if f.name != "tasks")
_TASK_FIELDS = tuple(f.name for f in fields(TaskRecord))
_stage_values = attrgetter(*_STAGE_FIELDS)
_task_values = attrgetter(*_TASK_FIELDS)

_Kept = tuple[uuid.UUID, int, tuple[tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...]], ...]]
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
    return [
        StageRecord(*stage, tasks=[TaskRecord(*t) for t in tasks])  # type: ignore[misc]
        for stage, tasks in kept[2]
    ]


def keep(
    organization_id: uuid.UUID,
    customer_id: uuid.UUID,
    workflow_id: uuid.UUID,
    at: int,
    stages: list[StageRecord],
) -> None:
    """Keep a copy of a workflow's stages and tasks as a committed write left them at
    version `at` (an older version than the one kept does not replace it)."""
    key = (organization_id, customer_id)
    kept = _kept.get(key)
    if kept is not None:
        if kept[0] == workflow_id and kept[1] >= at:
            return
        _forget(key, kept)  # its tasks may not be this workflow's (a new workflow)
    _kept[key] = (
        workflow_id,
        at,
        tuple((_stage_values(s), tuple(map(_task_values, s.tasks))) for s in stages),
    )
    _kept.move_to_end(key)
    for s in stages:
        for t in s.tasks:
            _owners[organization_id, t.id] = customer_id
    while len(_kept) > SIZE:
        _forget(*_kept.popitem(last=False))


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
