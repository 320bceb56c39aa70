"""Set-based recompute: facts for thousands of customers per statement, scores written back
in one statement per batch. The SQL reads the daily usage rollups and the workflow tables;
the pure formulas of `rules` turn each row into a score."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.events import outbox
from app.health import batch_sql as bs
from app.health import explain
from app.health.batch_sql import FACTS_ARGS, PARAMS, Batch, backfill_sql, params_of, upsert_sql
from app.health.definitions import HealthModelDef
from app.health.rules import Facts, Norm, Part, stored_norm_of
from app.health.versions import current_model, org_of

BATCH = 5000

_NORM = """
SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY e) FILTER (WHERE e > 0), 0) AS events,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d) FILTER (WHERE e > 0), 0) AS days,
       count(*) FILTER (WHERE e > 0) AS active,
       coalesce(bool_or(s), false) AS support
FROM (SELECT id FROM customer WHERE organization_id = $1 ORDER BY id LIMIT $6) c
CROSS JOIN LATERAL (
    SELECT sum(count) FILTER (WHERE name <> ALL($3)) AS e,
           count(DISTINCT day) FILTER (WHERE name <> ALL($3)) AS d,
           bool_or(name = ANY($4)) AS s
    FROM usage_daily
    WHERE organization_id = $1 AND customer_id = c.id AND day >= $2 AND day <= $5
) per_customer
"""
NORM_SAMPLE = 20_000
"""Customers the norm is measured on: all of a smaller organization; of a larger one, those
with the lowest ids (ids are random, so a uniform sample), read by index per customer
instead of every customer's rollups."""


@dataclass(frozen=True)
class Spec:
    """The windows and event names the facts query needs, from the model's shared part."""

    special: list[str]
    features: list[str]
    tickets: list[str]
    escalations: list[str]
    positive: list[str]
    neutral: list[str]
    negative: list[str]
    failures: list[str]
    downgrades: list[str]
    billing: list[str]
    windows: dict[str, int]

    @classmethod
    def of(cls, model: HealthModelDef) -> Spec:
        c = model.components
        names = model.event_names()
        windows = {key: getattr(comp, "window_days", 30) for key, comp in c.present()}
        return cls(
            special=[n for group in names.values() for n in group],
            features=list(c.adoption.features) if c.adoption else [],
            tickets=list(c.support.events) if c.support else [],
            escalations=list(c.support.escalation_events) if c.support else [],
            positive=list(c.sentiment.positive) if c.sentiment else [],
            neutral=list(c.sentiment.neutral) if c.sentiment else [],
            negative=list(c.sentiment.negative) if c.sentiment else [],
            failures=list(c.billing.failure_events) if c.billing else [],
            downgrades=list(c.billing.downgrade_events) if c.billing else [],
            billing=names.get("billing", []),
            windows=windows,
        )

    def classes(self) -> tuple[list[str], list[int]]:
        """Every event name with a meaning and its class mask (bits of `batch_sql`), so the
        SQL classifies each rollup row once."""
        masks: dict[str, int] = {}
        for bit, names in (
            (bs.SPECIAL, self.special), (bs.FEATURE, self.features), (bs.TICKET, self.tickets),
            (bs.ESCALATION, self.escalations), (bs.POSITIVE, self.positive),
            (bs.NEUTRAL, self.neutral), (bs.NEGATIVE, self.negative),
            (bs.FAILURE, self.failures), (bs.DOWNGRADE, self.downgrades),
            (bs.BILLING, self.billing),
        ):  # fmt: skip
            for name in names:
                masks[name] = masks.get(name, 0) | bit
        for number, name in enumerate(dict.fromkeys(self.features), start=1):
            masks[name] |= number << bs.FEATURE_SHIFT
        return list(masks), list(masks.values())

    def since(self, today: date, key: str) -> date:
        return today - timedelta(days=self.windows.get(key, 30) - 1)

    def lookback(self, today: date) -> date:
        return today - timedelta(days=max([90, *self.windows.values()]) - 1)


@dataclass
class Run:
    """One recompute of one organization: its model, norm and clock."""

    organization_id: uuid.UUID
    model: HealthModelDef
    version: int
    norm: Norm
    now: datetime
    spec: Spec
    actor: str = "system:health"
    backfill: bool = False
    """Write the scores as the daily snapshot of `now`'s day instead of the current score."""
    _segments: dict[str, HealthModelDef] = field(default_factory=dict)

    def model_for(self, segment: str) -> HealthModelDef:
        found = self._segments.get(segment)
        if found is None:
            found = self._segments[segment] = self.model.for_segment(segment)
        return found


@dataclass
class BatchResult:
    """What one batch did."""

    scored: int = 0
    written: int = 0
    """Scores inserted or rewritten."""
    last_id: uuid.UUID | None = None
    changed: list[uuid.UUID] = field(default_factory=list)
    level_changed: list[uuid.UUID] = field(default_factory=list)


async def measure_norm(organization_id: uuid.UUID, spec: Spec, today: date) -> Norm:
    """The organization's median customer over the engagement window (of a sample of
    `NORM_SAMPLE` customers in a larger organization)."""
    conn = get_connection("default")
    rows = await conn.execute_query_dict(
        _NORM,
        [organization_id, spec.since(today, "engagement"), spec.special, spec.tickets, today,
         NORM_SAMPLE],
    )  # fmt: skip
    row = rows[0]
    return Norm(
        median_events=float(row["events"]),
        median_active_days=float(row["days"]),
        has_usage=int(row["active"]) > 0,
        tracks_support=bool(row["support"]),
    )


async def stored_norm(organization_id: uuid.UUID) -> tuple[Norm, datetime] | None:
    """The norm of the last full recompute, with when it was measured."""
    rows = await get_connection("default").execute_query_dict(
        "SELECT median_events, median_active_days, has_usage, tracks_support, computed_at "
        "FROM health_norm WHERE organization_id = $1",
        [organization_id],
    )
    if not rows:
        return None
    r = rows[0]
    norm = Norm(r["median_events"], r["median_active_days"], r["has_usage"], r["tracks_support"])
    return norm, r["computed_at"]


async def save_norm(organization_id: uuid.UUID, norm: Norm, now: datetime) -> None:
    """Keep the norm for the recomputes of single customers until the next full one."""
    await get_connection("default").execute_query(
        "INSERT INTO health_norm (id, organization_id, median_events, median_active_days, "
        "has_usage, tracks_support, computed_at) VALUES ($1, $1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (organization_id) DO UPDATE SET median_events = EXCLUDED.median_events, "
        "median_active_days = EXCLUDED.median_active_days, has_usage = EXCLUDED.has_usage, "
        "tracks_support = EXCLUDED.tracks_support, computed_at = EXCLUDED.computed_at",
        [
            organization_id,
            norm.median_events,
            norm.median_active_days,
            norm.has_usage,
            norm.tracks_support,
            now,
        ],
    )


async def prepare(
    organization_id: uuid.UUID, *, now: datetime, fresh_norm: bool, backfill: bool = False
) -> Run:
    """Load the organization's model and norm; `fresh_norm` measures it anew and keeps it
    (a `backfill` of a past day measures the norm of that day and keeps nothing)."""
    current = await current_model(org_of(organization_id))
    spec = Spec.of(current.model)
    stored = None if fresh_norm or backfill else await stored_norm(organization_id)
    if stored is None or stored[1] < now - timedelta(days=1):
        norm = await measure_norm(organization_id, spec, now.date())
        if not backfill:
            await save_norm(organization_id, norm, now)
    else:
        norm = stored[0]
    return Run(organization_id, current.model, current.version, norm, now, spec, backfill=backfill)


WHERE_FROM = FACTS_ARGS + 1 + 1 + len(PARAMS) + 5
"""The first parameter number free for a batch's own conditions (scope, ids, keyset)."""


def _facts_args(run: Run) -> list[Any]:
    sp, today = run.spec, run.now.date()
    names, masks = sp.classes()
    return [
        run.organization_id, run.now,
        sp.since(today, "engagement"), sp.since(today, "adoption"), sp.since(today, "support"),
        sp.since(today, "sentiment"), sp.since(today, "billing"),
        sp.lookback(today), today, names, masks,
    ]  # fmt: skip


def _events(run: Run, moved: list[list[Any]]) -> dict[uuid.UUID, list[tuple[str, dict[str, Any]]]]:
    """`health.changed` (and `health.level_changed`) for each notable move, with the top
    reason in words."""
    out: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
    for cid, segment, score, level, old_score, old_level, components, facts in moved:
        model = run.model_for(segment)
        parts = tuple(Part(str(k), v, float(w), float(c)) for k, v, w, c in components)
        found = explain.risks(model, parts, Facts.from_json(facts, as_of=run.now), run.norm)
        payload = {
            "customerId": str(cid),
            "score": round(score, 1),
            "previousScore": round(old_score, 1),
            "level": level,
            "previousLevel": old_level,
            "delta": round(score - old_score, 1),
            "topReason": found[0].message if found else None,
            "modelVersion": run.version,
        }
        events = [("health.changed", payload)]
        if level != old_level:
            events.append(("health.level_changed", payload))
        out[uuid.UUID(str(cid))] = events
    return out


async def score_batch(
    run: Run,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    after: uuid.UUID | None = None,
    where: str = "",
    params: Sequence[Any] = (),
    limit: int = BATCH,
    dense: bool = False,
) -> BatchResult:
    """Score one batch of customers (the given ids, or the next `limit` after `after`
    matching `where`, numbered from `WHERE_FROM`) in one statement that writes the scores
    and level-change snapshots; record the notable moves as events. `dense`: `where` skips
    no customer inside the batch's id range (see `Batch.keyset`). Runs inside the caller's
    transaction."""
    args: list[Any] = [
        *_facts_args(run),
        *params_of(run.model),
        run.norm.has_usage, run.norm.median_events, run.norm.tracks_support,
        run.norm.median_active_days, run.version,
        *params,
    ]  # fmt: skip
    if ids is not None:
        args.append(list(ids))
        batch = Batch.of_ids(ids=f"${len(args)}", where=where, limit=max(limit, len(ids)))
    else:
        if after is not None:
            args.append(after)
        batch = Batch.keyset(
            after=f"${len(args)}::uuid" if after is not None else None,
            where=where,
            limit=limit,
            dense=dense,
        )
    build = backfill_sql if run.backfill else upsert_sql
    sql = build(run.model, batch=batch, first_param=FACTS_ARGS + 1)
    conn = get_connection("default")
    # a short plan, the batch's rows kept in memory: compiling it (JIT) costs more than it saves
    await conn.execute_script("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
    row = (await conn.execute_query_dict(sql, args))[0]
    moved = row["moved"] if isinstance(row["moved"], list) else json.loads(row["moved"])
    result = BatchResult(
        scored=int(row["scored"]), written=int(row.get("written") or 0), last_id=row["last_id"]
    )
    for cid, _, _, level, _, old_level, _, _ in moved:
        result.changed.append(uuid.UUID(str(cid)))
        if level != old_level:
            result.level_changed.append(uuid.UUID(str(cid)))
    events = _events(run, moved)
    if events:
        org = run.organization_id
        await outbox.record_many(organization_id=org, events=events, actor=run.actor)
    return result


def norm_of(facts: dict[str, Any] | list[Any]) -> Norm:
    """The norm a stored score was computed against."""
    median_events, median_days = stored_norm_of(facts)
    return Norm(median_events, median_days, has_usage=bool(median_events), tracks_support=True)
