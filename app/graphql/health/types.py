"""GraphQL types of health scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.events.channels import Published
from app.graphql.context import Context
from app.graphql.enums import HealthLevel, JobStatus, SnapshotKind
from app.health import service
from app.health.explain import Change, Risk
from app.health.models import HealthJob as JobRow
from app.health.models import HealthModel as ModelRow
from app.health.models import HealthOverride as OverrideRow

Info = strawberry.Info[Context, None]


@strawberry.type(description="One component of a score: value 0-100, weight, contribution.")
class HealthComponent:
    key: str
    label: str
    value: float | None = strawberry.field(description="0-100; null when there is no data.")
    weight: float
    contribution: float = strawberry.field(
        description="Points of the score from this component; the contributions add up to it."
    )
    has_data: bool
    explanation: str

    @classmethod
    def of(cls, c: service.ComponentView) -> HealthComponent:
        return cls(
            key=c.key,
            label=c.label,
            value=c.value,
            weight=c.weight,
            contribution=c.contribution,
            has_data=c.value is not None,
            explanation=c.explanation,
        )


@strawberry.type(description="A reason the score is lower, with its evidence.")
class HealthRiskFactor:
    component: str
    message: str
    impact: float = strawberry.field(description="Points of score the component loses.")

    @classmethod
    def of(cls, r: Risk) -> HealthRiskFactor:
        return cls(component=r.component, message=r.message, impact=r.impact)


@strawberry.type(description="How one component moved a score between two points in time.")
class HealthChange:
    component: str
    delta: float
    message: str

    @classmethod
    def of(cls, c: Change) -> HealthChange:
        return cls(component=c.component, delta=c.delta, message=c.message)


@strawberry.type(description="A score or level set by hand; it lapses at `expiresAt`.")
class HealthOverride:
    id: strawberry.ID
    score: float | None
    level: HealthLevel | None
    reason: str
    expires_at: datetime
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    previous_score: float | None
    previous_level: HealthLevel | None

    @classmethod
    def of(cls, row: OverrideRow) -> HealthOverride:
        prev = row.previous or {}
        return cls(
            id=strawberry.ID(str(row.id)),
            score=row.score,
            level=HealthLevel(row.level) if row.level else None,
            reason=row.reason,
            expires_at=row.expires_at,
            created_by=row.created_by,
            created_at=row.created_at,
            ended_at=row.ended_at,
            ended_by=row.ended_by,
            previous_score=prev.get("score"),
            previous_level=HealthLevel(prev["level"]) if prev.get("level") else None,
        )


@strawberry.type(description="A score's move since an earlier snapshot, and why.")
class HealthMovement:
    delta: float | None = strawberry.field(description="Null without a snapshot that old.")
    changes: list[HealthChange]


@strawberry.type(description="A customer's health: score, level, parts, risks, override.")
class HealthScore:
    view: strawberry.Private[service.HealthView]
    customer_id: strawberry.ID
    score: float = strawberry.field(description="0-100, an active override included.")
    level: HealthLevel
    computed_score: float = strawberry.field(description="The score the model computed.")
    computed_level: HealthLevel
    confidence: float = strawberry.field(
        description="Percent (0-100) of the model's weight that had data for this customer."
    )
    components: list[HealthComponent]
    risk_factors: list[HealthRiskFactor] = strawberry.field(
        description="In words, with evidence, the costliest first."
    )
    override: HealthOverride | None
    computed_at: datetime
    changed_at: datetime = strawberry.field(description="When it last moved notably.")
    model_version: int = strawberry.field(description="0: the built-in default model.")
    segment: str

    @strawberry.field(description="Score now minus the daily snapshot of 7 days ago.")
    async def delta_7d(self, info: Info) -> float | None:
        return await info.context.loaders.health_delta_7d.load(self.view.customer_id)

    @strawberry.field(description="Score now minus the daily snapshot of 30 days ago.")
    async def delta_30d(self, info: Info) -> float | None:
        return await info.context.loaders.health_delta_30d.load(self.view.customer_id)

    @strawberry.field(description="What changed since the last snapshot `days` or more old.")
    async def changes_since(self, info: Info, days: int = 7) -> HealthMovement:
        delta, moved = await service.changes_since(info.context.viewer, self.view, days)
        return HealthMovement(delta=delta, changes=[HealthChange.of(c) for c in moved])

    @classmethod
    def of(cls, v: service.HealthView) -> HealthScore:
        return cls(
            view=v,
            customer_id=strawberry.ID(str(v.customer_id)),
            score=v.score,
            level=HealthLevel(v.level),
            computed_score=v.computed_score,
            computed_level=HealthLevel(v.computed_level),
            confidence=v.confidence,
            components=[HealthComponent.of(c) for c in v.components],
            risk_factors=[HealthRiskFactor.of(r) for r in v.risks],
            override=HealthOverride.of(v.override) if v.override else None,
            computed_at=v.computed_at,
            changed_at=v.changed_at,
            model_version=v.model_version,
            segment=v.segment,
        )


@strawberry.type(description="A score at a point in time, and why it moved since the last one.")
class HealthSnapshot:
    taken_at: datetime
    kind: SnapshotKind
    score: float
    level: HealthLevel
    confidence: float
    model_version: int
    changes: list[HealthChange]

    @classmethod
    def of(cls, s: service.SnapshotView) -> HealthSnapshot:
        return cls(
            taken_at=s.taken_at,
            kind=s.kind,
            score=s.score,
            level=HealthLevel(s.level),
            confidence=s.confidence,
            model_version=s.model_version,
            changes=[HealthChange.of(c) for c in s.changes],
        )


@strawberry.type
class HealthLevelCount:
    level: HealthLevel
    count: int


@strawberry.type(description="Scores from `low` (included) to `high`.")
class HealthBucket:
    low: float
    high: float
    count: int


@strawberry.type(description="Counts per level and a histogram, overall or for one segment.")
class HealthScoreDistribution:
    segment: str | None
    total: int
    average: float | None
    levels: list[HealthLevelCount]
    histogram: list[HealthBucket]

    @classmethod
    def of(cls, d: service.Distribution) -> HealthScoreDistribution:
        return cls(
            segment=d.segment,
            total=d.total,
            average=d.average,
            levels=[
                HealthLevelCount(level=lv, count=d.levels.get(lv.value, 0)) for lv in HealthLevel
            ],
            histogram=[HealthBucket(low=b.low, high=b.high, count=b.count) for b in d.histogram],
        )


@strawberry.type(description="The organization's distribution, with one per segment.")
class HealthDistributionReport:
    overall: HealthScoreDistribution
    segments: list[HealthScoreDistribution]


@strawberry.type(description="A recompute over all or some customers.")
class HealthJob:
    id: strawberry.ID
    status: JobStatus
    total: int
    done: int
    changed: int = strawberry.field(description="Customers whose score moved notably.")
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @strawberry.field(description="Percent done, 0-100.")
    def progress(self) -> float:
        if self.status is JobStatus.SUCCEEDED:
            return 100.0
        return round(100.0 * min(self.done, self.total) / self.total, 1) if self.total else 0.0

    @classmethod
    def of(cls, row: JobRow) -> HealthJob:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=row.status,
            total=row.total,
            done=row.done,
            changed=row.changed,
            error=row.error,
            created_by=row.created_by,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


@strawberry.type(description="One installed version of the organization's health model.")
class HealthModelVersion:
    id: strawberry.ID
    version: int
    name: str
    definition: JSON
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: ModelRow) -> HealthModelVersion:
        return cls(
            id=strawberry.ID(str(row.id)),
            version=row.version,
            name=row.name,
            definition=cast(JSON, row.definition),
            created_by=row.created_by,
            created_at=row.created_at,
        )


@strawberry.type(description="A notable move of a score: a level change or 5+ points.")
class HealthEvent:
    id: strawberry.ID
    sequence: int
    type: str = strawberry.field(description="`health.changed` or `health.level_changed`.")
    customer_id: strawberry.ID
    occurred_at: datetime
    score: float
    previous_score: float
    delta: float
    level: HealthLevel
    previous_level: HealthLevel
    top_reason: str | None

    @classmethod
    def of(cls, e: Published) -> HealthEvent:
        p: dict[str, Any] = e.payload
        return cls(
            id=strawberry.ID(str(e.id)),
            sequence=e.sequence,
            type=e.type,
            customer_id=strawberry.ID(str(e.customer_id)),
            occurred_at=e.created_at,
            score=float(p["score"]),
            previous_score=float(p["previousScore"]),
            delta=float(p["delta"]),
            level=HealthLevel(p["level"]),
            previous_level=HealthLevel(p["previousLevel"]),
            top_reason=p.get("topReason"),
        )
