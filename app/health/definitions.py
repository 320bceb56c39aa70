"""Health model definitions: the readable YAML/JSON shape, segment overrides, validation."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.errors import InvalidHealthModel
from app.kit.definitions import load_text, reasons_of, validate

COMPONENTS = ("engagement", "adoption", "onboarding", "support", "sentiment", "billing")
ComponentKey = Literal["engagement", "adoption", "onboarding", "support", "sentiment", "billing"]
EVENT = r"^[a-z][a-z0-9_.]{0,63}$"
SEGMENT = r"^[a-z][a-z0-9_-]{0,63}$"
# What a segment may not change: the SQL that gathers facts is shared by every segment.
GLOBAL_ONLY = frozenset(
    {
        "window_days",
        "features",
        "events",
        "escalation_events",
        "positive",
        "neutral",
        "negative",
        "failure_events",
        "downgrade_events",
        "other_events",
    }
)

EventName = Annotated[str, StringConstraints(pattern=EVENT)]


def _events(min_length: int = 0) -> Any:
    return Field(default_factory=list, min_length=min_length, max_length=200)


class _Def(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Component(_Def):
    weight: float = Field(ge=0, le=1000)


class Engagement(_Component):
    window_days: int = Field(default=30, ge=1, le=365)
    inactive_days: int = Field(default=14, ge=1, le=365)
    recency_share: float = Field(default=50, ge=0, le=100)


class Adoption(_Component):
    window_days: int = Field(default=90, ge=1, le=365)
    features: list[EventName] = _events(1)


class Onboarding(_Component):
    expected_days: int = Field(default=30, ge=1, le=3650)
    stall_days: int = Field(default=7, ge=1, le=365)


class Support(_Component):
    window_days: int = Field(default=30, ge=1, le=365)
    events: list[EventName] = _events(1)
    escalation_events: list[EventName] = _events()
    tolerated: int = Field(default=1, ge=0, le=1000)
    penalty: float = Field(default=20, ge=0, le=100)


class Sentiment(_Component):
    window_days: int = Field(default=90, ge=1, le=365)
    positive: list[EventName] = _events(1)
    neutral: list[EventName] = _events()
    negative: list[EventName] = _events(1)


class Billing(_Component):
    window_days: int = Field(default=90, ge=1, le=365)
    failure_events: list[EventName] = _events(1)
    downgrade_events: list[EventName] = _events()
    other_events: list[EventName] = _events()
    failure_penalty: float = Field(default=35, ge=0, le=100)
    downgrade_penalty: float = Field(default=30, ge=0, le=100)


class Levels(_Def):
    healthy: float = Field(ge=0, le=100)
    at_risk: float = Field(ge=0, le=100)


class Components(_Def):
    engagement: Engagement | None = None
    adoption: Adoption | None = None
    onboarding: Onboarding | None = None
    support: Support | None = None
    sentiment: Sentiment | None = None
    billing: Billing | None = None

    def present(self) -> list[tuple[str, _Component]]:
        """The components the model uses, in the documented order."""
        return [(k, c) for k in COMPONENTS if (c := getattr(self, k)) is not None]


class Segment(_Def):
    levels: Levels | None = None
    components: dict[ComponentKey, dict[str, Any]] = Field(default_factory=dict)


class HealthModelDef(_Def):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    levels: Levels
    components: Components
    segments: dict[str, Segment] = Field(default_factory=dict)
    customer_visible: bool = False
    """Whether a CUSTOMER may read its own score (off by default)."""
    notify_points: float = Field(default=5, ge=0, le=100)
    """Moves of at least this many points (or a level change) are pushed to subscribers."""

    def for_segment(self, segment: str | None) -> HealthModelDef:
        """The model as it applies to customers of `segment` (user type)."""
        if not segment or segment not in self.segments:
            return self
        return _resolved(self, segment)

    def event_names(self) -> dict[str, list[str]]:
        """Event names with a meaning of their own, per component (the rest is engagement)."""
        c = self.components
        out: dict[str, list[str]] = {}
        if c.support:
            out["support"] = [*c.support.events, *c.support.escalation_events]
        if c.sentiment:
            out["sentiment"] = [*c.sentiment.positive, *c.sentiment.neutral, *c.sentiment.negative]
        if c.billing:
            b = c.billing
            out["billing"] = [*b.failure_events, *b.downgrade_events, *b.other_events]
        return out


@lru_cache(maxsize=256)
def _resolved_cached(model_json: str, segment: str) -> HealthModelDef:
    model = HealthModelDef.model_validate_json(model_json)
    return _apply_segment(model, segment)


def _resolved(model: HealthModelDef, segment: str) -> HealthModelDef:
    return _resolved_cached(model.model_dump_json(), segment)


def _apply_segment(model: HealthModelDef, segment: str) -> HealthModelDef:
    seg = model.segments[segment]
    components = model.components.model_dump()
    for key, override in seg.components.items():
        if components.get(key) is None:
            continue
        components[key] = {**components[key], **override}
    return HealthModelDef.model_validate(
        {
            **model.model_dump(exclude={"segments"}),
            "levels": (seg.levels or model.levels).model_dump(),
            "components": components,
        }
    )


def _level_problems(levels: Levels, where: str) -> list[str]:
    if levels.at_risk >= levels.healthy:
        return [
            f"{where}levels: at_risk ({levels.at_risk:g}) must be below healthy "
            f"({levels.healthy:g})"
        ]
    return []


def _weight_problems(model: HealthModelDef, where: str) -> list[str]:
    present = model.components.present()
    if not present:
        return [f"{where}components: the model needs at least one component"]
    if sum(c.weight for _, c in present) <= 0:
        return [f"{where}components: the weights must not all be zero"]
    return []


def _event_clashes(model: HealthModelDef) -> list[str]:
    owner: dict[str, str] = {}
    problems: list[str] = []
    for component, names in model.event_names().items():
        for name in names:
            if name in owner and owner[name] != component:
                problems.append(f"event {name!r} is used by both {owner[name]} and {component}")
            elif name in owner:
                problems.append(f"event {name!r} is listed twice in {component}")
            owner[name] = component
    return problems


def _segment_problems(model: HealthModelDef) -> list[str]:
    problems: list[str] = []
    for name, seg in model.segments.items():
        where = f"segments.{name}."
        if not _matches(SEGMENT, name):
            problems.append(f"segments: {name!r} is not a segment name (lowercase user type)")
        for key, override in seg.components.items():
            if getattr(model.components, key) is None:
                problems.append(f"{where}components.{key}: the model has no {key} component")
            for field in sorted(GLOBAL_ONLY & set(override)):
                problems.append(
                    f"{where}components.{key}.{field}: only weights, thresholds and scoring "
                    "parameters may differ per segment"
                )
        try:
            resolved = _apply_segment(model, name)
        except ValidationError as exc:
            problems.extend(reasons_of(exc, where))
            continue
        if seg.levels is not None:
            problems.extend(_level_problems(resolved.levels, where))
        problems.extend(_weight_problems(resolved, where))
    return problems


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern.strip("^$"), value) is not None


def structural_problems(model: HealthModelDef) -> list[str]:
    """Reasons a well-typed model still cannot score, in words."""
    return [
        *_level_problems(model.levels, ""),
        *_weight_problems(model, ""),
        *_event_clashes(model),
        *_segment_problems(model),
    ]


def parse_model(raw: Any) -> HealthModelDef:
    """Validate a raw health model (plain data, or YAML/JSON text); refuse it with every
    reason found."""
    if isinstance(raw, str):
        raw = load_text(raw, error=InvalidHealthModel, what="Health model")
    return validate(
        HealthModelDef,
        raw,
        error=InvalidHealthModel,
        what="Health model",
        problems=structural_problems,
    )


@lru_cache(maxsize=1)
def bundled_default_text() -> str:
    """The text of the default health model shipped with Liftoff."""
    return (resources.files("app.health") / "models" / "default.yaml").read_text()


@lru_cache(maxsize=1)
def bundled_default() -> HealthModelDef:
    """The default health model, validated."""
    return parse_model(bundled_default_text())
