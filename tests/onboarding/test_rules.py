"""The pure decisions of the onboarding engine, over plain data: no database."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.errors import (
    DependencyNotMet,
    DomainError,
    InvalidTransition,
    TaskLocked,
    TaskRequired,
    ValidationFailed,
)
from app.onboarding import rules
from app.onboarding.rules import StageState, TaskState
from app.onboarding.states import StageStatus, TaskAction, TaskStatus

S = TaskStatus
A = TaskAction
SIGNUP = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def task(
    key: str = "t",
    *,
    stage: str = "s",
    status: TaskStatus = S.AVAILABLE,
    required: bool = True,
    depends_on: tuple[str, ...] = (),
    minutes: int = 10,
    points: int = 10,
    progress: int = 0,
    position: int = 0,
) -> TaskState:
    return TaskState(
        key=key,
        stage_key=stage,
        position=position,
        points=points,
        estimated_minutes=minutes,
        required=required,
        depends_on=depends_on,
        status=status,
        progress=progress,
    )


def stage(
    key: str,
    name: str,
    position: int,
    status: StageStatus = StageStatus.LOCKED,
    **unlock: Any,
) -> StageState:
    return StageState(key=key, name=name, position=position, status=status, unlock=unlock)


# --------------------------------------------------------------------------------------------
# Task state machine
# --------------------------------------------------------------------------------------------

# The design, written out independently of the implementation: which (status, action) pairs
# are legal and where they lead. Everything else is an InvalidTransition, except that a LOCKED
# task refuses every action with TaskLocked, and SKIP of a required task is TaskRequired.
LEGAL: dict[tuple[TaskStatus, TaskAction], TaskStatus] = {
    (S.AVAILABLE, A.START): S.IN_PROGRESS,
    (S.AVAILABLE, A.PROGRESS): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.PROGRESS): S.IN_PROGRESS,
    (S.AVAILABLE, A.COMPLETE): S.COMPLETED,
    (S.IN_PROGRESS, A.COMPLETE): S.COMPLETED,
    (S.AVAILABLE, A.SKIP): S.SKIPPED,
    (S.IN_PROGRESS, A.SKIP): S.SKIPPED,
    (S.IN_PROGRESS, A.FAIL): S.FAILED,
    (S.FAILED, A.RETRY): S.IN_PROGRESS,
}


def expected_outcome(
    status: TaskStatus, action: TaskAction, required: bool
) -> TaskStatus | type[DomainError]:
    if status is S.LOCKED:
        return TaskLocked
    if action is A.SKIP and required:
        return TaskRequired
    return LEGAL.get((status, action), InvalidTransition)


TABLE = [
    pytest.param(
        status,
        action,
        required,
        expected_outcome(status, action, required),
        id=f"{status.value}-{action.value}-{'required' if required else 'optional'}",
    )
    for status, action, required in itertools.product(S, A, (True, False))
]


def test_the_table_covers_every_combination() -> None:
    assert len(TABLE) == len(S) * len(A) * 2 == 72
    # and it is not trivially all errors: 9 legal moves for optional tasks, 7 for required
    legal = [p for p in TABLE if isinstance(p.values[3], TaskStatus)]
    assert len(legal) == 16


@pytest.mark.parametrize(("status", "action", "required", "expected"), TABLE)
def test_next_task_status(
    status: TaskStatus,
    action: TaskAction,
    required: bool,
    expected: TaskStatus | type[DomainError],
) -> None:
    if isinstance(expected, TaskStatus):
        assert rules.next_task_status(status, action, required=required) is expected
        return
    with pytest.raises(DomainError) as caught:
        rules.next_task_status(status, action, required=required, task_key="invite_team")
    assert type(caught.value) is expected
    assert caught.value.details["task"] == "invite_team"
    assert "'invite_team'" in caught.value.message


def test_error_codes_are_stable() -> None:
    assert TaskLocked.code == "TASK_LOCKED"
    assert TaskRequired.code == "TASK_REQUIRED"
    assert InvalidTransition.code == "INVALID_TRANSITION"
    assert DependencyNotMet.code == "DEPENDENCY_NOT_MET"
    assert ValidationFailed.code == "VALIDATION_FAILED"


def test_invalid_transition_tells_what_would_be_allowed() -> None:
    with pytest.raises(InvalidTransition) as caught:
        rules.next_task_status(S.COMPLETED, A.START, required=True, task_key="verify_email")
    err = caught.value
    assert err.details == {"task": "verify_email", "status": "COMPLETED", "action": "START"}
    assert err.message == (
        "Cannot START task 'verify_email' while it is COMPLETED; "
        "START applies to a task that is AVAILABLE."
    )


def test_retry_is_only_from_failed_and_fail_only_from_in_progress() -> None:
    with pytest.raises(InvalidTransition) as caught:
        rules.next_task_status(S.AVAILABLE, A.FAIL, required=True)
    assert "IN_PROGRESS" in caught.value.message
    with pytest.raises(InvalidTransition) as caught:
        rules.next_task_status(S.IN_PROGRESS, A.RETRY, required=True)
    assert "FAILED" in caught.value.message


# --------------------------------------------------------------------------------------------
# Progress and reason validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 50, 99, 100])
def test_validate_progress_accepts_0_to_100(value: int) -> None:
    assert rules.validate_progress(value) == value


@pytest.mark.parametrize("value", [None, -1, 101, 1000, -100])
def test_validate_progress_refuses_out_of_range(value: int | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules.validate_progress(value)
    assert caught.value.details == {"field": "progress"}
    assert "between 0 and 100" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("too hard", "too hard"), ("  padded \n", "padded"), ("x" * 2000, "x" * 2000)],
)
def test_validate_reason_trims(raw: str, clean: str) -> None:
    assert rules.validate_reason(raw, what="FAIL") == clean


@pytest.mark.parametrize("raw", [None, "", "   ", "\n\t "])
def test_validate_reason_refuses_empty(raw: str | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules.validate_reason(raw, what="FAIL")
    assert caught.value.details == {"field": "reason"}
    assert caught.value.message == "FAIL needs a `reason`."


def test_validate_reason_refuses_too_long_after_trimming() -> None:
    assert rules.validate_reason("  " + "y" * 2000 + "  ", what="FAIL") == "y" * 2000
    with pytest.raises(ValidationFailed) as caught:
        rules.validate_reason("y" * 2001, what="FAIL")
    assert "2000" in caught.value.message


# --------------------------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dep_status", "met"),
    [
        (S.COMPLETED, True),
        (S.SKIPPED, True),
        (S.LOCKED, False),
        (S.AVAILABLE, False),
        (S.IN_PROGRESS, False),
        (S.FAILED, False),
    ],
)
def test_unmet_dependencies_by_status(dep_status: TaskStatus, met: bool) -> None:
    dep = task("a", status=dep_status)
    me = task("b", status=S.LOCKED, depends_on=("a",))
    tasks = {"a": dep, "b": me}
    assert rules.unmet_dependencies(me, tasks) == ([] if met else ["a"])
    if met:
        rules.ensure_dependencies_met(me, tasks)
    else:
        with pytest.raises(DependencyNotMet) as caught:
            rules.ensure_dependencies_met(me, tasks)
        assert caught.value.details == {"task": "b", "missing": ["a"]}
        assert caught.value.message == "Task 'b' depends on 'a'; complete them first."


def test_unmet_dependencies_lists_only_pending_ones_in_declared_order() -> None:
    tasks = {
        "a": task("a", status=S.AVAILABLE),
        "b": task("b", status=S.SKIPPED),
        "c": task("c", status=S.FAILED),
        "d": task("d", status=S.COMPLETED),
    }
    me = task("e", status=S.LOCKED, depends_on=("c", "b", "a", "d"))
    assert rules.unmet_dependencies(me, {**tasks, "e": me}) == ["c", "a"]


def test_a_task_without_dependencies_has_none_unmet() -> None:
    me = task("e")
    assert rules.unmet_dependencies(me, {"e": me}) == []


# --------------------------------------------------------------------------------------------
# Unlock conditions
# --------------------------------------------------------------------------------------------

WELCOME = "Welcome"
SETUP = "Setup"


def blockers(
    target: StageState,
    *,
    before: list[StageState] | None = None,
    tasks: dict[str, TaskState] | None = None,
    points: int = 0,
    days: float = 0,
) -> list[str]:
    return rules.unlock_blockers(
        target,
        stages=[*(before or []), target],
        tasks=tasks or {},
        points=points,
        signed_up_at=SIGNUP,
        now=SIGNUP + timedelta(days=days),
    )


def test_first_stage_without_conditions_may_unlock() -> None:
    assert blockers(stage("welcome", WELCOME, 0)) == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((StageStatus.COMPLETED, StageStatus.COMPLETED), []),
        ((StageStatus.IN_PROGRESS, StageStatus.COMPLETED), ["complete Welcome first"]),
        ((StageStatus.COMPLETED, StageStatus.UNLOCKED), ["complete Setup first"]),
        ((StageStatus.LOCKED, StageStatus.LOCKED), ["complete Welcome, Setup first"]),
    ],
)
def test_previous_stages_must_be_complete_by_default(
    statuses: tuple[StageStatus, StageStatus], expected: list[str]
) -> None:
    before = [stage("welcome", WELCOME, 0, statuses[0]), stage("setup", SETUP, 1, statuses[1])]
    assert blockers(stage("features", "Features", 2), before=before) == expected


def test_later_stages_do_not_block_an_earlier_one() -> None:
    later = stage("mastery", "Mastery", 5, StageStatus.LOCKED)
    target = stage("features", "Features", 2)
    result = rules.unlock_blockers(
        target,
        stages=[target, later],
        tasks={},
        points=0,
        signed_up_at=SIGNUP,
        now=SIGNUP,
    )
    assert result == []


def test_previous_stages_condition_can_be_switched_off() -> None:
    before = [stage("welcome", WELCOME, 0, StageStatus.UNLOCKED)]
    target = stage("extra", "Extra", 1, previous_stages_complete=False)
    assert blockers(target, before=before) == []


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (0, ["reach 150 points (now 0)"]),
        (149, ["reach 150 points (now 149)"]),
        (150, []),
        (151, []),
    ],
)
def test_min_points(points: int, expected: list[str]) -> None:
    assert blockers(stage("features", "Features", 0, min_points=150), points=points) == expected


def test_min_points_zero_is_always_met() -> None:
    assert blockers(stage("features", "Features", 0, min_points=0), points=0) == []


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, ["wait until 3 days after signup (0 so far)"]),
        (1.5, ["wait until 3 days after signup (1 so far)"]),
        (3 - 1 / 86400, ["wait until 3 days after signup (2 so far)"]),
        (3, []),
        (30, []),
    ],
)
def test_days_since_signup(days: float, expected: list[str]) -> None:
    target = stage("mastery", "Mastery", 0, days_since_signup=3)
    assert blockers(target, days=days) == expected


@pytest.mark.parametrize(
    ("status", "blocked"),
    [
        (S.COMPLETED, False),
        (S.SKIPPED, True),  # a named task must really be completed
        (S.AVAILABLE, True),
        (S.IN_PROGRESS, True),
        (S.FAILED, True),
        (S.LOCKED, True),
    ],
)
def test_tasks_completed(status: TaskStatus, blocked: bool) -> None:
    target = stage("setup", SETUP, 0, tasks_completed=["verify_email"])
    tasks = {"verify_email": task("verify_email", status=status)}
    assert blockers(target, tasks=tasks) == (["complete task 'verify_email'"] if blocked else [])


def test_tasks_completed_naming_a_missing_task_blocks() -> None:
    target = stage("setup", SETUP, 0, tasks_completed=["ghost"])
    assert blockers(target) == ["complete task 'ghost'"]


def test_every_condition_at_once_lists_every_reason_in_order() -> None:
    target = stage(
        "mastery",
        "Mastery",
        2,
        min_points=500,
        days_since_signup=7,
        tasks_completed=["a", "b"],
    )
    before = [
        stage("welcome", WELCOME, 0, StageStatus.COMPLETED),
        stage("setup", SETUP, 1, StageStatus.IN_PROGRESS),
    ]
    tasks = {"a": task("a", status=S.COMPLETED), "b": task("b", status=S.AVAILABLE)}
    reasons = blockers(target, before=before, tasks=tasks, points=120, days=2)
    assert reasons == [
        "complete Setup first",
        "reach 500 points (now 120)",
        "wait until 7 days after signup (2 so far)",
        "complete task 'b'",
    ]
    # words a person can read: no enum reprs, object reprs or raw keys of the stage
    for reason in reasons:
        assert re.fullmatch(r"[A-Za-z0-9 ,'()]+", reason), reason
        assert "Status" not in reason and "<" not in reason and "None" not in reason


def test_every_condition_met_at_once() -> None:
    target = stage(
        "mastery", "Mastery", 1, min_points=500, days_since_signup=7, tasks_completed=["a"]
    )
    before = [stage("welcome", WELCOME, 0, StageStatus.COMPLETED)]
    tasks = {"a": task("a", status=S.COMPLETED)}
    assert blockers(target, before=before, tasks=tasks, points=500, days=7) == []


@pytest.mark.parametrize(
    ("points", "days", "expected"),
    [
        (10, 10, ["reach 100 points (now 10)"]),
        (100, 1, ["wait until 2 days after signup (1 so far)"]),
        (10, 1, ["reach 100 points (now 10)", "wait until 2 days after signup (1 so far)"]),
        (100, 2, []),
    ],
)
def test_points_and_days_combined(points: int, days: int, expected: list[str]) -> None:
    target = stage("s", "S", 0, min_points=100, days_since_signup=2)
    assert blockers(target, points=points, days=days) == expected


# --------------------------------------------------------------------------------------------
# Stage completion
# --------------------------------------------------------------------------------------------


def test_stage_is_complete_when_every_required_task_is_completed() -> None:
    tasks = [
        task("a", status=S.COMPLETED),
        task("b", status=S.COMPLETED),
        task("c", status=S.AVAILABLE, required=False),
        task("x", stage="other", status=S.AVAILABLE),
    ]
    assert rules.stage_is_complete("s", tasks) is True
    assert rules.stage_is_complete("other", tasks) is False


@pytest.mark.parametrize("status", [S.LOCKED, S.AVAILABLE, S.IN_PROGRESS, S.FAILED, S.SKIPPED])
def test_stage_is_not_complete_while_a_required_task_is_not_completed(status: TaskStatus) -> None:
    tasks = [task("a", status=S.COMPLETED), task("b", status=status)]
    assert rules.stage_is_complete("s", tasks) is False


def test_optional_tasks_do_not_hold_a_stage_with_required_ones() -> None:
    tasks = [task("a", status=S.COMPLETED), task("o", status=S.FAILED, required=False)]
    assert rules.stage_is_complete("s", tasks) is True


@pytest.mark.parametrize(
    ("statuses", "complete"),
    [
        ((S.COMPLETED, S.SKIPPED), True),
        ((S.SKIPPED, S.SKIPPED), True),
        ((S.COMPLETED, S.COMPLETED), True),
        ((S.COMPLETED, S.AVAILABLE), False),
        ((S.SKIPPED, S.IN_PROGRESS), False),
        ((S.COMPLETED, S.FAILED), False),
        ((S.LOCKED, S.LOCKED), False),
    ],
)
def test_all_optional_stage_needs_every_task_done(
    statuses: tuple[TaskStatus, TaskStatus], complete: bool
) -> None:
    tasks = [task(f"t{i}", status=s, required=False) for i, s in enumerate(statuses)]
    assert rules.stage_is_complete("s", tasks) is complete


def test_a_stage_without_tasks_is_not_complete() -> None:
    assert rules.stage_is_complete("s", [task("x", stage="other", status=S.COMPLETED)]) is False
    assert rules.stage_is_complete("s", []) is False


# --------------------------------------------------------------------------------------------
# Progress and time remaining
# --------------------------------------------------------------------------------------------


def test_progress_counts_only_required_tasks_when_there_are_any() -> None:
    tasks = [
        task("a", status=S.COMPLETED),
        task("b", status=S.AVAILABLE),
        task("c", status=S.LOCKED),
        task("o1", status=S.COMPLETED, required=False),
        task("o2", status=S.SKIPPED, required=False),
    ]
    assert rules.progress_percent(tasks) == 33.33


def test_progress_counts_skipped_as_done_when_all_are_optional() -> None:
    tasks = [
        task("o1", status=S.SKIPPED, required=False),
        task("o2", status=S.COMPLETED, required=False),
        task("o3", status=S.AVAILABLE, required=False),
        task("o4", status=S.FAILED, required=False),
    ]
    assert rules.progress_percent(tasks) == 50.0


def test_progress_counts_a_task_only_once_done() -> None:
    # the percent is of tasks done; partial progress shows in minutes_remaining instead
    tasks = [task("a", status=S.IN_PROGRESS, progress=90), task("b", status=S.COMPLETED)]
    assert rules.progress_percent(tasks) == 50.0


def test_progress_bounds() -> None:
    assert rules.progress_percent([]) == 100.0
    assert rules.progress_percent([task("a", status=S.LOCKED)]) == 0.0
    assert rules.progress_percent([task("a", status=S.COMPLETED)]) == 100.0
    assert rules.progress_percent(iter([task("a", status=S.COMPLETED)])) == 100.0
    three = [task("a", status=S.COMPLETED), task("b"), task("c", status=S.LOCKED)]
    assert rules.progress_percent(three) == 33.33  # a percent, like Task.progress


def test_minutes_remaining_counts_partial_progress_of_in_progress_tasks() -> None:
    tasks = [
        task("a", status=S.COMPLETED, minutes=100),
        task("b", status=S.IN_PROGRESS, minutes=20, progress=25),  # 15 left
        task("c", status=S.AVAILABLE, minutes=7),
        task("d", status=S.LOCKED, minutes=3),
        task("o", status=S.AVAILABLE, minutes=60, required=False),  # does not count
    ]
    assert rules.minutes_remaining(tasks) == 15 + 7 + 3


@pytest.mark.parametrize(("progress", "left"), [(0, 40), (50, 20), (75, 10), (100, 0)])
def test_minutes_remaining_of_one_in_progress_task(progress: int, left: int) -> None:
    tasks = [task("a", status=S.IN_PROGRESS, minutes=40, progress=progress)]
    assert rules.minutes_remaining(tasks) == left


@pytest.mark.parametrize("status", [S.FAILED, S.AVAILABLE, S.LOCKED])
def test_progress_of_a_task_not_in_progress_does_not_reduce_minutes(status: TaskStatus) -> None:
    assert rules.minutes_remaining([task("a", status=status, minutes=30, progress=60)]) == 30


def test_minutes_remaining_of_all_optional_and_finished_lists() -> None:
    optional = [
        task("o1", status=S.SKIPPED, required=False, minutes=10),
        task("o2", status=S.IN_PROGRESS, required=False, minutes=10, progress=50),
    ]
    assert rules.minutes_remaining(optional) == 5
    assert rules.minutes_remaining([task("a", status=S.COMPLETED, minutes=9)]) == 0
    assert rules.minutes_remaining([]) == 0


# --------------------------------------------------------------------------------------------
# The engine's yes/no forms of the same decisions
# --------------------------------------------------------------------------------------------


def test_may_unlock_is_exactly_no_blockers() -> None:
    from app.onboarding.engine import WorkflowState
    from app.onboarding.states import WorkflowStatus

    conditions = [
        {},
        {"previous_stages_complete": False},
        {"min_points": 100},
        {"days_since_signup": 3},
        {"tasks_completed": ["a", "missing"]},
        {"tasks_completed": ["a"]},
        {"min_points": 100, "days_since_signup": 3, "tasks_completed": ["a"]},
        {"previous_stages_complete": False, "min_points": 0, "tasks_completed": []},
    ]
    checked = 0
    for unlock, previous, points, days, a_status in itertools.product(
        conditions,
        [StageStatus.COMPLETED, StageStatus.IN_PROGRESS, StageStatus.LOCKED],
        [0, 99, 100],
        [0, 2.9, 3, 10],
        [S.COMPLETED, S.SKIPPED, S.IN_PROGRESS],
    ):
        target = stage("two", "Two", 1, **unlock)
        before = stage("one", "One", 0, previous)
        tasks = {"a": task("a", stage="one", status=a_status)}
        state = WorkflowState(
            status=WorkflowStatus.ACTIVE,
            points=points,
            badges=[],
            paused=False,
            signed_up_at=SIGNUP,
            stages=[before, target],
            tasks=tasks,
        )
        now = SIGNUP + timedelta(days=days)
        expected = not blockers(target, before=[before], tasks=tasks, points=points, days=days)
        assert rules.may_unlock(target, state, now) is expected, (unlock, previous, points, days)
        checked += 1
    assert checked == 8 * 3 * 3 * 4 * 3


def test_stage_is_complete_over_every_small_stage() -> None:
    def reference(key: str, tasks: list[TaskState]) -> bool:
        mine = [t for t in tasks if t.stage_key == key]
        required = [t for t in mine if t.required]
        if required:
            return all(t.status is S.COMPLETED for t in required)
        return bool(mine) and all(t.status in (S.COMPLETED, S.SKIPPED) for t in mine)

    kinds = [(status, required) for status in S for required in (True, False)]
    for n in range(4):
        for combo in itertools.product(kinds, repeat=n):
            tasks = [
                task(f"t{i}", stage="s", status=status, required=required)
                for i, (status, required) in enumerate(combo)
            ]
            tasks.append(task("other", stage="x", status=S.LOCKED))
            assert rules.stage_is_complete("s", tasks) is reference("s", tasks), combo
