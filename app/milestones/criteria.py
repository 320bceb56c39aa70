"""Criterion kinds: each one small pure function from a customer's facts to a measure.

Adding a kind is a model in `definitions.py`, a function here registered in `KINDS`, and
(when it needs data not yet in `Facts`) a line in `facts.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from app.milestones.definitions import (
    ActiveDays,
    DaysSinceSignup,
    EventCount,
    HealthLevelHeld,
    PointsReached,
    StagesCompleted,
    TasksCompleted,
    WorkflowCompletedWithin,
)

DAY = 86400.0


@dataclass
class Facts:
    """What one customer has done, as of `now` (nothing after it is included).

    The logs keep when things happened, so `at` can give the facts as they stood at an
    earlier time (the demo's history is evaluated that way).
    """

    now: datetime
    signed_up_at: datetime
    usage: dict[str, dict[date, int]] = field(default_factory=dict)  # name -> day -> count
    filtered: dict[str, dict[date, int]] = field(default_factory=dict)  # filter_key -> day -> n
    tasks_completed: dict[str, datetime] = field(default_factory=dict)
    stages_completed: dict[str, datetime] = field(default_factory=dict)
    workflow_completed_at: datetime | None = None
    points: int = 0
    points_log: list[tuple[datetime, int]] | None = None
    health_log: list[tuple[datetime, str]] = field(default_factory=list)  # in time order

    @property
    def health_level(self) -> str | None:
        return self.health_log[-1][1] if self.health_log else None

    @property
    def health_level_since(self) -> datetime | None:
        """When the latest unbroken run of the current level began."""
        since = None
        for at, level in reversed(self.health_log):
            if level != self.health_level:
                break
            since = at
        return since

    def at(self, when: datetime) -> Facts:
        """These facts as they stood at `when` (not after `now`)."""
        when = min(when, self.now)
        day = when.date()
        done = self.workflow_completed_at
        return Facts(
            now=when,
            signed_up_at=self.signed_up_at,
            usage={n: {d: c for d, c in v.items() if d <= day} for n, v in self.usage.items()},
            filtered={
                k: {d: c for d, c in v.items() if d <= day} for k, v in self.filtered.items()
            },
            tasks_completed={k: t for k, t in self.tasks_completed.items() if t <= when},
            stages_completed={k: t for k, t in self.stages_completed.items() if t <= when},
            workflow_completed_at=done if done is not None and done <= when else None,
            points=self.points
            if self.points_log is None
            else sum(p for t, p in self.points_log if t <= when),
            points_log=self.points_log,
            health_log=[(t, lv) for t, lv in self.health_log if t <= when],
        )


@dataclass(frozen=True)
class Measure:
    """How far one criterion is: `current` of `target`, and what is missing in words."""

    current: float
    target: float
    says: str | Callable[[], str] = ""
    """What is missing, or a function that says it (words only when asked)."""

    @property
    def missing(self) -> str:
        return self.says if isinstance(self.says, str) else self.says()

    @property
    def met(self) -> bool:
        return self.current >= self.target

    @property
    def fraction(self) -> float:
        return 1.0 if self.target <= 0 else max(0.0, min(1.0, self.current / self.target))


def filter_key(c: EventCount) -> str:
    """The key of a property-filtered count in `Facts.filtered`."""
    return json.dumps([c.event, c.within_days, c.where], sort_keys=True)


def window_start(now: datetime, within_days: int | None) -> date | None:
    """The first UTC day a window of `within_days` days ending at `now` includes."""
    return None if within_days is None else (now - timedelta(days=within_days - 1)).date()


def _plural(n: float, word: str) -> str:
    n = int(n)
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _in_window(within_days: int | None) -> str:
    return f" in the last {_plural(within_days, 'day')}" if within_days else ""


def event_count(c: EventCount, f: Facts) -> Measure:
    start = window_start(f.now, c.within_days)
    days = f.filtered.get(filter_key(c), {}) if c.where else f.usage.get(c.event, {})
    current = sum(n for d, n in days.items() if start is None or d >= start)

    def says() -> str:
        shown = " with " + ", ".join(f"{k}={v}" for k, v in c.where.items()) if c.where else ""
        more = _plural(c.count - current, "more " + c.event + " event")
        return more + shown + _in_window(c.within_days)

    return Measure(current, c.count, says)


def active_days(c: ActiveDays, f: Facts) -> Measure:
    start = window_start(f.now, c.within_days)
    names = [c.event] if c.event else list(f.usage)
    days = {
        d
        for n in names
        for d, k in f.usage.get(n, {}).items()
        if k and (start is None or d >= start)
    }
    what = f"with {c.event}" if c.event else "active"
    return Measure(
        len(days),
        c.days,
        lambda: f"{_plural(c.days - len(days), 'more day')} {what}{_in_window(c.within_days)}",
    )


def tasks_completed(c: TasksCompleted, f: Facts) -> Measure:
    if c.tasks is not None:
        left = [t for t in c.tasks if t not in f.tasks_completed]
        missing = "complete " + ", ".join(left) if left else ""
        return Measure(len(c.tasks) - len(left), len(c.tasks), missing)
    target = c.count or 0
    done = len(f.tasks_completed)
    return Measure(done, target, lambda: f"complete {_plural(target - done, 'more task')}")


def stages_completed(c: StagesCompleted, f: Facts) -> Measure:
    if c.stages is not None:
        left = [s for s in c.stages if s not in f.stages_completed]
        missing = "finish the stage " + ", ".join(left) if left else ""
        return Measure(len(c.stages) - len(left), len(c.stages), missing)
    target = c.count or 0
    done = len(f.stages_completed)
    return Measure(done, target, lambda: f"finish {_plural(target - done, 'more stage')}")


def workflow_completed_within(c: WorkflowCompletedWithin, f: Facts) -> Measure:
    deadline = f.signed_up_at + timedelta(days=c.days)
    done = f.workflow_completed_at is not None and f.workflow_completed_at <= deadline
    if done:
        return Measure(1, 1)
    if f.now > deadline:
        missing = f"no longer possible: the {_plural(c.days, 'day')} after signing up have passed"
    else:
        left = (deadline - f.now).total_seconds() / DAY
        missing = f"finish onboarding within {_plural(max(1, round(left)), 'more day')}"
    return Measure(0, 1, missing)


def points_reached(c: PointsReached, f: Facts) -> Measure:
    points = f.points
    return Measure(points, c.points, lambda: _plural(c.points - points, "more point"))


def health_level_held(c: HealthLevelHeld, f: Facts) -> Measure:
    label = c.level.replace("_", " ")
    if f.health_level != c.level or f.health_level_since is None:
        return Measure(0, c.days, f"reach the {label} level and hold it {_plural(c.days, 'day')}")
    held = int((f.now - f.health_level_since).total_seconds() // DAY)
    return Measure(held, c.days, f"stay {label} {_plural(c.days - held, 'more day')}")


def days_since_signup(c: DaysSinceSignup, f: Facts) -> Measure:
    days = int((f.now - f.signed_up_at).total_seconds() // DAY)
    return Measure(days, c.days, lambda: f"{_plural(c.days - days, 'more day')} with us")


KINDS: dict[type[Any], Callable[[Any, Facts], Measure]] = {
    EventCount: event_count,
    ActiveDays: active_days,
    TasksCompleted: tasks_completed,
    StagesCompleted: stages_completed,
    WorkflowCompletedWithin: workflow_completed_within,
    PointsReached: points_reached,
    HealthLevelHeld: health_level_held,
    DaysSinceSignup: days_since_signup,
}


def measure(criterion: Any, facts: Facts) -> Measure:
    """The measure of one criterion of any kind."""
    return KINDS[type(criterion)](criterion, facts)
