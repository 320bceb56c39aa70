"""Health use cases for the API: read a score with its explanation, history, distribution.

Callers open the transaction; every function here runs inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.errors import Forbidden, NotFound, ValidationFailed
from app.health import explain
from app.health.compute import norm_of
from app.health.definitions import HealthModelDef
from app.health.explain import Change, Risk
from app.health.models import HealthOverride, HealthScore, HealthSnapshot, SnapshotKind
from app.health.rules import Facts, Part
from app.health.versions import current_model, model_version
from app.kit.clock import utcnow
from app.kit.tenancy import Tenant, scoped

HISTOGRAM_BUCKETS = 10


@dataclass(frozen=True)
class ComponentView:
    """One component of a score, explained."""

    key: str
    value: float | None
    weight: float
    contribution: float
    explanation: str

    @property
    def label(self) -> str:
        return explain.LABELS.get(self.key, self.key)


@dataclass(frozen=True)
class HealthView:
    """A customer's current score, its parts in words, and how it moved."""

    customer_id: uuid.UUID
    score: float
    level: str
    computed_score: float
    computed_level: str
    confidence: float
    components: list[ComponentView]
    risks: list[Risk]
    override: HealthOverride | None
    computed_at: datetime
    changed_at: datetime
    model_version: int
    segment: str
    parts: tuple[Part, ...] = field(repr=False, default=())
    facts: Facts = field(repr=False, default_factory=Facts)


class Models:
    """Model versions read once per request (or job), resolved per segment."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._cache: dict[tuple[int, str], HealthModelDef] = {}

    async def get(self, version: int, segment: str) -> HealthModelDef:
        key = (version, segment)
        if key not in self._cache:
            base = await model_version(self.tenant, version)
            self._cache[key] = base.for_segment(segment)
        return self._cache[key]


def parts_of(components: Sequence[Sequence[Any]]) -> tuple[Part, ...]:
    """Stored [key, value, weight, contribution] lists as parts."""
    return tuple(Part(str(k), v, float(w), float(c)) for k, v, w, c in components)


async def view_of(
    row: HealthScore, models: Models, overrides: dict[uuid.UUID, HealthOverride], now: datetime
) -> HealthView:
    """A stored score with its explanation; an override past its expiry no longer shows."""
    model = await models.get(row.model_version, row.segment)
    facts = Facts.from_json(row.facts, as_of=now)
    norm = norm_of(row.facts)
    parts = parts_of(row.components)
    override = overrides.get(row.override_id) if row.override_id else None
    active = override is not None and override.ended_at is None and override.expires_at > now
    return HealthView(
        customer_id=row.customer_id,  # type: ignore[attr-defined]
        score=row.score if active else row.computed_score,
        level=row.level if active else row.computed_level,
        computed_score=row.computed_score,
        computed_level=row.computed_level,
        confidence=row.confidence,
        components=[
            ComponentView(
                p.key,
                p.value,
                p.weight,
                p.contribution,
                explain.line(model, p.key, facts, norm, p.value),
            )
            for p in parts
        ],
        risks=explain.risks(model, parts, facts, norm),
        override=override if active else None,
        computed_at=row.computed_at,
        changed_at=row.changed_at,
        model_version=row.model_version,
        segment=row.segment,
        parts=parts,
        facts=facts,
    )


async def views_for(
    tenant: Tenant, customer_ids: Sequence[uuid.UUID], *, models: Models | None = None
) -> dict[uuid.UUID, HealthView]:
    """Current scores of many customers of the tenant, explained (for loaders)."""
    rows = await scoped(HealthScore, tenant).filter(customer_id__in=list(customer_ids))
    override_ids = [r.override_id for r in rows if r.override_id]
    overrides = (
        {o.id: o for o in await scoped(HealthOverride, tenant).filter(id__in=override_ids)}
        if override_ids
        else {}
    )
    models = models or Models(tenant)
    now = utcnow()
    out = {}
    for row in rows:
        out[row.customer_id] = await view_of(row, models, overrides, now)  # type: ignore[attr-defined]
    return out


async def check_visible(viewer: Viewer, customer_id: uuid.UUID) -> None:
    """A CUSTOMER reads its own score only if the organization's model allows it."""
    if viewer.role is Role.CUSTOMER:
        current = await current_model(viewer)
        if not current.model.customer_visible:
            raise Forbidden("This organization does not show health scores to customers.")


async def health_score(viewer: Viewer, customer_id: str | None) -> HealthView | None:
    """A customer's score, explained; None until it is first computed."""
    cid = viewer.customer_scope(customer_id)
    await check_visible(viewer, cid)
    if not await scoped(Customer, viewer).filter(id=cid).exists():
        raise NotFound(f"No customer with id {cid}.", customer=str(cid))
    return (await views_for(viewer, [cid])).get(cid)


@dataclass(frozen=True)
class SnapshotView:
    """A score at a point in time, and why it moved since the one before."""

    taken_at: datetime
    kind: SnapshotKind
    score: float
    level: str
    confidence: float
    model_version: int
    changes: list[Change]


async def health_history(viewer: Viewer, customer_id: str | None, days: int) -> list[SnapshotView]:
    """Snapshots of the last `days` days, oldest first, each with why it changed."""
    if not 1 <= days <= 400:
        raise ValidationFailed("`days` must be between 1 and 400.", field="days")
    cid = viewer.customer_scope(customer_id)
    await check_visible(viewer, cid)
    if not await scoped(Customer, viewer).filter(id=cid).exists():
        raise NotFound(f"No customer with id {cid}.", customer=str(cid))
    since = utcnow() - timedelta(days=days)
    earlier = (
        await scoped(HealthSnapshot, viewer)
        .filter(customer_id=cid, taken_at__lt=since)
        .order_by("-taken_at")
        .first()
    )
    rows = (
        await scoped(HealthSnapshot, viewer)
        .filter(customer_id=cid, taken_at__gte=since)
        .order_by("taken_at", "id")
    )
    out: list[SnapshotView] = []
    prev = earlier
    for row in rows:
        moved = (
            explain.changes(
                parts_of(prev.components),
                parts_of(row.components),
                old_facts=Facts.from_json(prev.facts, as_of=prev.taken_at),
                new_facts=Facts.from_json(row.facts, as_of=row.taken_at),
            )
            if prev
            else []
        )
        out.append(
            SnapshotView(
                row.taken_at, row.kind, row.score, row.level, row.confidence,
                row.model_version, moved,
            )
        )  # fmt: skip
        prev = row
    return out


async def changes_since(
    tenant: Tenant, view: HealthView, days: int
) -> tuple[float | None, list[Change]]:
    """The score's move since the last snapshot at least `days` days old, and why."""
    before = (
        await scoped(HealthSnapshot, tenant)
        .filter(customer_id=view.customer_id, taken_at__lte=utcnow() - timedelta(days=days))
        .order_by("-taken_at")
        .first()
    )
    if before is None:
        return None, []
    moved = explain.changes(
        parts_of(before.components),
        view.parts,
        old_facts=Facts.from_json(before.facts, as_of=before.taken_at),
        new_facts=view.facts,
    )
    return round(view.score - before.score, 2), moved


async def deltas(
    tenant: Tenant, customer_ids: Sequence[uuid.UUID], days: int
) -> dict[uuid.UUID, float]:
    """Score now minus the score of the latest daily snapshot at least `days` days old."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT DISTINCT ON (s.customer_id) s.customer_id, h.score - s.score AS delta "
        "FROM health_snapshot s JOIN health_score h ON h.organization_id = s.organization_id "
        "AND h.customer_id = s.customer_id WHERE s.organization_id = $1 "
        "AND s.customer_id = ANY($2::uuid[]) AND s.kind = 'DAILY' AND s.day <= $3 "
        "ORDER BY s.customer_id, s.day DESC",
        [tenant.organization_id, list(customer_ids), (utcnow() - timedelta(days=days)).date()],
    )
    return {r["customer_id"]: round(float(r["delta"]), 2) for r in rows}


@dataclass(frozen=True)
class Bucket:
    low: float
    high: float
    count: int


@dataclass
class Distribution:
    """Counts per level and a histogram of scores, overall or for one segment."""

    segment: str | None
    total: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BUCKETS)
    score_sum: float = 0.0

    @property
    def average(self) -> float | None:
        return round(self.score_sum / self.total, 2) if self.total else None

    @property
    def histogram(self) -> list[Bucket]:
        width = 100 / HISTOGRAM_BUCKETS
        return [Bucket(i * width, (i + 1) * width, n) for i, n in enumerate(self.buckets)]


async def distribution(
    viewer: Viewer, *, user_type: str | None = None, acquisition_channel: str | None = None
) -> tuple[Distribution, list[Distribution]]:
    """The organization's scores by level and in ten buckets, overall and per segment, read
    from the summary the score triggers keep (a few rows whatever the number of customers)."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await summarized(
        viewer,
        user_type=user_type.lower() if user_type else None,
        channel=acquisition_channel.lower() if acquisition_channel else None,
    )


async def summarized(
    tenant: Tenant, *, user_type: str | None, channel: str | None
) -> tuple[Distribution, list[Distribution]]:
    """Distributions of the current scores of a segment and/or channel (all when None)."""
    conds: list[str] = ["organization_id = $1", "customers <> 0"]
    args: list[Any] = [tenant.organization_id]
    for column, value in (("segment", user_type), ("channel", channel)):
        if value is not None:
            args.append(value)
            conds.append(f"{column} = ${len(args)}")
    rows = await get_connection("default").execute_query_dict(
        "SELECT segment, level, bucket, sum(customers) AS n, sum(score_sum) AS total "
        f"FROM health_summary WHERE {' AND '.join(conds)} GROUP BY 1, 2, 3",
        args,
    )
    overall = Distribution(None)
    segments: dict[str, Distribution] = {}
    for row in rows:
        n, total = int(row["n"]), float(row["total"])
        seg = segments.setdefault(row["segment"], Distribution(row["segment"]))
        for d in (overall, seg):
            d.total += n
            d.score_sum += total
            d.levels[row["level"]] = d.levels.get(row["level"], 0) + n
            d.buckets[row["bucket"]] += n
    return overall, sorted(segments.values(), key=lambda d: (-d.total, d.segment or ""))
