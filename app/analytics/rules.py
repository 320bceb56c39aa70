"""What one customer contributes to the rollups: a pure function of its current state.

The consumer keeps each customer's last contribution; on every change it subtracts the old
one and adds the new one, so the rollups always equal the sum over customers, which is
exactly what a rebuild computes from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.analytics.histogram import BUCKETS, WEEKS, bucket_of


class StepOutcome(StrEnum):
    """Where a customer stands on a funnel step (the order of a step's flags)."""

    REACHED = "REACHED"
    COMPLETED = "COMPLETED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    ACTIVE_HERE = "ACTIVE_HERE"
    DROPPED = "DROPPED"


OUTCOMES = tuple(StepOutcome)

IDLE_DAYS = 7
"""A customer idle this long is not active; an unfinished one idle this long has dropped off."""

COHORT = "cohort"
STEP = "step"
STEP_WEEK = "step_week"
COHORT_WEEK = "cohort_week"
COMPLETION = "completion"
FLIGHT = "flight"
COMPLETION_DAY = "completion_day"

COHORT_COLUMNS = ("customers", "started", "completed", "active", "points", "badges")
STEP_COLUMNS = ("reached", "completed", "skipped", "failed", "here", "dropped")
COMPLETION_COLUMNS = ("completions",)
LAYOUT: dict[str, tuple[tuple[str, ...], tuple[tuple[str, int], ...]]] = {
    COHORT: (COHORT_COLUMNS, (("done_hist", BUCKETS), ("done_weeks", WEEKS))),
    STEP: (STEP_COLUMNS, (("time_hist", BUCKETS),)),
    STEP_WEEK: (STEP_COLUMNS, (("time_hist", BUCKETS),)),
    COHORT_WEEK: (COHORT_COLUMNS, (("done_hist", BUCKETS), ("done_weeks", WEEKS))),
    COMPLETION: (COMPLETION_COLUMNS, (("done_hist", BUCKETS),)),
    FLIGHT: ((), (("here_hist", BUCKETS),)),
    COMPLETION_DAY: (COMPLETION_COLUMNS, (("done_hist", BUCKETS),)),
}
"""Per rollup table: its scalar counters, then its histograms with their lengths."""


def bucket_columns(name: str, size: int) -> list[str]:
    """The columns of a histogram: one integer per bucket (`name_0` ... `name_<size-1>`)."""
    return [f"{name}_{i}" for i in range(size)]


def counter_columns(kind: str) -> list[str]:
    """A rollup table's counter columns in its layout's order: the scalars, then each
    histogram's bucket columns (a delta's dense values, column for column)."""
    scalars, arrays = LAYOUT[kind]
    return [*scalars, *(c for name, size in arrays for c in bucket_columns(name, size))]


Key = tuple[str, tuple[Any, ...]]
Delta = dict[Key, list[int]]

_DONE = ("COMPLETED", "SKIPPED")
_MOVED = ("IN_PROGRESS", "COMPLETED", "SKIPPED", "FAILED")


def width(table: str) -> int:
    scalars, arrays = LAYOUT[table]
    return len(scalars) + sum(n for _, n in arrays)


def week_of(day: date) -> date:
    """The Monday starting `day`'s week."""
    return day - timedelta(days=day.weekday())


@dataclass(slots=True)
class StageFacts:
    """Not frozen (nor TaskFacts): a refresh builds one per stage and task of every customer
    it reads, and a frozen dataclass takes 7 times as long to construct."""

    key: str
    position: int
    status: str
    unlocked_at: datetime | None
    completed_at: datetime | None


@dataclass(slots=True)
class TaskFacts:
    key: str
    stage_key: str
    position: int
    status: str
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """A customer's segment and workflow state, as the rollups need them."""

    signed_up_at: datetime
    user_type: str
    channel: str
    template_version: int
    status: str
    completed_at: datetime | None
    points: int
    badges: int
    last_activity_at: datetime
    stages: tuple[StageFacts, ...]
    tasks: tuple[TaskFacts, ...]


def is_active(facts: CustomerFacts, now: datetime) -> bool:
    """Active: some activity within the last IDLE_DAYS days."""
    return facts.last_activity_at >= now - timedelta(days=IDLE_DAYS)


def _position(facts: CustomerFacts, by_stage: dict[str, list[TaskFacts]]) -> tuple[str, str] | None:
    """Where an unfinished customer stands: its current stage and first open task there."""
    if facts.status == "COMPLETED":
        return None
    open_stages = [s for s in facts.stages if s.status != "COMPLETED"]
    if not open_stages:
        return None
    stage = min(open_stages, key=_by_position)  # the first of equal positions, as sorted()
    open_tasks = [t for t in by_stage.get(stage.key, ()) if t.status not in _DONE]
    return stage.key, min(open_tasks, key=_by_position).key if open_tasks else ""


def _by_position(row: StageFacts | TaskFacts) -> int:
    return row.position


def entries(facts: CustomerFacts, *, now: datetime) -> dict[str, Any]:
    """The compact contribution of one customer (kept per customer, JSON-serializable).

    Called for every customer an event touches, most of whom it leaves unchanged: one pass
    over the tasks, no per-stage rescans."""
    day = facts.signed_up_at.date()
    cell = [day.isoformat(), facts.user_type, facts.channel, facts.template_version]
    active = is_active(facts, now)
    done_bucket = done_week = -1
    completion: list[Any] = []
    if facts.status == "COMPLETED" and facts.completed_at is not None:
        done_bucket = bucket_of((facts.completed_at - facts.signed_up_at).total_seconds())
        finished = facts.completed_at.date()
        done_week = min((week_of(finished) - week_of(day)).days // 7, WEEKS - 1)
        completion = [finished.isoformat(), week_of(day).isoformat(), done_bucket]
    by_stage: dict[str, list[TaskFacts]] = {}
    started = False
    for t in facts.tasks:
        by_stage.setdefault(t.stage_key, []).append(t)
        started = started or t.status in _MOVED or t.started_at is not None
    cohort = [int(started), int(facts.status == "COMPLETED"), int(active)]
    cohort += [facts.points, facts.badges, done_bucket, done_week]
    where = _position(facts, by_stage)
    here_stage, here_task = where if where is not None else (None, None)
    unlocked = {s.key: s.unlocked_at for s in facts.stages}
    steps: list[list[Any]] = []
    for s in facts.stages:
        tasks = by_stage.get(s.key, ())
        here = here_stage == s.key
        spent = (
            bucket_of((s.completed_at - s.unlocked_at).total_seconds())
            if s.status == "COMPLETED" and s.completed_at and s.unlocked_at
            else -1
        )
        flags = [
            int(s.status != "LOCKED"),
            int(s.status == "COMPLETED"),
            int(any(t.status == "SKIPPED" for t in tasks)),
            int(any(t.status == "FAILED" or t.attempts > 0 for t in tasks)),
            int(here and active),
            int(here and not active),
        ]
        entered = -1
        if here:
            entry = (s.unlocked_at or facts.signed_up_at) - facts.signed_up_at
            entered = bucket_of(entry.total_seconds())
        steps.append([s.key, "", s.position * 1000 - 1, flags, spent, entered])
    for t in facts.tasks:
        here = here_task == t.key
        since = t.started_at or unlocked.get(t.stage_key)
        spent = (
            bucket_of((t.completed_at - since).total_seconds())
            if t.status == "COMPLETED" and t.completed_at and since
            else -1
        )
        flags = [
            int(t.status != "LOCKED"),
            int(t.status == "COMPLETED"),
            int(t.status == "SKIPPED"),
            int(t.status == "FAILED" or t.attempts > 0),
            int(here and active),
            int(here and not active),
        ]
        steps.append([t.stage_key, t.key, t.position, flags, spent, -1])
    return {"cell": cell, "cohort": cohort, "steps": steps, "completion": completion}


def expand(contribution: dict[str, Any], sign: int, into: Delta) -> None:
    """Add (sign=1) or subtract (sign=-1) a compact contribution to dense per-row deltas."""

    def row(table: str, key: tuple[Any, ...]) -> list[int]:
        found = into.get((table, key))
        if found is None:
            found = into[(table, key)] = [0] * width(table)
        return found

    day = date.fromisoformat(contribution["cell"][0])
    cell = (day, *contribution["cell"][1:])
    started, completed, active, points, badges, done_bucket, done_week = contribution["cohort"]
    r = row(COHORT, cell)
    for i, value in enumerate((1, started, completed, active, points, badges)):
        r[i] += sign * value
    base = len(COHORT_COLUMNS)
    if done_bucket >= 0:
        r[base + done_bucket] += sign
        r[base + BUCKETS + done_week] += sign
    for stage_key, task_key, position, flags, spent, *rest in contribution["steps"]:
        r = row(STEP, (*cell, stage_key, task_key, position))
        for i, value in enumerate(flags):
            r[i] += sign * value
        if spent >= 0:
            r[len(STEP_COLUMNS) + spent] += sign
        entered = rest[0] if rest else -1  # contributions kept before stage entry times
        if entered >= 0:
            row(FLIGHT, (*cell, stage_key))[entered] += sign
    if contribution["completion"]:
        finished, signup_week, bucket = contribution["completion"]
        key = (date.fromisoformat(finished), *cell[1:])
        for r in (
            row(COMPLETION, (*key, date.fromisoformat(signup_week))),
            row(COMPLETION_DAY, key),
        ):
            r[0] += sign
            r[1 + bucket] += sign


def diff(pairs: Iterable[tuple[dict[str, Any] | None, dict[str, Any] | None]]) -> Delta:
    """The rollup change of customers moving from their old to their new contribution."""
    delta: Delta = {}
    for old, new in pairs:
        if old is not None:
            expand(old, -1, delta)
        if new is not None:
            expand(new, 1, delta)
    weekly(delta)
    return {k: v for k, v in delta.items() if any(v)}


WEEKLY = {STEP: STEP_WEEK, COHORT: COHORT_WEEK}


def weekly(delta: Delta) -> None:
    """Add to `delta` the rows of the weekly rollups: daily step and cohort rows summed by
    the Monday of their signup week (steps without their in-stage histogram)."""
    for (kind, key), values in list(delta.items()):
        if kind not in WEEKLY:
            continue
        size = width(WEEKLY[kind])
        if any(values[:size]):
            found = delta.setdefault((WEEKLY[kind], (week_of(key[0]), *key[1:])), [0] * size)
            found[:] = [a + b for a, b in zip(found, values[:size], strict=True)]
