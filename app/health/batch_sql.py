"""The score formulas of `rules` as one SQL statement per batch, so a recompute never brings
customers into Python: facts, component values, score, level and the upsert happen in
PostgreSQL, and only notable moves come back (to become events).

`rules` stays the specification (and explains scores at read time); a test checks that this
SQL gives the same values as `rules.compute` for generated facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.health.definitions import HealthModelDef

# Per-segment parameters, one row per segment plus '' for everyone else.
PARAMS = (
    "w_engagement", "w_adoption", "w_onboarding", "w_support", "w_sentiment", "w_billing",
    "inactive_days", "recency_share", "n_features", "expected_days", "stall_days",
    "tolerated", "penalty", "failure_penalty", "downgrade_penalty", "healthy", "at_risk",
    "notify_points",
)  # fmt: skip


def params_of(model: HealthModelDef) -> list[list[Any]]:
    """Columns (segment first) of the per-segment parameter table."""
    segments = ["", *model.segments]
    cols: list[list[Any]] = [segments, *([] for _ in PARAMS)]
    for seg in segments:
        m = model.for_segment(seg or None)
        c = m.components
        values = [
            c.engagement.weight if c.engagement else 0.0,
            c.adoption.weight if c.adoption else 0.0,
            c.onboarding.weight if c.onboarding else 0.0,
            c.support.weight if c.support else 0.0,
            c.sentiment.weight if c.sentiment else 0.0,
            c.billing.weight if c.billing else 0.0,
            c.engagement.inactive_days if c.engagement else 1,
            c.engagement.recency_share if c.engagement else 0.0,
            len(c.adoption.features) if c.adoption else 1,
            c.onboarding.expected_days if c.onboarding else 1,
            c.onboarding.stall_days if c.onboarding else 1,
            c.support.tolerated if c.support else 0,
            c.support.penalty if c.support else 0.0,
            c.billing.failure_penalty if c.billing else 0.0,
            c.billing.downgrade_penalty if c.billing else 0.0,
            m.levels.healthy,
            m.levels.at_risk,
            m.notify_points,
        ]
        for col, value in zip(cols[1:], values, strict=True):
            col.append(float(value))
    return cols


FACTS_ARGS = 11
"""Parameters of the facts: org, now, the windows' first days (engagement, adoption, support,
sentiment, billing), the lookback's first and last day, event names and their class masks."""

# Bits of an event name's class mask (`Spec.classes`); a feature's mask also carries its
# number in the model's list, plus one, from bit `FEATURE_SHIFT` on.
SPECIAL, FEATURE, TICKET, ESCALATION, POSITIVE, NEUTRAL, NEGATIVE, FAILURE, DOWNGRADE, BILLING = (
    1 << i for i in range(10)
)


FEATURE_SHIFT = 16


def _moment(column: str) -> str:
    """A stored fact that counts days up to now, stored as the moment it counts from (UTC, ISO
    8601): it stays the same from one day to the next, so a score that did not move is not
    rewritten only because the date did (`rules.Facts.from_json` counts the days again)."""
    return f"to_jsonb({column} AT TIME ZONE 'UTC')"


def _clamp(expr: str) -> str:
    return f"least(100.0, greatest(0.0, ({expr})::float8))"


# Component values over the `f` (facts) and `p` (parameters) columns; NULL: no data.
_VALUES = {
    "engagement": "CASE WHEN NOT {has_usage} AND f.dsa IS NULL THEN NULL ELSE "
    + _clamp(
        "(p.recency_share / 100.0) * CASE WHEN f.dsa IS NULL THEN 0.0 ELSE "
        + _clamp("100.0 * (1.0 - f.dsa::float8 / p.inactive_days)")
        + " END + (1.0 - p.recency_share / 100.0) * "
        + _clamp("100.0 * f.events / greatest({median}, 1.0)")
    )
    + " END",
    "adoption": "CASE WHEN NOT {has_usage} AND f.n_used = 0 THEN NULL ELSE "
    + _clamp("100.0 * f.n_used / p.n_features")
    + " END",
    "onboarding": "CASE WHEN f.progress IS NULL THEN NULL WHEN f.completed THEN 100.0 ELSE "
    + _clamp(
        "CASE WHEN f.progress >= least(1.0, f.dss::float8 / p.expected_days) THEN 100.0"
        " ELSE 100.0 * f.progress / least(1.0, f.dss::float8 / p.expected_days) END"
        " * CASE WHEN coalesce(f.stalled, 0) > p.stall_days THEN greatest(0.25, 1.0 - "
        "(coalesce(f.stalled, 0) - p.stall_days) / (3.0 * p.stall_days)) ELSE 1.0 END"
    )
    + " END",
    "support": "CASE WHEN NOT {tracks_support} AND f.tickets = 0 AND f.escalations = 0 "
    "THEN NULL ELSE "
    + _clamp(
        "100.0 - p.penalty * greatest(0, f.tickets - p.tolerated) - 2.0 * p.penalty * f.escalations"
    )
    + " END",
    "sentiment": "CASE WHEN f.positive + f.neutral + f.negative = 0 THEN NULL ELSE "
    + _clamp("100.0 * (f.positive + 0.5 * f.neutral) / (f.positive + f.neutral + f.negative)")
    + " END",
    "billing": "CASE WHEN f.billing = 0 AND f.failures = 0 AND f.downgrades = 0 THEN NULL ELSE "
    + _clamp("100.0 - p.failure_penalty * f.failures - p.downgrade_penalty * f.downgrades")
    + " END",
}

_FACTS_CTE = """
ids AS MATERIALIZED (
    SELECT c.id, c.user_type, c.acquisition_channel AS channel, c.signed_up_at
    FROM customer c {score_join}
    WHERE c.organization_id = $1 AND c.signed_up_at <= $2 AND {select} AND {where}
    ORDER BY c.id LIMIT {limit}
), tpl AS (
    SELECT t.id AS template_id, s ->> 'key' AS key, s ->> 'name' AS name
    FROM workflow_template t, jsonb_array_elements(t.definition -> 'stages') AS s
    WHERE t.organization_id = $1
), cust AS (
    -- one index lookup per customer and table (LIMIT 1 keeps each a lookup): the cost of a
    -- batch does not depend on how many customers the organization has
    SELECT c.*, w.status AS wf_status, w.last_activity_at, w.progress AS wf_progress,
           coalesce(tpl.name, st.name) AS stage,
           h.score AS old_score, h.level AS old_level, h.changed_at AS old_changed_at,
           h.stored, o.id AS o_id, o.score AS o_score, o.level AS o_level
    FROM ids c
    LEFT JOIN LATERAL (
        SELECT w.id, w.template_id, w.status, w.last_activity_at, w.progress,
               w.current_stage_key
        FROM workflow w WHERE w.organization_id = $1 AND w.customer_id = c.id LIMIT 1
    ) w ON true
    LEFT JOIN tpl ON tpl.template_id = w.template_id AND tpl.key = w.current_stage_key
    LEFT JOIN LATERAL (
        SELECT s.name FROM workflow_stage s
        WHERE w.current_stage_key IS NULL AND s.organization_id = $1
          AND s.workflow_id = w.id AND s.status <> 'COMPLETED'
        ORDER BY s.position LIMIT 1
    ) st ON w.id IS NOT NULL
    LEFT JOIN LATERAL (
        SELECT h.score, h.level, h.changed_at,
               ROW(h.score::float8, h.level::text, h.computed_score::float8,
                   h.computed_level::text, h.confidence::float8, h.components::jsonb,
                   h.facts::jsonb, h.segment::text, h.channel::text, h.model_version::int,
                   h.override_id::uuid) AS stored
        FROM health_score h
        WHERE h.organization_id = $1 AND h.customer_id = c.id LIMIT 1
    ) h ON true
    LEFT JOIN LATERAL (
        SELECT o.id, o.score, o.level FROM health_override o
        WHERE o.organization_id = $1 AND o.customer_id = c.id AND o.ended_at IS NULL
          AND o.expires_at > $2
        ORDER BY o.created_at DESC LIMIT 1
    ) o ON true
), usage AS (
    SELECT customer_id,
      coalesce(sum(count) FILTER (WHERE day >= $3 AND m & 1 = 0), 0) AS events,
      {active_days} AS active_days,
      max(last_at) FILTER (WHERE day >= $3 AND m & 1 = 0) AS last_active,
      ARRAY[{feature_words}] AS fmask, {n_used} AS n_used,
      coalesce(sum(count) FILTER (WHERE day >= $5 AND m & 4 <> 0), 0) AS tickets,
      coalesce(sum(count) FILTER (WHERE day >= $5 AND m & 8 <> 0), 0) AS escalations,
      coalesce(sum(count) FILTER (WHERE day >= $6 AND m & 16 <> 0), 0) AS positive,
      coalesce(sum(count) FILTER (WHERE day >= $6 AND m & 32 <> 0), 0) AS neutral,
      coalesce(sum(count) FILTER (WHERE day >= $6 AND m & 64 <> 0), 0) AS negative,
      coalesce(sum(count) FILTER (WHERE day >= $7 AND m & 128 <> 0), 0) AS failures,
      coalesce(sum(count) FILTER (WHERE day >= $7 AND m & 256 <> 0), 0) AS downgrades,
      coalesce(sum(count) FILTER (WHERE day >= $7 AND m & 512 <> 0), 0) AS billing
    FROM (
        -- each row's classes once, found in a hash of the event names (a search of the
        -- array per row cost twice the reading of the row); OFFSET 0 keeps the subquery from
        -- being inlined
        SELECT r.customer_id, r.day, r.count, r.last_at, coalesce(k.m, 0) AS m,
               $9::date - r.day AS ago
        FROM (
            -- every row of the engagement window, and before it (the lookback) only the rows
            -- of event names with a class: the ordinary events of those days (most of them)
            -- count only for the last activity, which is found from them only for a customer
            -- with no ordinary event in the window (`f`)
            SELECT customer_id, day, name, count, last_at FROM usage_daily
            WHERE organization_id = $1 AND {bound_u} AND day >= $3 AND day <= $9
            UNION ALL
            SELECT customer_id, day, name, count, last_at FROM usage_daily
            WHERE organization_id = $1 AND {bound_u} AND day >= $8 AND day < $3
              AND name = ANY($10::text[])
        ) r LEFT JOIN unnest($10::text[], $11::int8[]) AS k(n, m) ON k.n = r.name::text
        OFFSET 0
    ) classed
    GROUP BY customer_id
), feature_sets AS (
    -- the names of the features used, once per distinct set (a few dozen in a batch) instead
    -- of once per customer
    SELECT s.fmask, ARRAY(
        SELECT t.n FROM unnest($10::text[], $11::int8[]) AS t(n, m)
        WHERE t.m >> 16 > 0
          AND (s.fmask[1 + ((t.m >> 16) - 1) / 63] >> (((t.m >> 16) - 1) % 63)::int) & 1 = 1
        ORDER BY t.n
    ) AS features
    FROM (SELECT DISTINCT fmask FROM usage WHERE n_used > 0) s
), f AS (
    SELECT cust.*, coalesce(u.events, 0) AS events, coalesce(u.active_days, 0) AS active_days,
           CASE WHEN la.last_active IS NULL THEN NULL ELSE greatest(0,
               floor(extract(epoch FROM ($2 - la.last_active)) / 86400))::int END AS dsa,
           coalesce(fs.features, ARRAY[]::text[]) AS features,
           coalesce(u.n_used, 0) AS n_used,
           coalesce(u.tickets, 0) AS tickets, coalesce(u.escalations, 0) AS escalations,
           coalesce(u.positive, 0) AS positive, coalesce(u.neutral, 0) AS neutral,
           coalesce(u.negative, 0) AS negative, coalesce(u.failures, 0) AS failures,
           coalesce(u.downgrades, 0) AS downgrades, coalesce(u.billing, 0) AS billing,
           greatest(0, floor(extract(epoch FROM ($2 - cust.signed_up_at)) / 86400))::int
               AS dss,
           cust.wf_status = 'COMPLETED' AS completed,
           CASE WHEN cust.wf_status IS NULL THEN NULL
                WHEN cust.wf_status = 'COMPLETED' THEN 1.0
                ELSE cust.wf_progress / 100.0 END AS progress,
           CASE WHEN cust.wf_status = 'ACTIVE' AND cust.last_activity_at IS NOT NULL
                THEN greatest(0, floor(extract(epoch FROM ($2 - cust.last_activity_at))
                    / 86400))::int END AS stalled,
           la.last_active,
           CASE WHEN cust.wf_status = 'ACTIVE' THEN cust.last_activity_at END AS stalled_since
    FROM cust LEFT JOIN usage u ON u.customer_id = cust.id
    LEFT JOIN feature_sets fs ON fs.fmask = u.fmask
    CROSS JOIN LATERAL (
        -- a rollup's last moment is on its (UTC) day, so the last ordinary event inside the
        -- engagement window is the last of the lookback; without one, the customer's
        -- ordinary rollups before the window are read (by index, for this customer only)
        SELECT coalesce(u.last_active, (
            SELECT max(d.last_at) FROM usage_daily d
            WHERE d.organization_id = $1 AND d.customer_id = cust.id
              AND d.day >= $8 AND d.day < $3
              AND d.name::text <> ALL(ARRAY(
                  SELECT k.n FROM unnest($10::text[], $11::int8[]) AS k(n, m) WHERE k.m & 1 <> 0))
        )) AS last_active
        OFFSET 0
    ) la
), p AS (
    SELECT * FROM unnest({param_arrays}) AS p(segment, {param_names})
)"""


@dataclass(frozen=True)
class Batch:
    """Which customers one statement scores: `select` (over `customer c`) picks them, `bound`
    (with `{col}` for a customer id column) bounds every table read to their ids, so each
    read is an index range or lookup whatever the organization's size."""

    select: str
    bound: str
    where: str = ""
    limit: int = 5000

    @classmethod
    def keyset(cls, *, after: str | None, where: str, limit: int, dense: bool = False) -> Batch:
        """The next `limit` customers after the id `after` (a parameter) matching `where`.
        `dense`: `where` leaves out no customer between the batch's first and last id (a
        sweep of every customer), so the rollups are read as one index range; otherwise
        also by the batch's ids."""
        lo = f"{{col}} > {after}" if after else "true"
        # both ends of the range from the batch's own ids: with one end only (the first
        # batch), the planner takes a third of the table for it and scans all of it
        only = "" if dense else " AND {col} IN (SELECT id FROM ids)"
        return cls(
            select=lo.format(col="c.id"),
            bound="{col} >= (SELECT id FROM ids ORDER BY id LIMIT 1)"
            f" AND {{col}} <= (SELECT id FROM ids ORDER BY id DESC LIMIT 1){only}",
            where=where,
            limit=limit,
        )

    @classmethod
    def of_ids(cls, *, ids: str, where: str, limit: int) -> Batch:
        """The customers whose ids are in the array parameter `ids` (and match `where`)."""
        cond = f"{{col}} = ANY({ids}::uuid[])"
        return cls(select=cond.format(col="c.id"), bound=cond, where=where, limit=limit)

    def fill(self, template: str, **more: str) -> str:
        where = self.where or "true"
        return template.format(
            select=self.select,
            where=where,
            limit=int(self.limit),
            score_join=(
                "LEFT JOIN health_score h ON h.organization_id = c.organization_id "
                "AND h.customer_id = c.id"
                if "h." in where
                else ""
            ),
            bound_u=self.bound.format(col="customer_id"),
            **more,
        )


def scored_sql(model: HealthModelDef, *, batch: Batch, first_param: int) -> str:
    """The CTEs `cust`, `usage`, `f`, `p`, `v` (component values) and `s` (score, level,
    contributions, effective values, notable move) for one batch. Parameters: $1 org,
    $2 now, $3..$11 the facts' windows and event classes (`FACTS_ARGS`), then the parameter
    arrays from
    `first_param` (segments, then PARAMS), then has_usage, median events, tracks_support,
    median active days and the model version."""
    n = first_param
    arrays = [f"${n}::text[]"] + [f"${n + 1 + i}::float8[]" for i in range(len(PARAMS))]
    after = n + 1 + len(PARAMS)
    has_usage, median, tracks = f"${after}::bool", f"${after + 1}::float8", f"${after + 2}::bool"
    keys = [k for k, _ in model.components.present()]
    c = model.components
    engagement_days = c.engagement.window_days if c.engagement else 1
    n_features = len(c.adoption.features) if c.adoption else 1
    values = ",\n       ".join(
        f"({_VALUES[k].format(has_usage=has_usage, median=median, tracks_support=tracks)}) AS v_{k}"
        for k in keys
    )
    total = " + ".join(f"w_{k}" for k in keys)
    with_data = " + ".join(f"CASE WHEN v_{k} IS NULL THEN 0 ELSE w_{k} END" for k in keys)
    contributions = ",\n       ".join(
        f"CASE WHEN wd > 0 AND v_{k} IS NOT NULL THEN v_{k} * w_{k} / wd ELSE 0.0 END AS c_{k}"
        for k in keys
    )
    components = ", ".join(f"jsonb_build_array('{k}', v_{k}, w_{k}, c_{k})" for k in keys)
    # distinct active days and features as bits of 63-bit words: DISTINCT aggregates would
    # sort every customer's rows once more
    day_words = [
        f"bit_or(CASE WHEN day >= $3 AND m & 1 = 0 AND ago / 63 = {i} "
        f"THEN 1::int8 << (ago % 63) ELSE 0 END)"
        for i in range(-(-engagement_days // 63))
    ]
    feature_words = [
        f"bit_or(CASE WHEN day >= $4 AND m >> 16 > 0 AND ((m >> 16) - 1) / 63 = {i} "
        f"THEN 1::int8 << (((m >> 16) - 1) % 63)::int ELSE 0 END)"
        for i in range(max(1, -(-n_features // 63)))
    ]
    cte = batch.fill(
        _FACTS_CTE,
        active_days=" + ".join(f"bit_count(({w})::bit(64))" for w in day_words),
        feature_words=", ".join(feature_words),
        n_used=" + ".join(f"bit_count(({w})::bit(64))" for w in feature_words),
        param_arrays=", ".join(arrays),
        param_names=", ".join(PARAMS),
    )
    facts = ", ".join(
        [
            "events", "active_days", _moment("last_active"), "to_jsonb(features)", "tickets",
            "escalations",
            "positive", "neutral", "negative", "failures", "downgrades", "billing", "progress",
            "completed", _moment("signed_up_at"), "CASE WHEN completed THEN NULL ELSE stage END",
            _moment("stalled_since"),
            median, f"${after + 3}::float8",
        ]
    )  # fmt: skip
    weights = ", ".join(f"p.w_{k}" for k in keys)
    score = " + ".join(f"c_{k}" for k in keys)
    # Few, narrow steps: each MATERIALIZED step is computed once per row and kept in memory.
    return f"""WITH {cte},
v AS (
    -- one reference, OFFSET 0: evaluated once per row without being stored
    SELECT f.id, f.user_type, f.channel, f.old_score, f.old_level, f.old_changed_at, f.stored,
           f.o_id, f.o_score, f.o_level, f.events, f.active_days, f.dsa, f.features,
           f.tickets, f.escalations, f.positive, f.neutral, f.negative, f.failures,
           f.downgrades, f.billing, f.progress, f.completed, f.dss, f.stage, f.stalled,
           f.last_active, f.signed_up_at, f.stalled_since,
           p.healthy, p.at_risk, p.notify_points, {weights},
           {values}
    FROM f JOIN p ON p.segment = CASE WHEN f.user_type = ANY(${n}::text[])
                                      AND f.user_type <> '' THEN f.user_type ELSE '' END
    OFFSET 0
), m AS MATERIALIZED (
    -- each step a subquery of one row per customer (OFFSET 0: evaluated once, not inlined into
    -- the next), and only the columns the writes read are kept
    SELECT v.id, v.user_type, v.channel, v.old_score, v.old_level, v.old_changed_at, v.stored,
           v.o_id, s.cscore, s.confidence, s.components, s.facts, l.clevel, l.escore, e.elevel,
           (v.old_score IS NOT NULL AND v.old_level IS NOT NULL AND (v.old_level <> e.elevel
            OR abs(CASE WHEN v.o_id IS NULL THEN s.cscore ELSE l.escore END - v.old_score)
               >= v.notify_points)) AS moved
    FROM v
    CROSS JOIN LATERAL (SELECT ({total}) AS wt, ({with_data}) AS wd OFFSET 0) w
    CROSS JOIN LATERAL (SELECT {contributions} OFFSET 0) c
    CROSS JOIN LATERAL (
        SELECT CASE WHEN wd > 0 THEN least(100.0, greatest(0.0, {score})) ELSE 50.0 END
                   AS cscore,
               CASE WHEN wt > 0 THEN 100.0 * wd / wt ELSE 0.0 END AS confidence,
               jsonb_build_array({components}) AS components,
               -- the facts in the order of `rules.FACT_FIELDS`, then the norm
               jsonb_build_array({facts}) AS facts
        OFFSET 0
    ) s
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.cscore >= v.healthy THEN 'HEALTHY'
                    WHEN s.cscore >= v.at_risk THEN 'AT_RISK' ELSE 'CRITICAL' END AS clevel,
               coalesce(v.o_score, s.cscore) AS escore
        OFFSET 0
    ) l
    CROSS JOIN LATERAL (
        SELECT CASE WHEN v.o_id IS NULL THEN l.clevel
                    ELSE coalesce(v.o_level, CASE WHEN l.escore >= v.healthy THEN 'HEALTHY'
                        WHEN l.escore >= v.at_risk THEN 'AT_RISK' ELSE 'CRITICAL' END) END
                   AS elevel
        OFFSET 0
    ) e
)"""


_COLUMNS = """id, organization_id, customer_id, score, level, computed_score, computed_level,
    confidence, components, facts, segment, channel, model_version, override_id, computed_at,
    changed_at"""
_SNAPSHOT_COLUMNS = """organization_id, customer_id, day, kind, taken_at, score, level,
    confidence, components, facts, model_version"""


def upsert_sql(model: HealthModelDef, *, batch: Batch, first_param: int) -> str:
    """Score one batch and write it: current scores, level-change snapshots; returns one row
    (scored, last_id, moved: the notable moves as JSON)."""
    version = f"${first_param + 1 + len(PARAMS) + 4}::int"
    return (
        scored_sql(model, batch=batch, first_param=first_param)
        + f""", rewritten AS (
    UPDATE health_score h SET
        score = m.escore, level = m.elevel, computed_score = m.cscore,
        computed_level = m.clevel, confidence = m.confidence, components = m.components,
        facts = m.facts, segment = m.user_type, channel = m.channel,
        model_version = {version}, override_id = m.o_id, computed_at = $2,
        changed_at = CASE WHEN m.moved OR m.old_changed_at IS NULL THEN $2
                          ELSE m.old_changed_at END
    FROM m
    -- a score whose every stored value stays the same is left alone (and its computed_at
    -- says when these values were first computed); a stored one is updated in place, without
    -- the speculative insertion and row lock of an upsert
    WHERE h.organization_id = $1 AND h.customer_id = m.id AND m.old_score IS NOT NULL
      AND m.stored IS DISTINCT FROM ROW(m.escore::float8, m.elevel::text, m.cscore::float8,
          m.clevel::text, m.confidence::float8, m.components, m.facts, m.user_type::text,
          m.channel::text, {version}, m.o_id::uuid)
    RETURNING 1
), up AS (
    INSERT INTO health_score ({_COLUMNS})
    SELECT id, $1, id, escore, elevel, cscore, clevel, confidence, components, facts,
           user_type, channel, {version}, o_id, $2,
           CASE WHEN moved OR old_changed_at IS NULL THEN $2 ELSE old_changed_at END
    FROM m
    WHERE old_score IS NULL
    ON CONFLICT (organization_id, customer_id) DO UPDATE SET
        score = EXCLUDED.score, level = EXCLUDED.level,
        computed_score = EXCLUDED.computed_score, computed_level = EXCLUDED.computed_level,
        confidence = EXCLUDED.confidence, components = EXCLUDED.components,
        facts = EXCLUDED.facts, segment = EXCLUDED.segment, channel = EXCLUDED.channel,
        model_version = EXCLUDED.model_version, override_id = EXCLUDED.override_id,
        computed_at = EXCLUDED.computed_at, changed_at = EXCLUDED.changed_at
    RETURNING 1
), snap AS (
    INSERT INTO health_snapshot ({_SNAPSHOT_COLUMNS})
    SELECT $1, id, $2::date, 'LEVEL_CHANGE', $2, escore, elevel, confidence, components,
           facts, {version}
    FROM m WHERE moved AND elevel <> old_level
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM ids) AS scored,
       (SELECT count(*) FROM up) + (SELECT count(*) FROM rewritten) AS written,
       (SELECT count(*) FROM snap) AS snapshots,
       (SELECT id FROM ids ORDER BY id DESC LIMIT 1) AS last_id,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(id, user_type, escore, elevel, old_score,
               old_level, components, facts)), '[]'::jsonb) FROM m WHERE moved) AS moved"""
    )


def backfill_sql(model: HealthModelDef, *, batch: Batch, first_param: int) -> str:
    """Score one batch as the daily snapshot of `now`'s day (no current score, no events)."""
    version = f"${first_param + 1 + len(PARAMS) + 4}::int"
    return (
        scored_sql(model, batch=batch, first_param=first_param)
        + f""", snap AS (
    INSERT INTO health_snapshot ({_SNAPSHOT_COLUMNS})
    SELECT $1, id, $2::date, 'DAILY', $2, escore, elevel, confidence, components, facts,
           {version}
    FROM m
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM ids) AS scored, (SELECT count(*) FROM snap) AS snapshots,
       (SELECT id FROM ids ORDER BY id DESC LIMIT 1) AS last_id, '[]'::jsonb AS moved"""
    )
