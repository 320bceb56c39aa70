"""Completion forecast for customers in flight: a life-table (grouped Kaplan-Meier) survival
estimate over the histogram buckets of the organization's own completion times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.analytics.histogram import BOUNDS, BUCKETS, bucket_of

HORIZON_DAYS = 30
METHOD = (
    "Life-table (grouped Kaplan-Meier) estimate of time from signup to completion:"
    " completed customers are events at their completion time, customers in flight are"
    " censored at their current age; P(complete within 30 days | age a) = 1 - S(a+30d) / S(a)."
)


@dataclass(frozen=True)
class CurvePoint:
    days: float
    survival: float
    at_risk: int
    completed: int
    censored: int


@dataclass(frozen=True)
class Forecast:
    in_flight: int
    probability: float | None
    expected_completions: float | None
    expected_days: float | None
    completed_sample: int
    censored_sample: int
    curve: list[CurvePoint]
    method: str = METHOD


def survival_curve(done_hist: Sequence[int], ages: Sequence[tuple[float, int]]) -> list[CurvePoint]:
    """S at each bucket's upper bound, with the risk set and events of the bucket."""
    censored = [0] * BUCKETS
    for seconds, count in ages:
        censored[bucket_of(seconds)] += count
    at_risk = sum(done_hist) + sum(censored)
    survival, points = 1.0, []
    for j in range(BUCKETS):
        effective = at_risk - censored[j] / 2
        if effective > 0 and done_hist[j]:
            survival *= max(0.0, 1 - done_hist[j] / effective)
        upper = BOUNDS[j + 1] if j + 1 < BUCKETS else BOUNDS[-1] * 2
        points.append(CurvePoint(upper / 86400, survival, at_risk, done_hist[j], censored[j]))
        at_risk -= done_hist[j] + censored[j]
    return points


def survival_at(curve: Sequence[CurvePoint], days: float) -> float:
    """S(t), linear between bucket bounds."""
    low_days, low_s = 0.0, 1.0
    for p in curve:
        if days <= p.days:
            span = p.days - low_days
            return low_s + (p.survival - low_s) * ((days - low_days) / span if span else 1)
        low_days, low_s = p.days, p.survival
    return low_s


def _residual_median(curve: Sequence[CurvePoint], age_days: float) -> float | None:
    """Days until S falls to half of S(age), linear between bucket bounds; None when that
    does not happen within a year."""
    start = survival_at(curve, age_days)
    if start <= 0:
        return None
    target, low_days, low_s = start / 2, 0.0, 1.0
    for p in curve:
        if p.days >= age_days and p.survival <= target:
            span = low_s - p.survival
            t = p.days if span <= 0 else low_days + (low_s - target) * (p.days - low_days) / span
            remaining = max(t, age_days) - age_days
            return remaining if remaining <= 365 else None
        low_days, low_s = p.days, p.survival
    return None


def forecast(done_hist: Sequence[int], ages: Sequence[tuple[float, int]]) -> Forecast:
    """Probability and expected count of in-flight customers completing within 30 days, and
    the days until half of them are expected to have completed."""
    curve = survival_curve(done_hist, ages)
    in_flight = sum(count for _, count in ages)
    completed = sum(done_hist)
    if not in_flight or not completed:
        return Forecast(in_flight, None, None, None, completed, in_flight, curve)
    expected, medians = 0.0, []
    for seconds, count in ages:
        a = seconds / 86400
        now = survival_at(curve, a)
        p = 1 - survival_at(curve, a + HORIZON_DAYS) / now if now > 0 else 0.0
        expected += count * p
        medians.append((_residual_median(curve, a), count))
    finite = sorted((m, c) for m, c in medians if m is not None)
    half, seen, expected_days = in_flight / 2, 0, None
    for m, c in finite:
        seen += c
        if seen >= half:
            expected_days = m
            break
    return Forecast(
        in_flight=in_flight,
        probability=round(100 * expected / in_flight, 2),
        expected_completions=round(expected, 2),
        expected_days=expected_days,
        completed_sample=completed,
        censored_sample=in_flight,
        curve=curve,
    )
