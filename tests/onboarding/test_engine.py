"""The workflow engine over in-memory state, driven through the default template: no database."""

from __future__ import annotations

import contextlib
import copy
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
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
from app.onboarding.definitions import TemplateDef, load_text, parse_definition
from app.onboarding.engine import (
    Outcome,
    WorkflowState,
    apply_stage_action,
    apply_task_action,
    comes_due,
    initial_state,
    settle,
)
from app.onboarding.rules import StageState, TaskState
from app.onboarding.states import (
    DONE,
    StageAction,
    StageStatus,
    TaskAction,
    TaskStatus,
    WorkflowStatus,
)

SIGNUP = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LATER = SIGNUP + timedelta(days=10)  # past every days_since_signup of the default


def default_template() -> TemplateDef:
    text = (resources.files("app.onboarding") / "templates" / "default.yaml").read_text()
    return parse_definition(load_text(text))


DEFAULT = default_template()
TASK_POINTS = {task.key: task.points for _, task in DEFAULT.all_tasks()}
REWARDS = {stage.key: stage.reward.points for stage in DEFAULT.stages}
BADGES = ["first-steps", "all-set", "power-user", "mastermind"]
STAGES = ["welcome", "setup", "features", "mastery"]


def fresh(now: datetime = SIGNUP, template: TemplateDef = DEFAULT) -> WorkflowState:
    return initial_state(template, signed_up_at=SIGNUP, now=now)


def status_of(state: WorkflowState, *keys: str) -> list[TaskStatus]:
    return [state.tasks[key].status for key in keys]


def stage_statuses(state: WorkflowState) -> list[StageStatus]:
    return [s.status for s in sorted(state.stages, key=lambda s: s.position)]


def available(state: WorkflowState) -> set[str]:
    return {key for key, task in state.tasks.items() if task.status is TaskStatus.AVAILABLE}


def earned_points(state: WorkflowState) -> int:
    """What the points should be: completed tasks plus rewards of completed stages."""
    tasks = sum(t.points for t in state.tasks.values() if t.status is TaskStatus.COMPLETED)
    stages = sum(s.reward_points for s in state.stages if s.status is StageStatus.COMPLETED)
    return tasks + stages


def walk(
    state: WorkflowState,
    *,
    now: datetime,
    skip_optional: bool = False,
    leave: frozenset[str] = frozenset(),
) -> list[Outcome]:
    """Finish every task that can be acted on, in order, until nothing is left."""
    outcomes: list[Outcome] = []
    for _ in range(200):
        todo = sorted(
            (
                t
                for t in state.tasks.values()
                if t.key not in leave
                and t.status in (TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS, TaskStatus.FAILED)
            ),
            key=lambda t: t.position,
        )
        if not todo:
            return outcomes
        task = todo[0]
        if task.status is TaskStatus.FAILED:
            outcomes.append(apply_task_action(state, task.key, TaskAction.RETRY, now=now))
        action = TaskAction.SKIP if skip_optional and not task.required else TaskAction.COMPLETE
        outcomes.append(apply_task_action(state, task.key, action, now=now))
    raise AssertionError("the walk did not end")


def celebrations(outcomes: list[Outcome], kind: str) -> list[Any]:
    return [c for out in outcomes for c in out.celebrations if c.kind == kind]


def event_types(out: Outcome) -> list[str]:
    return [kind for kind, _ in out.events]


# --------------------------------------------------------------------------------------------
# A fresh workflow
# --------------------------------------------------------------------------------------------


def test_initial_state_of_the_default_template() -> None:
    state = fresh()
    assert [s.key for s in state.stages] == STAGES
    assert stage_statuses(state) == [StageStatus.UNLOCKED] + [StageStatus.LOCKED] * 3
    assert state.stage("welcome") is not None
    assert state.stage("welcome").unlocked_at == SIGNUP  # type: ignore[union-attr]
    assert state.stage("setup").unlocked_at is None  # type: ignore[union-attr]
    # only the dependency-free tasks of the first stage are open
    assert available(state) == {"verify_email", "watch_intro"}
    locked = {k for k, t in state.tasks.items() if t.status is TaskStatus.LOCKED}
    assert locked == set(state.tasks) - {"verify_email", "watch_intro"}
    assert len(state.tasks) == 13
    assert state.status is WorkflowStatus.ACTIVE
    assert state.points == 0
    assert state.badges == []
    assert state.progress == 0.0
    # 2+5 (welcome) + 15+5 (setup) + 10+5+15 (features) + 20+5 (mastery), required only
    assert state.minutes_remaining == 82
    assert state.current_stage is not None and state.current_stage.key == "welcome"


def test_initial_state_orders_tasks_by_stage_then_position() -> None:
    state = fresh()
    ordered = sorted(state.tasks.values(), key=lambda t: t.position)
    assert [t.key for t in ordered] == [t.key for _, t in DEFAULT.all_tasks()]
    assert state.tasks["complete_profile"].depends_on == ("verify_email",)
    assert state.tasks["watch_intro"].required is False
    assert state.stage("features").unlock["min_points"] == 150  # type: ignore[union-attr]


def test_initial_state_unlocks_every_stage_without_conditions() -> None:
    raw = {
        "key": "open",
        "name": "Open",
        "stages": [
            {"key": "a", "name": "A", "tasks": [{"key": "a1", "title": "A1"}]},
            {
                "key": "b",
                "name": "B",
                "unlock": {"previous_stages_complete": False},
                "tasks": [{"key": "b1", "title": "B1"}],
            },
        ],
    }
    state = fresh(template=parse_definition(raw))
    assert stage_statuses(state) == [StageStatus.UNLOCKED, StageStatus.UNLOCKED]
    assert available(state) == {"a1", "b1"}


# --------------------------------------------------------------------------------------------
# The whole default template, start to finish
# --------------------------------------------------------------------------------------------


def test_walking_the_default_template_to_completion() -> None:
    state = fresh()
    outcomes = walk(state, now=LATER)

    assert state.status is WorkflowStatus.COMPLETED
    assert state.completed_at == LATER
    assert stage_statuses(state) == [StageStatus.COMPLETED] * 4
    assert all(t.status is TaskStatus.COMPLETED for t in state.tasks.values())
    assert state.points == sum(TASK_POINTS.values()) + sum(REWARDS.values()) == 850
    assert state.points == earned_points(state)
    assert sum(out.points_awarded for out in outcomes) == 850
    assert [b["key"] for b in state.badges] == BADGES
    assert [b["stage"] for b in state.badges] == STAGES
    assert len(celebrations(outcomes, "WORKFLOW_COMPLETED")) == 1
    assert [c.stage_key for c in celebrations(outcomes, "STAGE_COMPLETED")] == STAGES
    assert [c.badge["key"] for c in celebrations(outcomes, "BADGE_EARNED")] == BADGES
    assert sum(out.workflow_completed for out in outcomes) == 1
    assert state.progress == 100.0
    assert state.minutes_remaining == 0
    assert state.current_stage is not None and state.current_stage.key == "mastery"


def test_walking_the_default_template_skipping_optional_tasks() -> None:
    state = fresh()
    outcomes = walk(state, now=LATER, skip_optional=True)

    assert state.status is WorkflowStatus.COMPLETED
    skipped = {k for k, t in state.tasks.items() if t.status is TaskStatus.SKIPPED}
    assert skipped == {t.key for _, t in DEFAULT.all_tasks() if not t.required}
    assert skipped == {
        "watch_intro",
        "configure_notifications",
        "try_automation",
        "advanced_reporting",
    }
    required_points = sum(t.points for _, t in DEFAULT.all_tasks() if t.required)
    assert state.points == required_points + sum(REWARDS.values()) == 780
    assert state.points == earned_points(state)
    assert [b["key"] for b in state.badges] == BADGES
    done = celebrations(outcomes, "WORKFLOW_COMPLETED")
    assert len(done) == 1
    assert done[0].points == 780
    assert state.progress == 100.0
    assert state.minutes_remaining == 0


def test_an_optional_task_done_after_its_stage_still_earns_its_points() -> None:
    state = fresh()
    walk(state, now=SIGNUP, leave=frozenset({"watch_intro"}))
    assert state.stage("welcome").status is StageStatus.COMPLETED  # type: ignore[union-attr]
    before = state.points
    out = apply_task_action(state, "watch_intro", TaskAction.COMPLETE, now=SIGNUP)
    assert out.points_awarded == 10
    assert state.points == before + 10
    assert out.completed_stages == []
    assert out.celebrations == []


# --------------------------------------------------------------------------------------------
# Days since signup
# --------------------------------------------------------------------------------------------


def test_days_since_signup_stage_waits_for_now_then_unlocks_on_the_next_action() -> None:
    day1 = SIGNUP + timedelta(days=1)
    state = fresh()
    walk(state, now=day1, leave=frozenset({"watch_intro"}))
    assert stage_statuses(state) == [StageStatus.COMPLETED] * 3 + [StageStatus.LOCKED]
    mastery = state.stage("mastery")
    assert mastery is not None
    reasons = rules.unlock_blockers(
        mastery,
        stages=state.stages,
        tasks=state.tasks,
        points=state.points,
        signed_up_at=SIGNUP,
        now=day1,
    )
    assert reasons == ["wait until 3 days after signup (1 so far)"]
    assert status_of(state, "set_up_integration", "schedule_review") == [TaskStatus.LOCKED] * 2

    # an action on day 2 is not enough
    out = apply_task_action(state, "watch_intro", TaskAction.START, now=SIGNUP + timedelta(days=2))
    assert out.unlocked_stages == []
    assert mastery.status is StageStatus.LOCKED

    # one second short of three days is still not enough
    almost = SIGNUP + timedelta(days=3) - timedelta(seconds=1)
    out = apply_task_action(state, "watch_intro", TaskAction.PROGRESS, now=almost, progress=50)
    assert out.unlocked_stages == []
    assert mastery.status is StageStatus.LOCKED

    day3 = SIGNUP + timedelta(days=3)
    out = apply_task_action(state, "watch_intro", TaskAction.COMPLETE, now=day3)
    assert out.unlocked_stages == ["mastery"]
    assert mastery.status is StageStatus.UNLOCKED
    assert mastery.unlocked_at == day3
    assert out.unlocked_tasks == ["set_up_integration", "schedule_review"]
    assert status_of(state, "advanced_reporting") == [TaskStatus.LOCKED]
    assert "stage.unlocked" in event_types(out)


def test_settle_alone_unlocks_a_stage_whose_time_has_come() -> None:
    state = fresh()
    walk(state, now=SIGNUP)
    assert state.stage("mastery").status is StageStatus.LOCKED  # type: ignore[union-attr]
    assert state.status is WorkflowStatus.ACTIVE
    # every task is done or locked: no task action is accepted, so none can unlock Mastery
    day3 = SIGNUP + timedelta(days=3)
    assert not [t for t in state.tasks.values() if t.status not in DONE | {TaskStatus.LOCKED}]
    for action in (TaskAction.COMPLETE, TaskAction.START):
        with pytest.raises((InvalidTransition, TaskLocked)):
            apply_task_action(state, "watch_intro", action, now=day3)
        with pytest.raises(TaskLocked):
            apply_task_action(state, "set_up_integration", action, now=day3)
    assert state.stage("mastery").status is StageStatus.LOCKED  # type: ignore[union-attr]
    # only settling the workflow when the time comes (a scheduler's job) opens it
    out = Outcome()
    settle(state, out, now=day3)
    assert out.unlocked_stages == ["mastery"]
    assert available(state) == {"set_up_integration", "schedule_review"}


# --------------------------------------------------------------------------------------------
# Single task actions
# --------------------------------------------------------------------------------------------


def test_progress_start_and_validation() -> None:
    state = fresh()
    t1 = SIGNUP + timedelta(minutes=5)
    out = apply_task_action(state, "verify_email", TaskAction.PROGRESS, now=t1, progress=40)
    task = state.tasks["verify_email"]
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.progress == 40
    assert task.started_at == t1
    assert state.stage("welcome").status is StageStatus.IN_PROGRESS  # type: ignore[union-attr]
    assert out.events == [
        (
            "task.progressed",
            {"task": "verify_email", "stage": "welcome", "status": "IN_PROGRESS", "progress": 40},
        )
    ]
    # 82 minutes less 40% of the 2 of verify_email
    assert state.minutes_remaining == 81
    assert state.progress == 0.0

    for bad in (None, 101, -1):
        before = copy.deepcopy(state)
        with pytest.raises(ValidationFailed):
            apply_task_action(state, "verify_email", TaskAction.PROGRESS, now=t1, progress=bad)
        assert state == before

    with pytest.raises(InvalidTransition):
        apply_task_action(state, "verify_email", TaskAction.START, now=t1)
    apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=t1)
    assert task.progress == 100
    assert task.completed_at == t1
    assert task.started_at == t1


def test_refusals_leave_the_state_alone() -> None:
    state = fresh()
    before = copy.deepcopy(state)
    with pytest.raises(DependencyNotMet) as dep:
        apply_task_action(state, "complete_profile", TaskAction.START, now=SIGNUP)
    assert dep.value.details == {"task": "complete_profile", "missing": ["verify_email"]}
    with pytest.raises(TaskLocked):
        apply_task_action(state, "connect_data_source", TaskAction.START, now=SIGNUP)
    with pytest.raises(TaskRequired):
        apply_task_action(state, "verify_email", TaskAction.SKIP, now=SIGNUP)
    with pytest.raises(InvalidTransition):
        apply_task_action(state, "verify_email", TaskAction.RETRY, now=SIGNUP)
    assert state == before


def test_fail_then_retry() -> None:
    state = fresh()
    t0, t1, t2, t3 = (SIGNUP + timedelta(hours=h) for h in range(4))
    apply_task_action(state, "verify_email", TaskAction.START, now=t0)
    task = state.tasks["verify_email"]

    before = copy.deepcopy(state)
    with pytest.raises(ValidationFailed):
        apply_task_action(state, "verify_email", TaskAction.FAIL, now=t1, reason="   ")
    assert state == before

    out = apply_task_action(state, "verify_email", TaskAction.FAIL, now=t1, reason=" no mail ")
    assert task.status is TaskStatus.FAILED
    assert task.failure_reason == "no mail"
    assert out.events == [
        (
            "task.failed",
            {"task": "verify_email", "stage": "welcome", "status": "FAILED", "reason": "no mail"},
        )
    ]
    assert out.points_awarded == 0
    assert state.minutes_remaining == 82

    with pytest.raises(InvalidTransition):
        apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=t2)

    out = apply_task_action(state, "verify_email", TaskAction.RETRY, now=t2)
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.attempts == 1
    assert task.failure_reason is None
    assert task.started_at == t2
    assert event_types(out) == ["task.retried"]

    out = apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=t3)
    assert task.status is TaskStatus.COMPLETED
    assert out.points_awarded == 10
    assert out.unlocked_tasks == ["complete_profile"]


def skip_template() -> TemplateDef:
    return parse_definition(
        {
            "key": "skip",
            "name": "Skip",
            "stages": [
                {
                    "key": "one",
                    "name": "One",
                    "tasks": [
                        {"key": "a", "title": "A", "points": 5},
                        {"key": "opt", "title": "Opt", "required": False, "points": 7},
                        {"key": "b", "title": "B", "depends_on": ["opt"], "points": 3},
                    ],
                },
                {
                    "key": "two",
                    "name": "Two",
                    "tasks": [{"key": "c", "title": "C", "depends_on": ["opt", "a"]}],
                },
            ],
        }
    )


def test_skipping_an_optional_task_unblocks_its_dependants() -> None:
    state = fresh(template=skip_template())
    assert available(state) == {"a", "opt"}
    out = apply_task_action(state, "opt", TaskAction.SKIP, now=SIGNUP)
    assert state.tasks["opt"].status is TaskStatus.SKIPPED
    assert out.unlocked_tasks == ["b"]
    assert event_types(out) == ["task.skipped", "task.unlocked"]
    assert out.points_awarded == 0
    assert state.points == 0

    apply_task_action(state, "a", TaskAction.COMPLETE, now=SIGNUP)
    out = apply_task_action(state, "b", TaskAction.COMPLETE, now=SIGNUP)
    assert out.completed_stages == ["one"]
    assert out.unlocked_stages == ["two"]
    # a skipped dependency in an earlier stage counts as met too
    assert out.unlocked_tasks == ["c"]
    assert state.points == 5 + 3
    assert state.points == earned_points(state)


def test_skipping_an_optional_in_progress_task_keeps_its_progress_but_awards_nothing() -> None:
    state = fresh(template=skip_template())
    apply_task_action(state, "opt", TaskAction.PROGRESS, now=SIGNUP, progress=30)
    out = apply_task_action(state, "opt", TaskAction.SKIP, now=SIGNUP)
    assert state.tasks["opt"].status is TaskStatus.SKIPPED
    assert state.tasks["opt"].progress == 30
    assert state.tasks["opt"].completed_at == SIGNUP
    assert out.points_awarded == 0


# --------------------------------------------------------------------------------------------
# Events of a stage-completing COMPLETE
# --------------------------------------------------------------------------------------------


def test_events_of_the_complete_that_finishes_a_stage() -> None:
    state = fresh()
    apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=SIGNUP)
    out = apply_task_action(state, "complete_profile", TaskAction.COMPLETE, now=SIGNUP)

    assert event_types(out) == [
        "task.completed",
        "points.awarded",
        "stage.completed",
        "points.awarded",
        "badge.earned",
        "stage.unlocked",
        "task.unlocked",
        "task.unlocked",
    ]
    payloads = [payload for _, payload in out.events]
    assert payloads[0] == {"task": "complete_profile", "stage": "welcome", "status": "COMPLETED"}
    assert payloads[1] == {"points": 15, "total": 25, "source": "task:complete_profile"}
    assert payloads[2] == {"stage": "welcome", "name": "Welcome"}
    assert payloads[3] == {"points": 50, "total": 75, "source": "stage:welcome"}
    assert payloads[4]["badge"]["key"] == "first-steps"
    assert payloads[5] == {"stage": "setup", "name": "Setup"}
    assert [p["task"] for p in payloads[6:]] == ["connect_data_source", "invite_team"]

    assert out.points_awarded == 65
    assert out.completed_stages == ["welcome"]
    assert out.unlocked_stages == ["setup"]
    assert out.unlocked_tasks == ["connect_data_source", "invite_team"]
    assert [b["key"] for b in out.badges_awarded] == ["first-steps"]
    assert [c.kind for c in out.celebrations] == ["STAGE_COMPLETED", "BADGE_EARNED"]
    assert out.celebrations[0].points == 50
    assert out.celebrations[0].message == "You finished Welcome and earned 50 points."
    assert out.celebrations[1].title == "Badge earned: First Steps"
    assert out.workflow_completed is False
    assert out.workflow_changed is True
    assert {"complete_profile", "connect_data_source", "invite_team"} <= out.changed_tasks
    assert out.changed_stages == {"welcome", "setup"}
    assert state.points == 75
    # the optional task of the stage stays open after the stage is done
    assert state.tasks["watch_intro"].status is TaskStatus.AVAILABLE
    assert state.tasks["configure_notifications"].status is TaskStatus.LOCKED


# --------------------------------------------------------------------------------------------
# Admin overrides on stages
# --------------------------------------------------------------------------------------------


def test_admin_unlock_of_a_locked_stage() -> None:
    state = fresh()
    out = apply_stage_action(state, "mastery", StageAction.UNLOCK, now=SIGNUP)
    assert state.stage("mastery").status is StageStatus.UNLOCKED  # type: ignore[union-attr]
    assert out.unlocked_stages == ["mastery"]
    assert out.unlocked_tasks == ["set_up_integration", "schedule_review"]
    assert event_types(out) == [
        "stage.unlocked",
        "stage.overridden",
        "task.unlocked",
        "task.unlocked",
    ]
    assert out.events[1] == ("stage.overridden", {"stage": "mastery", "action": "UNLOCK"})
    # the stages in between stay as they were
    assert stage_statuses(state)[1:3] == [StageStatus.LOCKED] * 2


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(lambda s: None, id="unlocked"),
        pytest.param(
            lambda s: apply_task_action(s, "verify_email", TaskAction.START, now=SIGNUP),
            id="in-progress",
        ),
        pytest.param(lambda s: walk(s, now=SIGNUP), id="completed"),
    ],
)
def test_admin_unlock_of_a_stage_that_is_not_locked_is_refused(
    prepare: Callable[[WorkflowState], object],
) -> None:
    state = fresh()
    prepare(state)
    before = copy.deepcopy(state)
    with pytest.raises(InvalidTransition) as caught:
        apply_stage_action(state, "welcome", StageAction.UNLOCK, now=SIGNUP)
    assert caught.value.details == {"stage": "welcome"}
    assert "already" in caught.value.message
    assert state == before


def test_admin_complete_of_a_stage() -> None:
    state = fresh()
    out = apply_stage_action(state, "welcome", StageAction.COMPLETE, now=SIGNUP)
    assert state.stage("welcome").status is StageStatus.COMPLETED  # type: ignore[union-attr]
    assert (
        status_of(state, "verify_email", "complete_profile", "watch_intro")
        == [TaskStatus.COMPLETED] * 3
    )
    assert out.completed_stages == ["welcome"]
    assert out.unlocked_stages == ["setup"]
    assert [b["key"] for b in state.badges] == ["first-steps"]
    assert "stage.overridden" in event_types(out)
    assert [c.kind for c in out.celebrations] == ["STAGE_COMPLETED", "BADGE_EARNED"]

    with pytest.raises(InvalidTransition):
        apply_stage_action(state, "welcome", StageAction.COMPLETE, now=SIGNUP)


def test_admin_complete_of_every_stage_completes_the_workflow_once() -> None:
    state = fresh()
    outcomes = [apply_stage_action(state, key, StageAction.COMPLETE, now=SIGNUP) for key in STAGES]
    assert state.status is WorkflowStatus.COMPLETED
    assert [b["key"] for b in state.badges] == BADGES
    assert len(celebrations(outcomes, "WORKFLOW_COMPLETED")) == 1
    assert state.progress == 100.0
    assert state.minutes_remaining == 0


def test_admin_reset_of_an_unfinished_stage_takes_back_its_task_points() -> None:
    state = fresh()
    apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=SIGNUP)
    apply_task_action(state, "complete_profile", TaskAction.START, now=SIGNUP)
    assert state.points == 10
    out = apply_stage_action(state, "welcome", StageAction.RESET, now=SIGNUP)
    assert state.points == 0
    assert out.workflow_changed is True
    # the first stage qualifies at once, so it opens again from scratch
    assert state.stage("welcome").status is StageStatus.UNLOCKED  # type: ignore[union-attr]
    assert available(state) == {"verify_email", "watch_intro"}
    profile = state.tasks["complete_profile"]
    assert (profile.status, profile.progress, profile.started_at) == (TaskStatus.LOCKED, 0, None)


def test_admin_reset_of_a_completed_stage_reopens_a_completed_workflow() -> None:
    state = fresh()
    walk(state, now=LATER)
    assert state.status is WorkflowStatus.COMPLETED
    features_points = sum(
        TASK_POINTS[k] for k in ("create_first_project", "add_client", "build_report")
    )
    features_points += TASK_POINTS["try_automation"] + REWARDS["features"]

    out = apply_stage_action(state, "features", StageAction.RESET, now=LATER)

    assert state.points == 850 - features_points == 595
    assert state.points == earned_points(state)
    assert [b["key"] for b in state.badges] == ["first-steps", "all-set", "mastermind"]
    assert state.status is WorkflowStatus.ACTIVE
    assert state.completed_at is None
    assert state.progress < 100.0
    assert state.minutes_remaining == 10 + 5 + 15
    assert state.stage("features").status is StageStatus.UNLOCKED  # type: ignore[union-attr]
    assert state.stage("mastery").status is StageStatus.COMPLETED  # type: ignore[union-attr]
    assert out.unlocked_tasks == ["create_first_project"]
    assert all(
        t.status is not TaskStatus.COMPLETED
        for t in state.tasks.values()
        if t.stage_key == "features"
    )

    # and finishing it again completes the workflow again, once
    outcomes = walk(state, now=LATER)
    assert state.status is WorkflowStatus.COMPLETED
    assert state.points == 850
    assert sorted(b["key"] for b in state.badges) == sorted(BADGES)
    assert len(celebrations(outcomes, "WORKFLOW_COMPLETED")) == 1
    assert len(celebrations(outcomes, "BADGE_EARNED")) == 1


def test_admin_complete_then_reset_gives_back_the_points_before_the_stage() -> None:
    state = fresh()
    walk(
        state,
        now=LATER,
        skip_optional=True,
        leave=frozenset(state.tasks) - {"verify_email", "complete_profile", "watch_intro"},
    )
    assert state.stage("setup").status is StageStatus.UNLOCKED  # type: ignore[union-attr]
    assert state.points == 75
    apply_stage_action(state, "setup", StageAction.COMPLETE, now=LATER)
    apply_stage_action(state, "setup", StageAction.RESET, now=LATER)
    assert state.points == 75


# --------------------------------------------------------------------------------------------
# Deadlock: a stage waiting for an optional task that was skipped
# --------------------------------------------------------------------------------------------


def test_skipping_an_optional_task_named_by_an_unlock_rule_does_not_strand_the_workflow() -> None:
    raw = {
        "key": "strand",
        "name": "Strand",
        "stages": [
            {
                "key": "one",
                "name": "One",
                "tasks": [
                    {"key": "a", "title": "A"},
                    {"key": "opt", "title": "Opt", "required": False},
                ],
            },
            {
                "key": "two",
                "name": "Two",
                "unlock": {"tasks_completed": ["opt"]},
                "tasks": [{"key": "b", "title": "B"}],
            },
        ],
    }
    try:
        template = parse_definition(raw)
    except DomainError:
        return  # refusing such a template up front is one acceptable fix
    state = fresh(template=template)
    apply_task_action(state, "opt", TaskAction.SKIP, now=SIGNUP)
    apply_task_action(state, "a", TaskAction.COMPLETE, now=SIGNUP)
    assert state.stage("one").status is StageStatus.COMPLETED  # type: ignore[union-attr]
    assert state.stage("two").status is not StageStatus.LOCKED  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Random walks: invariants hold whatever the customer does
# --------------------------------------------------------------------------------------------


def check_invariants(state: WorkflowState) -> None:
    assert state.points == earned_points(state)
    completed = [s for s in state.stages if s.status is StageStatus.COMPLETED]
    assert sorted(b["key"] for b in state.badges) == sorted(
        s.reward_badge["key"] for s in completed if s.reward_badge
    )
    for s in completed:
        assert rules.stage_is_complete(s.key, state.tasks.values())
    assert (state.status is WorkflowStatus.COMPLETED) == (len(completed) == len(state.stages))
    for task in state.tasks.values():
        stage = state.stage(task.stage_key)
        assert stage is not None
        if stage.status is StageStatus.LOCKED:
            assert task.status is TaskStatus.LOCKED, task.key
        elif task.status is TaskStatus.LOCKED:
            assert rules.unmet_dependencies(task, state.tasks), task.key
        if task.status is not TaskStatus.LOCKED:
            assert not rules.unmet_dependencies(task, state.tasks), task.key
        if task.required:
            assert task.status is not TaskStatus.SKIPPED
    assert 0.0 <= state.progress <= 100.0
    assert state.minutes_remaining >= 0
    assert state.progress_and_minutes() == (state.progress, state.minutes_remaining)
    assert state.current_stage is _first_open_stage(state)


def _first_open_stage(state: WorkflowState) -> StageState | None:
    """`current_stage` as its docstring defines it, written the plain way."""
    ordered = sorted(state.stages, key=lambda s: s.position)
    return next(
        (s for s in ordered if s.status is not StageStatus.COMPLETED),
        ordered[-1] if ordered else None,
    )


def test_the_current_stage_by_position_whatever_the_order() -> None:
    state = fresh()
    shuffled = state.stages[:]
    random.Random(7).shuffle(shuffled)
    for statuses in itertools.product(
        (StageStatus.COMPLETED, StageStatus.LOCKED), repeat=len(shuffled)
    ):
        for stage, status in zip(shuffled, statuses, strict=True):
            stage.status = status
        twins = [copy.copy(s) for s in shuffled]  # other stages at the same positions
        for stages in (shuffled, [*shuffled, *twins], [*twins, *shuffled]):
            state.stages = stages
            assert state.current_stage is _first_open_stage(state)
    state.stages = []
    assert state.current_stage is None


def random_action(rng: random.Random, task: TaskState) -> dict[str, Any]:
    action = rng.choice(list(TaskAction))
    kwargs: dict[str, Any] = {"action": action}
    if action is TaskAction.PROGRESS:
        kwargs["progress"] = rng.choice([None, -5, 0, 20, 50, 99, 100, 150])
    if action is TaskAction.FAIL:
        kwargs["reason"] = rng.choice([None, "", "stuck"])
    return kwargs


@pytest.mark.parametrize("seed", range(40))
def test_random_walk_keeps_invariants_and_can_always_be_finished(seed: int) -> None:
    rng = random.Random(seed)
    now = SIGNUP
    state = fresh()
    celebrated = 0
    for _ in range(150):
        now += timedelta(hours=rng.randint(0, 3))
        open_ = [t for t in state.tasks.values() if t.status not in DONE | {TaskStatus.LOCKED}]
        # mostly act on open tasks, sometimes on any task to exercise the refusals
        task = rng.choice(open_ if open_ and rng.random() < 0.85 else list(state.tasks.values()))
        kwargs = random_action(rng, task)
        before = copy.deepcopy(state)
        try:
            out = apply_task_action(state, task.key, now=now, **kwargs)
        except DomainError:
            assert state == before
        else:
            celebrated += len([c for c in out.celebrations if c.kind == "WORKFLOW_COMPLETED"])
            assert state.points == before.points + out.points_awarded
            assert set(out.unlocked_tasks) <= out.changed_tasks
            assert task.key in out.changed_tasks
        check_invariants(state)
    # time passing alone unlocks nothing; a scheduler settles the workflow (see the
    # days_since_signup tests), then the customer finishes what is left
    late = now + timedelta(days=3)
    opening = Outcome()
    settle(state, opening, now=late)
    outcomes = [opening, *walk(state, now=late)]
    check_invariants(state)
    assert state.status is WorkflowStatus.COMPLETED
    assert all(t.status in DONE for t in state.tasks.values())
    assert celebrated + len(celebrations(outcomes, "WORKFLOW_COMPLETED")) == 1
    assert state.progress == 100.0
    assert state.minutes_remaining == 0


@pytest.mark.parametrize("seed", range(20))
def test_a_move_on_a_settled_state_answers_and_leaves_what_a_full_settle_does(seed: int) -> None:
    """`settled=True` (the state is as `settle` at `now` leaves it) may skip the settle of a
    move that changes no status; the state and outcome are those of the full settle."""
    rng = random.Random(seed)
    now = SIGNUP
    state = fresh()
    for _ in range(150):
        now += timedelta(hours=rng.randint(0, 30))
        settle(state, Outcome(), now=now)
        open_ = [t for t in state.tasks.values() if t.status not in DONE | {TaskStatus.LOCKED}]
        task = rng.choice(open_ if open_ and rng.random() < 0.85 else list(state.tasks.values()))
        kwargs = random_action(rng, task)
        full = copy.deepcopy(state)
        try:
            expected: Outcome | None = apply_task_action(full, task.key, now=now, **kwargs)
        except DomainError:
            expected = None
        try:
            out: Outcome | None = apply_task_action(
                state, task.key, now=now, settled=True, **kwargs
            )
        except DomainError:
            out = None
        assert out == expected
        assert state == full


def test_progress_on_a_task_in_progress_of_a_settled_state_does_not_settle_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.onboarding import engine

    state = fresh()
    apply_task_action(state, "verify_email", TaskAction.START, now=SIGNUP)
    settles: list[datetime] = []
    real = engine.settle

    def counted(state: WorkflowState, out: Outcome, *, now: datetime) -> None:
        settles.append(now)
        real(state, out, now=now)

    monkeypatch.setattr(engine, "settle", counted)
    out = apply_task_action(
        state, "verify_email", TaskAction.PROGRESS, now=LATER, progress=40, settled=True
    )
    assert settles == []
    assert out.changed_tasks == {"verify_email"}
    assert event_types(out) == ["task.progressed"]
    assert state.tasks["verify_email"].progress == 40
    # a move that changes a status settles, settled or not
    apply_task_action(state, "verify_email", TaskAction.COMPLETE, now=LATER, settled=True)
    assert settles == [LATER]


@pytest.mark.parametrize("seed", range(10))
def test_comes_due_says_whether_a_waiting_stage_may_unlock(seed: int) -> None:
    """`comes_due` answers as `may_unlock` over the locked stages waiting for days since
    signup, at every point of a walk and at every time, before and after the wait."""
    rng = random.Random(seed)
    state = fresh()
    for _ in range(60):
        for days in (0, 1, 2.99, 3, 3.01, 5, 30):
            now = SIGNUP + timedelta(days=days)
            expected = any(
                s.status is StageStatus.LOCKED
                and s.unlock.get("days_since_signup") is not None
                and rules.may_unlock(s, state, now)
                for s in state.stages
            )
            assert comes_due(state, now=now) is expected
        task = rng.choice(list(state.tasks.values()))
        with contextlib.suppress(DomainError):
            apply_task_action(state, task.key, TaskAction.COMPLETE, now=SIGNUP)
