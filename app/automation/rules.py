"""Automation rules as plain data: the definition schema with every reason it is refused,
trigger matching, firing limits, the walk through ordered actions with branches and delays,
the loop-depth limit and the delivery retry schedule. No database, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from app.automation import conditions, templating
from app.errors import DomainError

MAX_ACTIONS = 50
MAX_BRANCH_DEPTH = 4
MAX_LOOP_DEPTH = 3
"""Events caused by automation carry their depth; a rule stops at this many hops."""

TIME_TRIGGERS = ("no_progress", "no_usage", "after_signup", "date_property")


class InvalidRule(DomainError):
    code = "INVALID_RULE"


class _Def(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


# --- triggers --------------------------------------------------------------------------------


class EventTrigger(_Def):
    type: Literal["event"]
    event: str = Field(
        min_length=1, max_length=64, pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$"
    )


class NoProgressTrigger(_Def):
    type: Literal["no_progress"]
    days: float = Field(gt=0, le=365)
    stage: str | None = Field(default=None, max_length=80)


class NoUsageTrigger(_Def):
    type: Literal["no_usage"]
    days: float = Field(gt=0, le=365)


class AfterSignupTrigger(_Def):
    type: Literal["after_signup"]
    days: float = Field(ge=0, le=3650)


class DatePropertyTrigger(_Def):
    type: Literal["date_property"]
    property: str = Field(min_length=1, max_length=80)
    days: float = Field(ge=-3650, le=3650, description="negative: before the date")


Trigger = Annotated[
    EventTrigger | NoProgressTrigger | NoUsageTrigger | AfterSignupTrigger | DatePropertyTrigger,
    Field(discriminator="type"),
]

# --- actions ---------------------------------------------------------------------------------


class SendEmail(_Def):
    type: Literal["send_email"]
    to: str = "{{ customer.email }}"
    subject: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, max_length=50_000)
    html: str | None = Field(default=None, max_length=200_000)


class Notify(_Def):
    type: Literal["notify"]
    to: str = Field(default="customer", description="customer, operators, or an operator email")
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=5000)


class Webhook(_Def):
    type: Literal["webhook"]
    event: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")
    endpoint: str | None = Field(default=None, description="an endpoint id; default: subscribers")
    data: dict[str, Any] | None = None


class CreateTask(_Def):
    type: Literal["create_task"]
    target: Literal["csm", "workflow"] = "csm"
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    due_in_days: float | None = Field(default=None, ge=0, le=365)
    assignee: str | None = Field(default=None, max_length=254)
    points: int = Field(default=0, ge=0, le=100_000)


class AwardPoints(_Def):
    type: Literal["award_points"]
    points: int = Field(ge=1, le=100_000)
    reason: str = Field(default="automation", max_length=200)


class TagCustomer(_Def):
    type: Literal["tag_customer", "untag_customer"]
    tag: str = Field(min_length=1, max_length=64)


class SetProperty(_Def):
    type: Literal["set_property"]
    property: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    value: Any


class Delay(_Def):
    type: Literal["delay"]
    days: float = Field(default=0, ge=0, le=365)
    hours: float = Field(default=0, ge=0, le=24 * 365)
    minutes: float = Field(default=0, ge=0)
    seconds: float = Field(default=0, ge=0)

    @property
    def duration(self) -> timedelta:
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )


class Branch(_Def):
    type: Literal["if"]
    conditions: dict[str, Any]
    then: list[Action] = Field(min_length=1)
    else_: list[Action] = Field(default_factory=list, alias="else")


Action = Annotated[
    SendEmail
    | Notify
    | Webhook
    | CreateTask
    | AwardPoints
    | TagCustomer
    | SetProperty
    | Delay
    | Branch,
    Field(discriminator="type"),
]
EFFECTS = (
    "send_email",
    "notify",
    "webhook",
    "create_task",
    "award_points",
    "tag_customer",
    "untag_customer",
    "set_property",
)


class Goal(_Def):
    """The outcome a rule aims at: an event (optionally matching conditions) within N days."""

    event: str = Field(min_length=1, max_length=64)
    conditions: dict[str, Any] | None = None
    within_days: float = Field(default=7, gt=0, le=365)


class RuleDef(_Def):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    cooldown_seconds: int = Field(default=0, ge=0, le=365 * 86400)
    max_runs: int | None = Field(default=None, ge=1)
    active_from: datetime | None = None
    active_until: datetime | None = None
    trigger: Trigger
    conditions: dict[str, Any] | None = None
    actions: list[Action] = Field(min_length=1)
    goal: Goal | None = None

    @property
    def trigger_key(self) -> str:
        """What the engine indexes rules by: the event pattern, or `time:<kind>`."""
        t = self.trigger
        return t.event if isinstance(t, EventTrigger) else f"time:{t.type}"

    def document(self) -> dict[str, Any]:
        """The normalized definition as stored (camelCase keys, defaults filled in)."""
        return self.model_dump(mode="json", by_alias=True)


Branch.model_rebuild()
RuleDef.model_rebuild()


def _walk_actions(actions: Sequence[Any], path: str, depth: int) -> list[str]:
    out: list[str] = []
    if depth > MAX_BRANCH_DEPTH:
        return [f"{path}: branches nest deeper than {MAX_BRANCH_DEPTH} levels"]
    for i, action in enumerate(actions):
        here = f"{path}[{i}]"
        if isinstance(action, Branch):
            out += conditions.problems(action.conditions, f"{here}.conditions")
            out += _walk_actions(action.then, f"{here}.then", depth + 1)
            out += _walk_actions(action.else_, f"{here}.else", depth + 1)
        elif isinstance(action, Delay):
            if action.duration <= timedelta(0):
                out.append(f"{here}: a delay needs days, hours, minutes or seconds")
        else:
            for name in ("to", "subject", "text", "html", "title", "body", "description"):
                value = getattr(action, name, None)
                if isinstance(value, str):
                    out += templating.template_problems(value, f"{here}.{name}")
            if isinstance(action, Webhook) and action.data is not None:
                out += templating.template_problems(action.data, f"{here}.data")
            if isinstance(action, SetProperty):
                out += templating.template_problems(action.value, f"{here}.value")
    return out


def count_actions(actions: Sequence[Any]) -> int:
    """Actions in a list, branches included."""
    return sum(
        1 + (count_actions(a.then) + count_actions(a.else_) if isinstance(a, Branch) else 0)
        for a in actions
    )


def semantic_problems(rule: RuleDef) -> list[str]:
    """Reasons beyond the shape: conditions, templates, sizes, windows."""
    out: list[str] = []
    if rule.conditions is not None:
        out += conditions.problems(rule.conditions)
    out += _walk_actions(rule.actions, "actions", 0)
    if count_actions(rule.actions) > MAX_ACTIONS:
        out.append(f"actions: at most {MAX_ACTIONS} actions, branches included")
    if rule.active_from and rule.active_until and rule.active_from >= rule.active_until:
        out.append("activeUntil: must be after activeFrom")
    for name in ("active_from", "active_until"):
        value = getattr(rule, name)
        if value is not None and value.tzinfo is None:
            out.append(f"{to_camel(name)}: give a time zone (e.g. 2026-01-01T00:00:00Z)")
    if rule.goal is not None and rule.goal.conditions is not None:
        out += conditions.problems(rule.goal.conditions, "goal.conditions")
    return out


def parse_rule(raw: Any) -> RuleDef:
    """Validate a raw definition; refuse it with every reason found."""
    if not isinstance(raw, Mapping):
        raise InvalidRule("A rule definition must be a mapping.", reasons=["not a mapping"])
    try:
        rule = RuleDef.model_validate(raw)
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
            for err in exc.errors()
        ]
        if raw.get("conditions") is not None:
            reasons += conditions.problems(raw["conditions"])
        raise InvalidRule(
            "Rule definition is invalid: " + "; ".join(reasons), reasons=reasons
        ) from None
    problems = semantic_problems(rule)
    if problems:
        raise InvalidRule("Rule definition is invalid: " + "; ".join(problems), reasons=problems)
    return rule


# --- matching and limits ---------------------------------------------------------------------


def event_matches(pattern: str, event_type: str) -> bool:
    """`task.completed` matches itself; `usage.*` matches every usage event; `*` matches all."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def skip_reason(
    rule: RuleDef, *, now: datetime, last_fired_at: datetime | None, runs: int
) -> str | None:
    """Why a rule whose conditions held must not fire now (None: it fires)."""
    if rule.active_from and now < rule.active_from:
        return "before its active window"
    if rule.active_until and now >= rule.active_until:
        return "after its active window"
    if rule.max_runs is not None and runs >= rule.max_runs:
        return f"max runs reached ({runs} of {rule.max_runs})"
    if rule.cooldown_seconds and last_fired_at is not None:
        ready = last_fired_at + timedelta(seconds=rule.cooldown_seconds)
        if now < ready:
            return f"cooling down until {ready.isoformat()}"
    return None


def loop_depth(payload: Mapping[str, Any]) -> int:
    """How many automation hops caused an event (0 for an event a person or system caused)."""
    meta = payload.get("automation")
    if isinstance(meta, Mapping):
        depth = meta.get("depth")
        if isinstance(depth, int) and depth >= 0:
            return depth
    return 0


def over_loop_limit(depth: int, limit: int = MAX_LOOP_DEPTH) -> bool:
    """A rule reacting to an event `depth` hops deep would go one hop further than allowed."""
    return depth >= limit


# --- walking actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """An effect to perform, at its path in the action tree (`2`, `3.then.0`)."""

    path: str
    action: Any


@dataclass
class Plan:
    """The effects to run now, in order, and the delay that stops the walk (if any)."""

    steps: list[Step] = field(default_factory=list)
    wait: Step | None = None
    branches: dict[str, bool] = field(default_factory=dict)
    explanations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def path_key(path: str) -> tuple[Any, ...]:
    """A sortable key for an action path (`10` after `9`, `2.then.0` after `2`)."""
    return tuple(int(p) if p.isdigit() else p for p in path.split("."))


def plan(
    actions: Sequence[Any],
    facts: Mapping[str, Any],
    *,
    after: str | None = None,
    decided: Mapping[str, bool] | None = None,
) -> Plan:
    """Walk actions in order from the start (or past the delay at `after`), taking branches
    by their conditions over `facts`; branches decided before a delay keep their decision."""
    out = Plan(branches=dict(decided or {}))
    resume = path_key(after) if after else None

    def passed(path: str) -> bool:
        return resume is not None and path_key(path) <= resume

    def contains_resume(path: str) -> bool:
        key = path_key(path)
        return resume is not None and resume[: len(key)] == key

    def walk(items: Sequence[Any], prefix: str) -> bool:
        for i, action in enumerate(items):
            path = f"{prefix}{i}"
            if isinstance(action, Branch):
                if passed(path) and not contains_resume(path):
                    continue
                if path in out.branches:
                    took = out.branches[path]
                else:
                    result = conditions.evaluate(action.conditions, facts)
                    took = result.held
                    out.branches[path] = took
                    out.explanations[path] = result.flatten()
                branch = action.then if took else action.else_
                if walk(branch, f"{path}.{'then' if took else 'else'}."):
                    return True
                continue
            if passed(path):
                continue
            if isinstance(action, Delay):
                out.wait = Step(path, action)
                return True
            out.steps.append(Step(path, action))
        return False

    walk(actions, "")
    return out


def at_path(actions: Sequence[Any], path: str) -> Any:
    """The action at a path of the tree."""
    node: Any = None
    items: Sequence[Any] = actions
    parts = path.split(".")
    i = 0
    while i < len(parts):
        node = items[int(parts[i])]
        if i + 1 < len(parts):
            items = node.then if parts[i + 1] == "then" else node.else_
        i += 2
    return node


# --- delivery retries ------------------------------------------------------------------------

RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds before each attempt (Svix): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h."""


def next_attempt_delay(
    attempts_done: int,
    *,
    scale: float = 1.0,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt after `attempts_done` failures (None: give up)."""
    if attempts_done >= len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[attempts_done] * scale
    return base * (1 - jitter + 2 * jitter * rand())
