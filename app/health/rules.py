"""Score formulas: plain functions from a customer's facts to component values and a score.

Every component maps facts to 0-100, or to None when the customer has no data for it;
the score is the weighted mean of the components with data, so each component's
contribution is `value * weight / (sum of the weights with data)` and the contributions
add up to the score. A model's direction is documented per component: more usage, more
features, more onboarding progress and more positive survey answers never lower a score;
more inactivity, tickets, negative answers, failed payments and downgrades never raise it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.health.definitions import (
    Adoption,
    Billing,
    Engagement,
    HealthModelDef,
    Onboarding,
    Sentiment,
    Support,
)

NEUTRAL = 50.0
"""The score of a customer for whom no component has data (confidence 0)."""


class HealthLevel(StrEnum):
    HEALTHY = "HEALTHY"
    AT_RISK = "AT_RISK"
    CRITICAL = "CRITICAL"


LEVEL_ORDER = {HealthLevel.CRITICAL: 0, HealthLevel.AT_RISK: 1, HealthLevel.HEALTHY: 2}


@dataclass(frozen=True, slots=True)
class Norm:
    """What the organization's typical customer does, to judge engagement against."""

    median_events: float = 0.0
    median_active_days: float = 0.0
    has_usage: bool = False
    tracks_support: bool = False


@dataclass(frozen=True, slots=True)
class Facts:
    """What the data says about one customer, gathered in SQL for thousands at once."""

    events: int = 0
    active_days: int = 0
    days_since_active: int | None = None
    features_used: tuple[str, ...] = ()
    tickets: int = 0
    escalations: int = 0
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    payment_failures: int = 0
    downgrades: int = 0
    billing_events: int = 0
    progress: float | None = None
    completed: bool = False
    days_since_signup: int = 0
    stage: str | None = None
    stalled_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The facts by name, without the defaults."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value != _DEFAULTS[name]:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | list[Any], *, as_of: datetime | None = None) -> Facts:
        """The facts stored with a score: a list in `FACT_FIELDS` order (then the norm), as
        the set-based recompute writes them, or an object by name (older scores). The day
        counts of `MOMENTS` may be stored as the moment they count from (ISO 8601, UTC): they
        are counted up to `as_of` (now when not given) as the recompute counts them."""
        if isinstance(data, list):
            data = dict(zip(FACT_FIELDS, data, strict=False))
        known = {k: v for k, v in data.items() if k in _DEFAULTS and v is not None}
        for name in MOMENTS:
            if isinstance(known.get(name), str):
                known[name] = days_since(known[name], as_of or datetime.now(UTC))
        if "features_used" in known:
            known["features_used"] = tuple(known["features_used"])
        return cls(**known)


MOMENTS = ("days_since_active", "days_since_signup", "stalled_days")
"""Facts that grow by one a day while nothing happens."""


def days_since(moment: str, as_of: datetime) -> int:
    """Whole days from a stored moment (ISO 8601, UTC when it names no zone) to `as_of`, never
    negative: `greatest(0, floor(seconds / 86400))` as the SQL counts them."""
    then = datetime.fromisoformat(moment)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0, (as_of - then).days)


_DEFAULTS: dict[str, Any] = {name: getattr(Facts(), name) for name in Facts.__slots__}
FACT_FIELDS: tuple[str, ...] = tuple(Facts.__slots__)
"""The order of the stored facts (a JSON array is several times cheaper for PostgreSQL to
build than an object); the norm's median events and active days follow them."""


def stored_norm_of(data: dict[str, Any] | list[Any]) -> tuple[float, float]:
    """The (median events, median active days) stored with a score's facts."""
    if isinstance(data, list):
        rest = data[len(FACT_FIELDS) :]
        return (float(rest[0]), float(rest[1])) if len(rest) >= 2 else (0.0, 0.0)
    found = data.get("norm") or (0.0, 0.0)
    return float(found[0]), float(found[1])


@dataclass(frozen=True, slots=True)
class Part:
    """One component of a score."""

    key: str
    value: float | None
    weight: float
    contribution: float

    @property
    def has_data(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class Score:
    """A computed score with its parts."""

    score: float
    level: HealthLevel
    confidence: float
    parts: tuple[Part, ...] = field(default_factory=tuple)

    def components_json(self) -> list[list[Any]]:
        """Compact stored form: [key, value, weight, contribution] per component."""
        return [[p.key, p.value, p.weight, p.contribution] for p in self.parts]


def _clamp(value: float) -> float:
    return 0.0 if value < 0 else 100.0 if value > 100 else value


def engagement(c: Engagement, f: Facts, n: Norm) -> float | None:
    """Recency (falls to 0 after `inactive_days`) blended with frequency against the median."""
    if not n.has_usage and f.days_since_active is None:
        return None
    if f.days_since_active is None:
        recency = 0.0
    else:
        recency = _clamp(100.0 * (1.0 - f.days_since_active / c.inactive_days))
    frequency = _clamp(100.0 * f.events / max(n.median_events, 1.0))
    share = c.recency_share / 100.0
    return _clamp(share * recency + (1.0 - share) * frequency)


def adoption(c: Adoption, f: Facts, n: Norm) -> float | None:
    """Share of the expected features the customer used in the window."""
    if not n.has_usage and not f.features_used:
        return None
    used = len(set(f.features_used) & set(c.features))
    return _clamp(100.0 * used / len(c.features))


def expected_progress(c: Onboarding, f: Facts) -> float:
    """The share of onboarding (0-1) a customer on pace has done after its days so far."""
    return min(1.0, max(0, f.days_since_signup) / c.expected_days)


def onboarding(c: Onboarding, f: Facts) -> float | None:
    """Progress against the expected pace, lowered while the workflow stalls."""
    if f.progress is None:
        return None
    if f.completed:
        return 100.0
    expected = expected_progress(c, f)
    pace = 100.0 if f.progress >= expected else 100.0 * f.progress / expected
    stalled = f.stalled_days or 0
    if stalled > c.stall_days:
        pace *= max(0.25, 1.0 - (stalled - c.stall_days) / (3.0 * c.stall_days))
    return _clamp(pace)


def support(c: Support, f: Facts, n: Norm) -> float | None:
    """Full marks, less a penalty per ticket beyond those tolerated and double per escalation."""
    if not n.tracks_support and f.tickets == 0 and f.escalations == 0:
        return None
    over = max(0, f.tickets - c.tolerated)
    return _clamp(100.0 - c.penalty * over - 2.0 * c.penalty * f.escalations)


def sentiment(c: Sentiment, f: Facts) -> float | None:
    """Positive answers count fully, neutral ones half, negative ones nothing."""
    answers = f.positive + f.neutral + f.negative
    if answers == 0:
        return None
    return _clamp(100.0 * (f.positive + 0.5 * f.neutral) / answers)


def billing(c: Billing, f: Facts) -> float | None:
    """Full marks, less a penalty per failed payment and per downgrade in the window."""
    if f.billing_events == 0 and f.payment_failures == 0 and f.downgrades == 0:
        return None
    return _clamp(
        100.0 - c.failure_penalty * f.payment_failures - c.downgrade_penalty * f.downgrades
    )


Values = list[tuple[str, float, float | None]]


def component_values(model: HealthModelDef, f: Facts, n: Norm) -> Values:
    """(key, weight, value or None) of every component of the model, in order."""
    c = model.components
    out: Values = []
    if c.engagement:
        out.append(("engagement", c.engagement.weight, engagement(c.engagement, f, n)))
    if c.adoption:
        out.append(("adoption", c.adoption.weight, adoption(c.adoption, f, n)))
    if c.onboarding:
        out.append(("onboarding", c.onboarding.weight, onboarding(c.onboarding, f)))
    if c.support:
        out.append(("support", c.support.weight, support(c.support, f, n)))
    if c.sentiment:
        out.append(("sentiment", c.sentiment.weight, sentiment(c.sentiment, f)))
    if c.billing:
        out.append(("billing", c.billing.weight, billing(c.billing, f)))
    return out


def level_of(model: HealthModelDef, score: float) -> HealthLevel:
    """The level a score falls in under the model's thresholds."""
    if score >= model.levels.healthy:
        return HealthLevel.HEALTHY
    if score >= model.levels.at_risk:
        return HealthLevel.AT_RISK
    return HealthLevel.CRITICAL


def combine(model: HealthModelDef, values: Values) -> Score:
    """Weighted mean of the components with data; the others are left out and re-weighted."""
    total = sum(w for _, w, _ in values)
    with_data = sum(w for _, w, v in values if v is not None)
    if with_data <= 0:
        parts = tuple(Part(k, v, w, 0.0) for k, w, v in values)
        return Score(NEUTRAL, level_of(model, NEUTRAL), 0.0, parts)
    parts = tuple(Part(k, v, w, 0.0 if v is None else v * w / with_data) for k, w, v in values)
    score = _clamp(math.fsum(p.contribution for p in parts))
    confidence = 100.0 * with_data / total
    return Score(score, level_of(model, score), confidence, parts)


def compute(model: HealthModelDef, facts: Facts, norm: Norm) -> Score:
    """A customer's score under the model (already resolved for its segment)."""
    return combine(model, component_values(model, facts, norm))


def significant(
    *, old_score: float | None, old_level: str | None, score: float, level: str, points: float = 5
) -> bool:
    """Whether a move is worth pushing: a level change, or `points` or more either way."""
    if old_score is None or old_level is None:
        return False
    return old_level != level or abs(score - old_score) >= points
