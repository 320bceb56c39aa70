"""Milestone sets: the readable YAML/JSON shape, and its validation with every reason."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import InvalidMilestones
from app.kit.definitions import load_text, reasons_of

KEY = r"^[a-z][a-z0-9_-]{0,79}$"
EVENT = r"^[a-z][a-z0-9_.]{0,63}$"
Scalar = str | int | float | bool


class _Def(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventCount(_Def):
    """`count` events named `event` (whose properties contain `where`), in the last
    `within_days` days when given."""

    kind: Literal["event_count"]
    event: str = Field(pattern=EVENT)
    count: int = Field(default=1, ge=1, le=10_000_000)
    within_days: int | None = Field(default=None, ge=1, le=400)
    where: dict[str, Scalar] | None = None


class ActiveDays(_Def):
    """Events (named `event`, or any) on `days` different days, in the last `within_days`."""

    kind: Literal["active_days"]
    days: int = Field(ge=1, le=400)
    event: str | None = Field(default=None, pattern=EVENT)
    within_days: int | None = Field(default=None, ge=1, le=400)


class TasksCompleted(_Def):
    """The named tasks completed, or `count` tasks of any kind."""

    kind: Literal["tasks_completed"]
    tasks: list[Annotated[str, Field(pattern=KEY)]] | None = None
    count: int | None = Field(default=None, ge=1, le=10_000)


class StagesCompleted(_Def):
    """The named stages completed, or `count` stages."""

    kind: Literal["stages_completed"]
    stages: list[Annotated[str, Field(pattern=KEY)]] | None = None
    count: int | None = Field(default=None, ge=1, le=1_000)


class WorkflowCompletedWithin(_Def):
    """The onboarding workflow completed within `days` days of signing up."""

    kind: Literal["workflow_completed_within"]
    days: int = Field(ge=1, le=3650)


class PointsReached(_Def):
    """At least `points` points on the workflow."""

    kind: Literal["points_reached"]
    points: int = Field(ge=1, le=100_000_000)


class HealthLevelHeld(_Def):
    """The health level `level` held for `days` days without a break."""

    kind: Literal["health_level_held"]
    level: Literal["healthy", "at_risk", "critical"]
    days: int = Field(ge=1, le=3650)


class DaysSinceSignup(_Def):
    """`days` days since signing up."""

    kind: Literal["days_since_signup"]
    days: int = Field(ge=1, le=3650)


Criterion = Annotated[
    EventCount
    | ActiveDays
    | TasksCompleted
    | StagesCompleted
    | WorkflowCompletedWithin
    | PointsReached
    | HealthLevelHeld
    | DaysSinceSignup,
    Field(discriminator="kind"),
]
CUMULATIVE = (EventCount, ActiveDays, TasksCompleted, PointsReached)
"""Kinds that only grow (without a window), so "every N" of them can repeat."""


class BadgeDef(_Def):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    icon: str | None = Field(default=None, max_length=80)


class RewardDef(_Def):
    points: int = Field(default=0, ge=0, le=1_000_000)
    badge: BadgeDef | None = None


class MilestoneDef(_Def):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    icon: str | None = Field(default=None, max_length=80)
    match: Literal["all", "any"] = "all"
    criteria: list[Criterion] = Field(min_length=1, max_length=20)
    reward: RewardDef = RewardDef()
    repeatable: bool = Field(
        default=False,
        description="Achieved again at every multiple of its one criterion's target.",
    )


class MilestoneSetDef(_Def):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    milestones: list[MilestoneDef] = Field(min_length=1, max_length=200)


def problems(
    milestones: list[tuple[int, MilestoneDef]],
    *,
    tasks: frozenset[str],
    stages: frozenset[str],
    keys: list[str] | None = None,
) -> list[str]:
    """Reasons well-typed milestones cannot run: duplicate keys (of `keys`, every key sent,
    when given), unknown tasks or stages of the default template, repeatables that cannot
    repeat, empty choices."""
    found: list[str] = []
    seen: set[str] = set()
    for key in keys if keys is not None else [m.key for _, m in milestones]:
        if key in seen:
            found.append(f"key {key!r} is used by more than one milestone")
        seen.add(key)
    badges: dict[str, str] = {}
    for i, m in milestones:
        where = f"milestones.{i} ({m.key})"
        badge = m.reward.badge
        if badge is not None:
            if badge.key in badges:
                found.append(
                    f"{where}: badge {badge.key!r} is also the reward of {badges[badge.key]!r}"
                )
            badges[badge.key] = m.key
        if m.repeatable and (len(m.criteria) != 1 or not _can_repeat(m.criteria[0])):
            found.append(
                f"{where}: a repeatable milestone needs exactly one criterion that only grows "
                "(event_count or active_days without within_days, tasks_completed by count, "
                "points_reached)"
            )
        if m.repeatable and m.reward.badge is not None:
            found.append(f"{where}: a repeatable milestone cannot award a badge (it is once-only)")
        for j, c in enumerate(m.criteria):
            found += [f"{where}.criteria.{j}: {p}" for p in _criterion_problems(c, tasks, stages)]
    return found


def _readable(raw: dict[str, Any]) -> tuple[list[tuple[int, MilestoneDef]], list[str]]:
    """The milestones of a set that fails validation which are valid on their own, and
    every key it names, so their problems are reported in the same answer."""
    items = raw.get("milestones")
    good: list[tuple[int, MilestoneDef]] = []
    keys: list[str] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            keys.append(item["key"])
        try:
            good.append((i, MilestoneDef.model_validate(item)))
        except ValidationError:
            continue
    return good, keys


def _can_repeat(c: Any) -> bool:
    if isinstance(c, EventCount | ActiveDays):
        return c.within_days is None
    if isinstance(c, TasksCompleted):
        return c.count is not None
    return isinstance(c, PointsReached)


def _criterion_problems(c: Any, tasks: frozenset[str], stages: frozenset[str]) -> list[str]:
    if isinstance(c, TasksCompleted | StagesCompleted):
        names = c.tasks if isinstance(c, TasksCompleted) else c.stages
        what, known = ("task", tasks) if isinstance(c, TasksCompleted) else ("stage", stages)
        if (names is None) == (c.count is None):
            return [f"give either `{what}s` or `count`, one of them"]
        if names is not None and not names:
            return [f"`{what}s` is empty"]
        return [f"unknown {what} {n!r} (not in the default template)" for n in names or ()
                if known and n not in known]  # fmt: skip
    if isinstance(c, ActiveDays) and c.within_days is not None and c.days > c.within_days:
        return [f"{c.days} active days cannot fit in {c.within_days} days"]
    return []


def parse_set(
    raw: Any, *, tasks: frozenset[str] = frozenset(), stages: frozenset[str] = frozenset()
) -> MilestoneSetDef:
    """Validate a set (plain data, or YAML/JSON text); refuse it with every reason at once."""
    if isinstance(raw, str):
        raw = load_text(raw, error=InvalidMilestones, what="Milestone set")
    if not isinstance(raw, dict):
        raise InvalidMilestones("A milestone set must be a mapping.", reasons=["not a mapping"])
    reasons: list[str] = []
    parsed: MilestoneSetDef | None = None
    try:
        parsed = MilestoneSetDef.model_validate(raw)
    except RecursionError:
        reason = "the definition is nested too deep"
        raise InvalidMilestones(f"Milestone set is invalid: {reason}.", reasons=[reason]) from None
    except ValidationError as exc:
        reasons = reasons_of(exc)
    good, keys = (
        (list(enumerate(parsed.milestones)), None) if parsed is not None else _readable(raw)
    )
    reasons += problems(good, tasks=tasks, stages=stages, keys=keys)
    if reasons or parsed is None:
        raise InvalidMilestones("Milestone set is invalid: " + "; ".join(reasons), reasons=reasons)
    return parsed


@lru_cache(maxsize=1)
def bundled_default_text() -> str:
    """The default milestone set shipped with Liftoff."""
    return (resources.files("app.milestones") / "default.yaml").read_text()


def bundled_default() -> MilestoneSetDef:
    return parse_set(bundled_default_text())
