"""Template definitions: the readable YAML/JSON shape, and its validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import InvalidTemplate
from app.kit.definitions import load_text as kit_load_text

KEY = r"^[a-z][a-z0-9_-]{0,79}$"


class _Def(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HelpResource(_Def):
    title: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    kind: Literal["article", "video", "doc", "link", "tutorial"] = "article"


class SuccessCriterion(_Def):
    """Completes the task once `count` usage events named `event` arrived (in the last
    `within_days` days when given); events sent while the task is locked count too."""

    event: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")
    count: int = Field(default=1, ge=1, le=1_000_000)
    within_days: int | None = Field(default=None, ge=1, le=400)


class TaskDef(_Def):
    key: str = Field(pattern=KEY)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    points: int = Field(default=0, ge=0, le=100_000)
    estimated_minutes: int = Field(default=0, ge=0, le=100_000)
    required: bool = True
    depends_on: list[str] = Field(default_factory=list)
    help: list[HelpResource] = Field(default_factory=list)
    success_criterion: SuccessCriterion | None = None


class BadgeDef(_Def):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    icon: str | None = None


class RewardDef(_Def):
    points: int = Field(default=0, ge=0, le=1_000_000)
    badge: BadgeDef | None = None


class UnlockDef(_Def):
    previous_stages_complete: bool = True
    min_points: int | None = Field(default=None, ge=0)
    days_since_signup: int | None = Field(default=None, ge=0)
    tasks_completed: list[str] = Field(default_factory=list)


class StageDef(_Def):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    unlock: UnlockDef = UnlockDef()
    reward: RewardDef = RewardDef()
    tasks: list[TaskDef] = Field(min_length=1)


class TemplateDef(_Def):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    stages: list[StageDef] = Field(min_length=1)

    def all_tasks(self) -> Iterable[tuple[int, TaskDef]]:
        """Every task with the position of its stage."""
        for index, stage in enumerate(self.stages):
            for task in stage.tasks:
                yield index, task


def _duplicates(keys: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for key in keys:
        if key in seen and key not in dupes:
            dupes.append(key)
        seen.add(key)
    return dupes


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path of keys, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None


@dataclass(frozen=True)
class _Task:
    key: str
    required: bool
    depends_on: list[str]


@dataclass(frozen=True)
class _Stage:
    key: str | None
    waits_for: list[str]
    tasks: list[_Task]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def _truthy(value: Any) -> bool:
    """A boolean as pydantic reads one ("no", "false", 0 are false)."""
    return str(value).lower() not in {"false", "f", "no", "n", "off", "0"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _outline(raw: dict[str, Any]) -> list[_Stage]:
    """Stages and tasks as far as they can be read, even where other fields are invalid."""
    stages = []
    for stage in map(_dict, _list(raw.get("stages"))):
        tasks = [
            _Task(t["key"], _truthy(t.get("required", True)), _strings(t.get("depends_on")))
            for t in map(_dict, _list(stage.get("tasks")))
            if isinstance(t.get("key"), str)
        ]
        key = stage.get("key") if isinstance(stage.get("key"), str) else None
        waits_for = _strings(_dict(stage.get("unlock")).get("tasks_completed"))
        stages.append(_Stage(key, waits_for, tasks))
    return stages


def structural_problems(raw: dict[str, Any]) -> list[str]:
    """Reasons a definition cannot run beyond its field types (keys, dependencies, cycles)."""
    stages = _outline(raw)
    tasks = [(index, task) for index, stage in enumerate(stages) for task in stage.tasks]
    problems: list[str] = []
    for key in _duplicates(stage.key for stage in stages if stage.key is not None):
        problems.append(f"stage key {key!r} is used more than once")
    for key in _duplicates(task.key for _, task in tasks):
        problems.append(f"task key {key!r} is used more than once")
    stage_of = {task.key: index for index, task in tasks}
    optional = {task.key for _, task in tasks if not task.required}
    for index, task in tasks:
        for dep in task.depends_on:
            if dep == task.key:
                problems.append(f"task {task.key!r} depends on itself")
            elif dep not in stage_of:
                problems.append(f"task {task.key!r} depends on unknown task {dep!r}")
            elif stage_of[dep] > index:
                problems.append(f"task {task.key!r} depends on {dep!r}, which is in a later stage")
    for index, stage in enumerate(stages):
        for name in stage.waits_for:
            if name not in stage_of:
                problems.append(f"stage {stage.key!r} waits for unknown task {name!r}")
            elif name in optional:
                problems.append(
                    f"stage {stage.key!r} waits for optional task {name!r}, which may be skipped"
                )
            elif stage_of[name] >= index:
                problems.append(
                    f"stage {stage.key!r} waits for task {name!r}, which can only be done "
                    "once that stage is unlocked"
                )
    graph = {task.key: [d for d in task.depends_on if d != task.key] for _, task in tasks}
    cycle = _find_cycle(graph)
    if cycle:
        problems.append("dependency cycle: " + " -> ".join(cycle))
    return problems


def parse_definition(raw: Any) -> TemplateDef:
    """Validate a raw definition; refuse it with every reason found, all in one answer."""
    if not isinstance(raw, dict):
        raise InvalidTemplate("A template definition must be a mapping.", reasons=["not a mapping"])
    reasons: list[str] = []
    template: TemplateDef | None = None
    try:
        template = TemplateDef.model_validate(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
            for err in exc.errors()
        ]
    reasons += structural_problems(raw)
    if reasons or template is None:
        raise InvalidTemplate(
            "Template definition is invalid: " + "; ".join(reasons), reasons=reasons
        )
    return template


def _too_deep() -> InvalidTemplate:
    reason = "the definition is nested too deep"
    return InvalidTemplate(f"Template definition is invalid: {reason}.", reasons=[reason])


def load_text(text: str) -> Any:
    """Parse YAML (a superset of JSON) into plain data, refusing unreadable text."""
    return kit_load_text(text, error=InvalidTemplate, what="Template")
