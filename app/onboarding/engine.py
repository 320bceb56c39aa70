"""The workflow engine over in-memory state: pure, so the service, the demo and tests share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from app.errors import InvalidTransition
from app.onboarding import rules
from app.onboarding.definitions import TemplateDef
from app.onboarding.rules import StageState, TaskState
from app.onboarding.states import (
    DONE,
    StageAction,
    StageStatus,
    TaskAction,
    TaskStatus,
    WorkflowStatus,
)


@dataclass
class WorkflowState:
    """A workflow with its stages and tasks, as the engine sees it."""

    status: WorkflowStatus
    points: int
    badges: list[dict[str, Any]]
    paused: bool
    signed_up_at: datetime
    stages: list[StageState]
    tasks: dict[str, TaskState]
    completed_at: datetime | None = None

    def stage(self, key: str) -> StageState | None:
        return next((s for s in self.stages if s.key == key), None)

    @property
    def progress(self) -> float:
        """Percent done, 0-100 (the scale of every progress figure)."""
        return (
            100.0
            if self.status is WorkflowStatus.COMPLETED
            else rules.progress_percent(self.tasks.values())
        )

    @property
    def minutes_remaining(self) -> int:
        return self.progress_and_minutes()[1]

    def progress_and_minutes(self) -> tuple[float, int]:
        """`progress` and `minutes_remaining`, in one pass over the tasks."""
        if self.status is WorkflowStatus.COMPLETED:
            return 100.0, 0
        return rules.progress_and_minutes(self.tasks.values())

    @property
    def current_stage(self) -> StageState | None:
        """The first stage not completed, or the last one when all are (by position; of
        stages at the same position, the first, or the last when all are completed)."""
        open_stages = [s for s in self.stages if s.status is not StageStatus.COMPLETED]
        if open_stages:
            return min(open_stages, key=_POSITION)
        return max(reversed(self.stages), key=_POSITION) if self.stages else None


@dataclass
class Celebration:
    """Something worth a pop-up."""

    kind: str
    title: str
    message: str
    stage_key: str | None = None
    badge: dict[str, Any] | None = None
    points: int = 0


@dataclass
class Outcome:
    """Everything one engine step changed, for persistence, events and the API payload."""

    changed_tasks: set[str] = field(default_factory=set)
    changed_stages: set[str] = field(default_factory=set)
    unlocked_tasks: list[str] = field(default_factory=list)
    unlocked_stages: list[str] = field(default_factory=list)
    completed_stages: list[str] = field(default_factory=list)
    points_awarded: int = 0
    badges_awarded: list[dict[str, Any]] = field(default_factory=list)
    workflow_completed: bool = False
    workflow_changed: bool = False
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    celebrations: list[Celebration] = field(default_factory=list)

    def emit(self, kind: str, **payload: Any) -> None:
        self.events.append((kind, payload))

    def then(self, later: Outcome) -> Outcome:
        """This outcome followed by `later`, as one."""
        return Outcome(
            changed_tasks=self.changed_tasks | later.changed_tasks,
            changed_stages=self.changed_stages | later.changed_stages,
            unlocked_tasks=self.unlocked_tasks + later.unlocked_tasks,
            unlocked_stages=self.unlocked_stages + later.unlocked_stages,
            completed_stages=self.completed_stages + later.completed_stages,
            points_awarded=self.points_awarded + later.points_awarded,
            badges_awarded=self.badges_awarded + later.badges_awarded,
            workflow_completed=self.workflow_completed or later.workflow_completed,
            workflow_changed=self.workflow_changed or later.workflow_changed,
            events=self.events + later.events,
            celebrations=self.celebrations + later.celebrations,
        )


_TASK_EVENT = {
    TaskAction.START: "task.started",
    TaskAction.PROGRESS: "task.progressed",
    TaskAction.COMPLETE: "task.completed",
    TaskAction.SKIP: "task.skipped",
    TaskAction.FAIL: "task.failed",
    TaskAction.RETRY: "task.retried",
}


def initial_state(template: TemplateDef, *, signed_up_at: datetime, now: datetime) -> WorkflowState:
    """A fresh workflow for `template`, with what qualifies already unlocked."""
    stages = [
        StageState(
            key=s.key,
            name=s.name,
            position=i,
            status=StageStatus.LOCKED,
            unlock=s.unlock.model_dump(),
            reward_points=s.reward.points,
            reward_badge=s.reward.badge.model_dump() if s.reward.badge else None,
        )
        for i, s in enumerate(template.stages)
    ]
    tasks: dict[str, TaskState] = {}
    for i, s in enumerate(template.stages):
        for j, t in enumerate(s.tasks):
            tasks[t.key] = TaskState(
                key=t.key,
                stage_key=s.key,
                position=i * 1000 + j,
                points=t.points,
                estimated_minutes=t.estimated_minutes,
                required=t.required,
                depends_on=tuple(t.depends_on),
                status=TaskStatus.LOCKED,
            )
    state = WorkflowState(
        status=WorkflowStatus.ACTIVE,
        points=0,
        badges=[],
        paused=False,
        signed_up_at=signed_up_at,
        stages=stages,
        tasks=tasks,
    )
    settle(state, Outcome(), now=now)
    return state


def apply_task_action(
    state: WorkflowState,
    task_key: str,
    action: TaskAction,
    *,
    now: datetime,
    progress: int | None = None,
    reason: str | None = None,
    settled: bool = False,
) -> Outcome:
    """Apply `action` to one task, then settle stages; raises a DomainError when refused.

    `settled`: the state is as `settle` at `now` leaves it. A move that then changes no
    task's or stage's status (PROGRESS on a task already in progress, in a stage already in
    progress) leaves nothing to settle: every check of `settle` reads only statuses, points,
    the tasks' and stages' fixed rules and the time, so it is not run again."""
    task = state.tasks[task_key]
    before = task.status
    stage = state.stage(task.stage_key)
    if (
        task.status is TaskStatus.LOCKED
        and stage is not None
        and stage.status is not StageStatus.LOCKED
    ):
        rules.ensure_dependencies_met(task, state.tasks)
    target = rules.next_task_status(task.status, action, required=task.required, task_key=task.key)
    if action is TaskAction.PROGRESS:
        progress = rules.validate_progress(progress)
    if action is TaskAction.FAIL:
        reason = rules.validate_reason(reason, what="FAIL")

    out = Outcome()
    task.status = target
    out.changed_tasks.add(task.key)
    if action in (TaskAction.START, TaskAction.PROGRESS) and task.started_at is None:
        task.started_at = now
    if action is TaskAction.PROGRESS:
        task.progress = progress or 0
    elif action is TaskAction.RETRY:
        task.attempts += 1
        task.failure_reason = None
        task.started_at = now
    elif action is TaskAction.FAIL:
        task.failure_reason = reason
    elif target in DONE:
        task.completed_at = now
        task.progress = 100 if target is TaskStatus.COMPLETED else task.progress
    payload: dict[str, Any] = {"task": task.key, "stage": task.stage_key, "status": target.value}
    if action is TaskAction.PROGRESS:
        payload["progress"] = task.progress
    if reason:
        payload["reason"] = reason
    out.emit(_TASK_EVENT[action], **payload)
    if target is TaskStatus.COMPLETED and task.points:
        _award_points(state, out, task.points, source=f"task:{task.key}")
    if stage is not None and stage.status is StageStatus.UNLOCKED:
        stage.status = StageStatus.IN_PROGRESS
        out.changed_stages.add(stage.key)
    if not (settled and target is before and not out.changed_stages):
        settle(state, out, now=now)
    return out


def apply_stage_action(
    state: WorkflowState, stage_key: str, action: StageAction, *, now: datetime
) -> Outcome:
    """An admin override on a stage: UNLOCK, COMPLETE or RESET."""
    stage = state.stage(stage_key)
    assert stage is not None
    out = Outcome()
    if action is StageAction.UNLOCK:
        if stage.status is not StageStatus.LOCKED:
            raise InvalidTransition(
                f"Stage {stage_key!r} is already {stage.status.value}.", stage=stage_key
            )
        _unlock_stage(stage, out, now=now)
    elif action is StageAction.COMPLETE:
        if stage.status is StageStatus.COMPLETED:
            raise InvalidTransition(f"Stage {stage_key!r} is already COMPLETED.", stage=stage_key)
        if stage.unlocked_at is None:
            stage.unlocked_at = now
        for task in state.tasks.values():
            if task.stage_key == stage_key and task.status not in DONE:
                task.status, task.completed_at, task.progress = TaskStatus.COMPLETED, now, 100
                out.changed_tasks.add(task.key)
                out.emit("task.completed", task=task.key, stage=stage_key, status="COMPLETED")
                if task.points:
                    _award_points(state, out, task.points, source=f"task:{task.key}")
        _complete_stage(state, stage, out, now=now)
    else:
        _reset_stage(state, stage, out)
    out.emit("stage.overridden", stage=stage_key, action=action.value)
    settle(state, out, now=now)
    return out


def award(
    state: WorkflowState,
    *,
    points: int,
    badge: dict[str, Any] | None,
    source: str,
    now: datetime,
) -> Outcome:
    """Points and/or a badge earned outside the checklist (a milestone), then settle: the
    points may unlock a stage."""
    out = Outcome()
    if points:
        _award_points(state, out, points, source=source)
    if badge and not any(b.get("key") == badge["key"] for b in state.badges):
        earned = {**badge, "source": source, "awarded_at": now.isoformat()}
        state.badges.append(earned)
        out.badges_awarded.append(earned)
        out.workflow_changed = True
        out.emit("badge.earned", badge=earned)
    settle(state, out, now=now)
    return out


_POSITION = attrgetter("position")


def comes_due(state: WorkflowState, *, now: datetime) -> bool:
    """Whether a stage waiting for days since signup may unlock at `now`. On a state that
    `settle` left unchanged at an earlier time (and nothing changed since), this is the only
    thing a `settle` at `now` could change: every other check of it does not depend on
    the time, and found nothing to do then."""
    elapsed = None
    for stage in state.stages:
        if stage.status is not StageStatus.LOCKED:
            continue
        days = stage.unlock.get("days_since_signup")
        if days is None:
            continue
        if elapsed is None:
            elapsed = (now - state.signed_up_at).days
        # not yet waited long enough: `may_unlock` would say no for that alone
        if elapsed >= days and rules.may_unlock(stage, state, now):
            return True
    return False


def settle(state: WorkflowState, out: Outcome, *, now: datetime) -> None:
    """Complete what is done, unlock what qualifies, until nothing changes."""
    stages = sorted(state.stages, key=_POSITION)
    tasks = sorted(state.tasks.values(), key=_POSITION)
    by_key = {s.key: s for s in stages}
    changed = True
    while changed:
        changed = False
        for stage in stages:
            if stage.status in (
                StageStatus.UNLOCKED,
                StageStatus.IN_PROGRESS,
            ) and rules.stage_is_complete(stage.key, tasks):
                _complete_stage(state, stage, out, now=now)
                changed = True
            elif stage.status is StageStatus.LOCKED and rules.may_unlock(stage, state, now):
                _unlock_stage(stage, out, now=now)
                changed = True
        for task in tasks:
            if task.status is not TaskStatus.LOCKED:
                continue
            home = by_key.get(task.stage_key)
            if (
                home is not None
                and home.status is not StageStatus.LOCKED
                and not rules.unmet_dependencies(task, state.tasks)
            ):
                task.status = TaskStatus.AVAILABLE
                out.changed_tasks.add(task.key)
                out.unlocked_tasks.append(task.key)
                out.emit("task.unlocked", task=task.key, stage=task.stage_key)
                changed = True
    all_done = bool(state.stages) and all(s.status is StageStatus.COMPLETED for s in state.stages)
    if all_done and state.status is not WorkflowStatus.COMPLETED:
        state.status, state.completed_at = WorkflowStatus.COMPLETED, now
        out.workflow_completed = out.workflow_changed = True
        out.emit("workflow.completed", points=state.points)
        out.celebrations.append(
            Celebration(
                kind="WORKFLOW_COMPLETED",
                title="Onboarding complete!",
                message=(
                    f"Every stage is done, with {state.points} points"
                    f" and {len(state.badges)} badges."
                ),
                points=state.points,
            )
        )


def _award_points(state: WorkflowState, out: Outcome, points: int, *, source: str) -> None:
    state.points += points
    out.points_awarded += points
    out.workflow_changed = True
    out.emit("points.awarded", points=points, total=state.points, source=source)


def _unlock_stage(stage: StageState, out: Outcome, *, now: datetime) -> None:
    stage.status, stage.unlocked_at = StageStatus.UNLOCKED, now
    out.changed_stages.add(stage.key)
    out.unlocked_stages.append(stage.key)
    out.emit("stage.unlocked", stage=stage.key, name=stage.name)


def _complete_stage(
    state: WorkflowState, stage: StageState, out: Outcome, *, now: datetime
) -> None:
    stage.status, stage.completed_at = StageStatus.COMPLETED, now
    out.changed_stages.add(stage.key)
    out.completed_stages.append(stage.key)
    out.emit("stage.completed", stage=stage.key, name=stage.name)
    if stage.reward_points:
        _award_points(state, out, stage.reward_points, source=f"stage:{stage.key}")
    message = f"You finished {stage.name}"
    message += f" and earned {stage.reward_points} points." if stage.reward_points else "."
    out.celebrations.append(
        Celebration(
            kind="STAGE_COMPLETED",
            title=f"{stage.name} complete!",
            message=message,
            stage_key=stage.key,
            points=stage.reward_points,
        )
    )
    badge = dict(stage.reward_badge) if stage.reward_badge else None
    if badge and not any(b.get("key") == badge["key"] for b in state.badges):
        badge.update(stage=stage.key, awarded_at=now.isoformat())
        state.badges.append(badge)
        out.badges_awarded.append(badge)
        out.workflow_changed = True
        out.emit("badge.earned", badge=badge)
        out.celebrations.append(
            Celebration(
                kind="BADGE_EARNED",
                title=f"Badge earned: {badge['name']}",
                message=badge.get("description") or f"Awarded for completing {stage.name}.",
                stage_key=stage.key,
                badge=badge,
            )
        )


def _reset_stage(state: WorkflowState, stage: StageState, out: Outcome) -> None:
    lost = 0
    for task in state.tasks.values():
        if task.stage_key != stage.key:
            continue
        if task.status is TaskStatus.COMPLETED:
            lost += task.points
        task.status, task.progress, task.attempts = TaskStatus.LOCKED, 0, 0
        task.failure_reason = task.started_at = task.completed_at = None
        out.changed_tasks.add(task.key)
    if stage.status is StageStatus.COMPLETED:
        lost += stage.reward_points
        state.badges = [b for b in state.badges if b.get("stage") != stage.key]
    state.points = max(0, state.points - lost)
    stage.status, stage.unlocked_at, stage.completed_at = StageStatus.LOCKED, None, None
    out.changed_stages.add(stage.key)
    out.workflow_changed = True
    if state.status is WorkflowStatus.COMPLETED:
        state.status, state.completed_at = WorkflowStatus.ACTIVE, None
