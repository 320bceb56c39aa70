"""Pure milestone rules: criteria combined with all/any into progress, and how many times a
milestone is achieved by a customer's facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.milestones.criteria import Facts, Measure, measure
from app.milestones.definitions import (
    ActiveDays,
    EventCount,
    MilestoneDef,
    PointsReached,
    TasksCompleted,
)

TARGET_FIELD: dict[type[Any], str] = {
    EventCount: "count",
    ActiveDays: "days",
    TasksCompleted: "count",
    PointsReached: "points",
}
"""The field holding the target of each kind a repeatable milestone may use."""


@dataclass(frozen=True)
class Progress:
    """How far a customer is toward a milestone (its next occurrence when repeatable)."""

    key: str
    current: float
    target: float
    percent: float
    missing: str
    occurrences: int
    """How many times the facts achieve it: 0 or 1 for once-only milestones."""


def evaluate(m: MilestoneDef, facts: Facts) -> Progress:
    """The progress of `m` for one customer's facts."""
    if m.repeatable:
        return _repeating(m, facts)
    measures = [measure(c, facts) for c in m.criteria]
    met = [x.met for x in measures]
    done = all(met) if m.match == "all" else any(met)
    if len(measures) == 1:
        current, target = measures[0].current, measures[0].target
    else:
        current, target = sum(met), (len(measures) if m.match == "all" else 1)
    fractions = [x.fraction for x in measures]
    share = (sum(fractions) / len(fractions)) if m.match == "all" else max(fractions)
    return Progress(
        key=m.key,
        current=current,
        target=target,
        percent=100.0 if done else round(min(99.9, 100.0 * share), 1),
        missing="" if done else _missing(m, measures),
        occurrences=int(done),
    )


def occurrences(m: MilestoneDef, facts: Facts) -> int:
    """How many times the facts achieve `m` (what `evaluate` counts, without the words)."""
    if m.repeatable:
        criterion = m.criteria[0]
        step = int(getattr(criterion, TARGET_FIELD[type(criterion)]))
        return int(measure(criterion, facts).current // step)
    met = (measure(c, facts).met for c in m.criteria)
    return int(all(met) if m.match == "all" else any(met))


def _missing(m: MilestoneDef, measures: list[Measure]) -> str:
    parts = [x.missing for x in measures if not x.met and x.missing]
    joined = ("; " if m.match == "all" else " or ").join(parts)
    return joined[:1].upper() + joined[1:] + "." if joined else ""


def _repeating(m: MilestoneDef, facts: Facts) -> Progress:
    criterion = m.criteria[0]
    step = int(getattr(criterion, TARGET_FIELD[type(criterion)]))
    current = measure(criterion, facts).current
    times = int(current // step)
    following = criterion.model_copy(update={TARGET_FIELD[type(criterion)]: (times + 1) * step})
    toward = measure(following, facts)
    return Progress(
        key=m.key,
        current=current,
        target=(times + 1) * step,
        percent=round(100.0 * (current - times * step) / step, 1),
        missing=_missing(m, [toward]),
        occurrences=times,
    )
