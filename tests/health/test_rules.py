"""Score formulas, without a database: sums, bounds, re-weighting, direction, words."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from app.health import explain, rules
from app.health.definitions import bundled_default
from app.health.rules import Facts, HealthLevel, Norm

MODEL = bundled_default()
FEATURES = MODEL.components.adoption.features if MODEL.components.adoption else []

counts = st.integers(min_value=0, max_value=500)
small = st.integers(min_value=0, max_value=20)
facts_st = st.builds(
    Facts,
    events=counts,
    active_days=st.integers(min_value=0, max_value=30),
    days_since_active=st.none() | st.integers(min_value=0, max_value=120),
    features_used=st.lists(st.sampled_from(FEATURES), unique=True).map(tuple),
    tickets=small,
    escalations=small,
    positive=small,
    neutral=small,
    negative=small,
    payment_failures=small,
    downgrades=small,
    billing_events=small,
    progress=st.none() | st.floats(min_value=0, max_value=1),
    completed=st.booleans(),
    days_since_signup=st.integers(min_value=0, max_value=400),
    stage=st.none() | st.sampled_from(["Welcome", "Setup"]),
    stalled_days=st.none() | st.integers(min_value=0, max_value=120),
)
norm_st = st.builds(
    Norm,
    median_events=st.floats(min_value=0, max_value=1000),
    median_active_days=st.floats(min_value=0, max_value=30),
    has_usage=st.booleans(),
    tracks_support=st.booleans(),
)
segments = st.sampled_from([None, "enterprise", "startup", "smb"])


@settings(max_examples=400)
@given(facts_st, norm_st, segments)
def test_contributions_sum_to_the_score_within_bounds(f: Facts, n: Norm, seg: str | None) -> None:
    model = MODEL.for_segment(seg)
    s = rules.compute(model, f, n)
    assert 0 <= s.score <= 100
    assert 0 <= s.confidence <= 100
    if s.confidence > 0:
        assert math.isclose(sum(p.contribution for p in s.parts), s.score, abs_tol=1e-9)
    else:
        assert s.score == rules.NEUTRAL and all(p.contribution == 0 for p in s.parts)
    for p in s.parts:
        assert p.value is None or 0 <= p.value <= 100
        assert p.value is not None or p.contribution == 0
    assert s.level is rules.level_of(model, s.score)


@given(facts_st, norm_st)
def test_a_component_without_data_is_left_out_and_the_rest_reweighted(f: Facts, n: Norm) -> None:
    with_sentiment = dataclasses.replace(f, positive=3, neutral=1, negative=1)
    without = dataclasses.replace(f, positive=0, neutral=0, negative=0)
    a = rules.compute(MODEL, with_sentiment, n)
    b = rules.compute(MODEL, without, n)
    assert b.confidence < a.confidence
    others_a = {p.key: p for p in a.parts if p.key != "sentiment" and p.value is not None}
    others_b = {p.key: p for p in b.parts if p.key != "sentiment" and p.value is not None}
    assert others_a.keys() == others_b.keys()
    if others_b:
        # the remaining components keep their values and their relative shares
        total_a = sum(p.weight for p in others_a.values()) + MODEL.components.sentiment.weight  # type: ignore[union-attr]
        total_b = sum(p.weight for p in others_b.values())
        for key, pb in others_b.items():
            pa = others_a[key]
            assert pa.value == pb.value
            assert math.isclose(pb.contribution, pa.contribution * total_a / total_b, abs_tol=1e-9)
        assert math.isclose(
            b.score,
            sum(p.value * p.weight for p in others_b.values()) / total_b,
            abs_tol=1e-9,  # type: ignore[operator]
        )


def _score(f: Facts, n: Norm) -> float:
    return rules.compute(MODEL, f, n).score


def _moves(f: Facts, changed: Facts, n: Norm) -> float | None:
    """Score change, when the same components have data before and after (data appearing
    re-weights the model, which is a different property)."""
    a, b = rules.compute(MODEL, f, n), rules.compute(MODEL, changed, n)
    if {p.key for p in a.parts if p.has_data} != {p.key for p in b.parts if p.has_data}:
        return None
    return b.score - a.score


def _better(f: Facts, more: int) -> list[Facts]:
    out = [
        dataclasses.replace(f, events=f.events + more),
        dataclasses.replace(f, positive=f.positive + more),
    ]
    if f.progress is not None:
        out.append(dataclasses.replace(f, progress=min(1.0, f.progress + more / 50)))
    if f.days_since_active is not None:
        out.append(dataclasses.replace(f, days_since_active=max(0, f.days_since_active - more)))
    unused = [x for x in FEATURES if x not in f.features_used]
    if unused:
        out.append(dataclasses.replace(f, features_used=(*f.features_used, unused[0])))
    return out


def _worse(f: Facts, more: int) -> list[Facts]:
    names = ("tickets", "escalations", "negative", "payment_failures", "downgrades")
    out = [dataclasses.replace(f, **{name: getattr(f, name) + more}) for name in names]
    if f.days_since_active is not None:
        out.append(dataclasses.replace(f, days_since_active=f.days_since_active + more))
    if f.stalled_days is not None:
        out.append(dataclasses.replace(f, stalled_days=f.stalled_days + more))
    return out


@given(facts_st, norm_st, st.integers(min_value=1, max_value=50))
def test_good_things_never_lower_the_score(f: Facts, n: Norm, more: int) -> None:
    for changed in _better(f, more):
        moved = _moves(f, changed, n)
        assert moved is None or moved >= -1e-9, changed


@given(facts_st, norm_st, st.integers(min_value=1, max_value=50))
def test_bad_things_never_raise_the_score(f: Facts, n: Norm, more: int) -> None:
    for changed in _worse(f, more):
        moved = _moves(f, changed, n)
        assert moved is None or moved <= 1e-9, changed


def test_a_clear_move_in_each_direction() -> None:
    f = Facts(
        events=5, days_since_active=3, progress=0.3, days_since_signup=20, tickets=3, negative=1
    )
    for changed in _better(f, 10):
        moved = _moves(f, changed, NORM)
        assert moved is not None and moved >= 0
    assert (_moves(f, dataclasses.replace(f, events=15), NORM) or 0) > 0
    assert (_moves(f, dataclasses.replace(f, tickets=6), NORM) or 0) < 0


@given(facts_st, norm_st)
def test_every_score_explains_itself(f: Facts, n: Norm) -> None:
    s = rules.compute(MODEL, f, n)
    for part in s.parts:
        assert explain.line(MODEL, part.key, f, n, part.value).endswith(".")
    found = explain.risks(MODEL, s.parts, f, n)
    assert [r.impact for r in found] == sorted((r.impact for r in found), reverse=True)
    assert all(r.impact > 0 for r in found)


def test_levels_and_thresholds() -> None:
    assert rules.level_of(MODEL, 70) is HealthLevel.HEALTHY
    assert rules.level_of(MODEL, 69.99) is HealthLevel.AT_RISK
    assert rules.level_of(MODEL, 40) is HealthLevel.AT_RISK
    assert rules.level_of(MODEL, 39.9) is HealthLevel.CRITICAL


NORM = Norm(median_events=20, median_active_days=8, has_usage=True, tracks_support=True)


def test_words_for_a_fading_customer() -> None:
    f = Facts(
        events=3,
        active_days=2,
        days_since_active=12,
        features_used=("project_created",),
        tickets=3,
        payment_failures=2,
        billing_events=3,
        progress=0.25,
        days_since_signup=40,
        stage="Setup",
        stalled_days=9,
    )
    s = rules.compute(MODEL, f, NORM)
    assert s.level is HealthLevel.CRITICAL
    lines = {p.key: explain.line(MODEL, p.key, f, NORM, p.value) for p in s.parts}
    assert lines["engagement"] == (
        "3 events on 2 active days in 30 days, the organization's median is 20; "
        "last active 12 days ago."
    )
    assert lines["adoption"] == "Uses 1 of 6 expected features (project_created)."
    assert lines["onboarding"] == "25% done after 40 days, in Setup; 100% expected by now."
    assert lines["sentiment"] == "No survey answers."
    messages = [r.message for r in explain.risks(MODEL, s.parts, f, NORM)]
    assert "no activity for 12 days" in messages
    assert "stalled in Setup for 9 days" in messages
    assert "2 failed payments in 30 days" in messages
    assert "3 support tickets in 30 days" in messages
    assert messages[0] == "no activity for 12 days"  # engagement weighs the most


def test_why_it_changed() -> None:
    before = Facts(
        events=25, active_days=10, days_since_active=1, progress=0.5, days_since_signup=10
    )
    after = dataclasses.replace(before, events=4, active_days=2, days_since_active=9)
    a = rules.compute(MODEL, before, NORM)
    b = rules.compute(MODEL, after, NORM)
    moved = explain.changes(a.parts, b.parts, old_facts=before, new_facts=after)
    assert moved[0].component == "engagement" and moved[0].delta < 0
    assert moved[0].message.startswith("Engagement -")
    assert "events 25 → 4" in moved[0].message
    assert math.isclose(sum(c.delta for c in moved), b.score - a.score, abs_tol=0.05)


def test_significant_moves() -> None:
    assert not rules.significant(old_score=None, old_level=None, score=10, level="CRITICAL")
    assert not rules.significant(old_score=50, old_level="AT_RISK", score=54.9, level="AT_RISK")
    assert rules.significant(old_score=50, old_level="AT_RISK", score=55, level="AT_RISK")
    assert rules.significant(old_score=69, old_level="AT_RISK", score=70, level="HEALTHY")


def test_facts_round_trip_through_json() -> None:
    f = Facts(events=3, features_used=("a", "b"), progress=0.5, stage="Setup")
    assert f.to_json() == {
        "events": 3,
        "features_used": ["a", "b"],
        "progress": 0.5,
        "stage": "Setup",
    }
    assert Facts.from_json(f.to_json()) == f


def test_stored_moments_are_counted_in_whole_days_up_to_the_reading() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    stored = {
        "days_since_active": "2026-01-01T12:00:00.000001",  # 8 days, 23:59:59.999999
        "days_since_signup": "2026-01-10T12:00:01",  # after the reading: 0
        "stalled_days": "2025-12-31T12:00:00",
        "events": 4,
    }
    f = Facts.from_json(stored, as_of=at)
    assert (f.days_since_active, f.days_since_signup, f.stalled_days, f.events) == (8, 0, 10, 4)
    assert Facts.from_json(stored, as_of=at.replace(day=11)).days_since_active == 9
    # the stored list of the recompute, and older scores' day counts, read alike
    listed = [0, 0, "2026-01-09T12:00:00+00:00", [], *[0] * 10, "2026-01-01T00:00:00", None, 3]
    assert Facts.from_json(listed, as_of=at).days_since_active == 1
    assert Facts.from_json(listed, as_of=at).days_since_signup == 9
    assert Facts.from_json({"days_since_active": 5}, as_of=at).days_since_active == 5


def test_recompute_id_ranges_cover_every_id_once() -> None:
    import random
    import uuid

    from app.health.recompute import id_ranges

    ids = [uuid.uuid4() for _ in range(2000)] + [uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)]
    for parts in (1, 2, 3, 7):
        ranges = id_ranges(parts)
        assert len(ranges) == parts
        for cid in random.Random(parts).sample(ids, 500) + ids[-2:]:
            holding = [
                (lo, hi)
                for lo, hi in ranges
                if (lo is None or cid > lo) and (hi is None or cid <= hi)
            ]
            assert len(holding) == 1, (parts, cid)
