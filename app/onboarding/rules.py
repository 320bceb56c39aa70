"""Pure decisions of the engine: task state machine, unlock conditions, derived figures."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from app.errors import (
    DependencyNotMet,
    InvalidTransition,
    TaskLocked,
    TaskRequired,
    ValidationFailed,
)
from app.onboarding.states import DONE, StageStatus, TaskAction, TaskStatus

if TYPE_CHECKING:
    from app.onboarding.engine import WorkflowState

_ALLOWED: dict[TaskAction, frozenset[TaskStatus]] = {
    TaskAction.START: frozenset({TaskStatus.AVAILABLE}),
    TaskAction.PROGRESS: frozenset({TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS}),
    TaskAction.COMPLETE: frozenset({TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS}),
    TaskAction.SKIP: frozenset({TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS}),
    TaskAction.FAIL: frozenset({TaskStatus.IN_PROGRESS}),
    TaskAction.RETRY: frozenset({TaskStatus.FAILED}),
}
_TARGET: dict[TaskAction, TaskStatus] = {
    TaskAction.START: TaskStatus.IN_PROGRESS,
    TaskAction.PROGRESS: TaskStatus.IN_PROGRESS,
    TaskAction.COMPLETE: TaskStatus.COMPLETED,
    TaskAction.SKIP: TaskStatus.SKIPPED,
    TaskAction.FAIL: TaskStatus.FAILED,
    TaskAction.RETRY: TaskStatus.IN_PROGRESS,
}


@dataclass
class TaskState:
    """What the engine knows of one task."""

    key: str
    stage_key: str
    position: int
    points: int
    estimated_minutes: int
    required: bool
    depends_on: tuple[str, ...]
    status: TaskStatus
    progress: int = 0
    failure_reason: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    id: Any = None


@dataclass
class StageState:
    """What the engine knows of one stage."""

    key: str
    name: str
    position: int
    status: StageStatus
    unlock: Mapping[str, Any] = field(default_factory=dict)
    reward_points: int = 0
    reward_badge: Mapping[str, Any] | None = None
    unlocked_at: datetime | None = None
    completed_at: datetime | None = None
    id: Any = None


def next_task_status(
    status: TaskStatus, action: TaskAction, *, required: bool, task_key: str = "task"
) -> TaskStatus:
    """The status a task moves to under `action`, or the reason it may not."""
    if status is TaskStatus.LOCKED:
        raise TaskLocked(
            f"Task {task_key!r} is locked; finish what unlocks it first.", task=task_key
        )
    if action is TaskAction.SKIP and required:
        raise TaskRequired(f"Task {task_key!r} is required and cannot be skipped.", task=task_key)
    if status not in _ALLOWED[action]:
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[action]))
        raise InvalidTransition(
            f"Cannot {action.value} task {task_key!r} while it is {status.value}; "
            f"{action.value} applies to a task that is {allowed}.",
            task=task_key,
            status=status.value,
            action=action.value,
        )
    return _TARGET[action]


def validate_progress(value: int | None) -> int:
    """A progress percentage between 0 and 100."""
    if value is None or not 0 <= value <= 100:
        raise ValidationFailed("PROGRESS needs `progress` between 0 and 100.", field="progress")
    return value


def validate_reason(value: str | None, *, what: str) -> str:
    """A non-empty reason, trimmed."""
    reason = (value or "").strip()
    if not reason:
        raise ValidationFailed(f"{what} needs a `reason`.", field="reason")
    if len(reason) > 2000:
        raise ValidationFailed("`reason` is longer than 2000 characters.", field="reason")
    return reason


def unmet_dependencies(task: TaskState, tasks: Mapping[str, TaskState]) -> list[str]:
    """Keys of the tasks `task` still waits for (done means completed or skipped)."""
    return [dep for dep in task.depends_on if dep in tasks and tasks[dep].status not in DONE]


def ensure_dependencies_met(task: TaskState, tasks: Mapping[str, TaskState]) -> None:
    """Refuse work on a task whose dependencies are not done."""
    missing = unmet_dependencies(task, tasks)
    if missing:
        names = ", ".join(repr(m) for m in missing)
        raise DependencyNotMet(
            f"Task {task.key!r} depends on {names}; complete them first.",
            task=task.key,
            missing=missing,
        )


def unlock_blockers(
    stage: StageState,
    *,
    stages: Sequence[StageState],
    tasks: Mapping[str, TaskState],
    points: int,
    signed_up_at: datetime,
    now: datetime,
) -> list[str]:
    """Why `stage` may not unlock yet, in words; empty when it may."""
    return list(_blockers(stage, stages, tasks, points, signed_up_at, now))


def may_unlock(stage: StageState, state: WorkflowState, now: datetime) -> bool:
    """Whether `stage` of the workflow `state` may unlock: `unlock_blockers` is empty,
    decided at the first blocker (only that one is put into words)."""
    blockers = _blockers(stage, state.stages, state.tasks, state.points, state.signed_up_at, now)
    return next(blockers, None) is None


def _blockers(
    stage: StageState,
    stages: Sequence[StageState],
    tasks: Mapping[str, TaskState],
    points: int,
    signed_up_at: datetime,
    now: datetime,
) -> Iterator[str]:
    """Why `stage` may not unlock yet, in words, one at a time."""
    rule = stage.unlock
    if rule.get("previous_stages_complete", True):
        pending = [
            s.name
            for s in stages
            if s.position < stage.position and s.status is not StageStatus.COMPLETED
        ]
        if pending:
            yield "complete " + ", ".join(pending) + " first"
    min_points = rule.get("min_points")
    if min_points is not None and points < min_points:
        yield f"reach {min_points} points (now {points})"
    days = rule.get("days_since_signup")
    if days is not None:
        elapsed = (now - signed_up_at).days
        if elapsed < days:
            yield f"wait until {days} days after signup ({elapsed} so far)"
    for key in rule.get("tasks_completed", []):
        task = tasks.get(key)
        if task is None or task.status is not TaskStatus.COMPLETED:
            yield f"complete task {key!r}"


def stage_is_complete(stage_key: str, tasks: Iterable[TaskState]) -> bool:
    """Every required task completed (or, with none required, every task done)."""
    mine = required = False
    done = True
    for t in tasks:
        if t.stage_key != stage_key:
            continue
        mine = True
        if t.required:
            if t.status is not TaskStatus.COMPLETED:
                return False
            required = True
        elif t.status not in DONE:
            done = False
    return required or (mine and done)


class Countable(Protocol):
    """What the derived figures read of a task: the engine's state or a loaded record."""

    @property
    def required(self) -> bool: ...
    @property
    def status(self) -> TaskStatus: ...
    @property
    def progress(self) -> int: ...
    @property
    def estimated_minutes(self) -> int: ...


def _counted(tasks: Iterable[Countable]) -> list[Countable]:
    listed = list(tasks)
    required = [t for t in listed if t.required]
    return required or listed


def progress_percent(tasks: Iterable[Countable]) -> float:
    """Percent of the tasks that count (the required ones) that are done, 0 to 100."""
    counted = _counted(tasks)
    if not counted:
        return 100.0
    done = sum(1 for t in counted if t.status in DONE)
    return round(100 * done / len(counted), 2)


def progress_and_minutes(tasks: Iterable[Countable]) -> tuple[float, int]:
    """`progress_percent` and `minutes_remaining` of the same tasks, in one pass over them."""
    counted = _counted(tasks)
    if not counted:
        return 100.0, 0
    done = 0
    left = 0.0
    for task in counted:
        status = task.status
        if status in DONE:
            done += 1
            continue
        share = task.progress / 100 if status is TaskStatus.IN_PROGRESS else 0.0
        left += task.estimated_minutes * (1 - share)
    return round(100 * done / len(counted), 2), round(left)


def minutes_remaining(tasks: Iterable[Countable]) -> int:
    """Estimated minutes left on the tasks that count, less the share already progressed."""
    return progress_and_minutes(tasks)[1]
