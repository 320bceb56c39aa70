"""Completion forecast for customers in flight, stage by stage.

Per stage, a life table (grouped Kaplan-Meier) over the histogram buckets of the time
customers spent in it, from unlock to completion: completed stages are events, customers
still in it are censored at their time there. A customer in stage k who has been there for
e finishes onboarding within 30 days when the rest of stage k and every later stage fit in
30 days: the rest of stage k follows S_k conditioned on e, later stages their own curves
(taken as independent). Each bucket's mass sits at its midpoint; later stages are summed
on a 6-hour grid. The overall signup-to-completion curve is kept beside it for reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.analytics.histogram import BOUNDS, BUCKETS, bucket_of

DAY = 86400.0
HORIZON_DAYS = 30
GRID = DAY / 4
"""Later stages' durations are summed on this grid (seconds)."""
REACH_DAYS = 365
"""The expected date is looked for up to this many days ahead."""
CELLS = int(REACH_DAYS * DAY / GRID)
METHOD = (
    "Per stage, a life-table (grouped Kaplan-Meier) estimate of the time spent in that stage"
    " from unlock to completion: completed stages are events, customers still there are"
    " censored at their time there. For a customer who has spent e in stage k,"
    " P(complete within 30 days) = P(rest of stage k + every later stage <= 30 days), the"
    " rest of stage k from S_k(t | t > e), later stages from their own curves, independent;"
    " bucket masses at bucket midpoints, later stages summed on a 6-hour grid."
)


@dataclass(frozen=True)
class CurvePoint:
    days: float
    survival: float
    at_risk: int
    completed: int
    censored: int


@dataclass(frozen=True)
class StageInput:
    """One stage: durations of completed passes, and customers in it now by time spent there."""

    key: str
    name: str
    position: int
    done_hist: Sequence[int]
    here: Sequence[tuple[float, int]]


@dataclass(frozen=True)
class StageForecast:
    key: str
    name: str
    in_flight: int
    completed_sample: int
    median_days: float | None
    stage_probability: float | None
    """0-100: of the customers in this stage now, the share expected to finish the stage
    within 30 days."""
    probability: float | None
    """0-100: ... expected to finish onboarding within 30 days."""
    expected_completions: float | None
    curve: list[CurvePoint]


@dataclass(frozen=True)
class Forecast:
    in_flight: int
    probability: float | None
    expected_completions: float | None
    expected_days: float | None
    completed_sample: int
    censored_sample: int
    curve: list[CurvePoint]
    stages: list[StageForecast] = field(default_factory=list)
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
        points.append(CurvePoint(upper / DAY, survival, at_risk, done_hist[j], censored[j]))
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


def median_days(curve: Sequence[CurvePoint]) -> float | None:
    """Days until S falls to one half (linear inside a bucket); None if it never does."""
    low_days, low_s = 0.0, 1.0
    for p in curve:
        if p.survival <= 0.5:
            span = low_s - p.survival
            return low_days + (low_s - 0.5) * (p.days - low_days) / span if span > 0 else p.days
        low_days, low_s = p.days, p.survival
    return None


Atoms = list[tuple[float, float]]
"""(seconds, probability) pairs: a distribution with its mass on points; what is missing
from 1 never happens within the year."""


def _atoms(curve: Sequence[CurvePoint], spent: float = 0.0) -> Atoms:
    """The remaining duration of a stage after `spent` seconds in it: each bucket's mass
    (uniform inside it, so S is linear there) at the midpoint of its part after `spent`,
    divided by S(spent). Empty when nobody is expected to leave the stage."""
    start = survival_at(curve, spent / DAY)
    if start <= 0:
        return []
    out, low_s = [], 1.0
    for j, p in enumerate(curve[: BUCKETS - 1]):
        low, high = float(BOUNDS[j]), float(BOUNDS[j + 1])
        mass = low_s - p.survival
        low_s = p.survival
        if mass <= 0 or high <= spent:
            continue
        if low < spent:
            mass *= (high - spent) / (high - low)
            low = spent
        out.append(((low + high) / 2 - spent, mass / start))
    return out


def _sum_cdf(stages: Sequence[list[CurvePoint]]) -> list[float]:
    """P(the stages' durations together <= i * GRID), for i = 0..CELLS."""
    cells: dict[int, float] = {0: 1.0}
    for curve in stages:
        nxt: dict[int, float] = {}
        for seconds, p in _atoms(curve):
            shift = round(seconds / GRID)
            for i, q in cells.items():
                if i + shift <= CELLS:
                    nxt[i + shift] = nxt.get(i + shift, 0.0) + p * q
        cells = nxt
    dense = [0.0] * (CELLS + 1)
    for i, q in cells.items():
        dense[i] += q
    running = 0.0
    for i, q in enumerate(dense):
        running += q
        dense[i] = running
    return dense


@dataclass
class _Group:
    count: int
    atoms: Atoms
    later: list[float]

    def within(self, seconds: float) -> float:
        """P(this group's customers finish onboarding within `seconds`)."""
        total = 0.0
        for u, p in self.atoms:
            if u <= seconds:
                total += p * self.later[min(CELLS, math.floor((seconds - u) / GRID))]
        return total

    def stage_within(self, seconds: float) -> float:
        return sum(p for u, p in self.atoms if u <= seconds)


def forecast(
    done_hist: Sequence[int],
    ages: Sequence[tuple[float, int]],
    stages: Sequence[StageInput],
) -> Forecast:
    """The per-stage forecast of the customers in flight (`stages[].here`), with the overall
    signup-to-completion curve of the same customers (`done_hist`, in-flight `ages`)."""
    ordered = sorted(stages, key=lambda s: s.position)
    curves = [survival_curve(s.done_hist, s.here) for s in ordered]
    horizon = HORIZON_DAYS * DAY
    groups: list[_Group] = []
    per_stage = []
    for k, stage in enumerate(ordered):
        later = _sum_cdf(curves[k + 1 :])
        mine: dict[float, int] = {}
        for seconds, count in stage.here:
            if count:
                mine[seconds] = mine.get(seconds, 0) + count
        own = [_Group(n, _atoms(curves[k], spent), later) for spent, n in mine.items()]
        groups += own
        n = sum(g.count for g in own)
        learned = sum(stage.done_hist) > 0
        expected = sum(g.count * g.within(horizon) for g in own)
        staged = sum(g.count * g.stage_within(horizon) for g in own)
        per_stage.append(
            StageForecast(
                key=stage.key,
                name=stage.name,
                in_flight=n,
                completed_sample=sum(stage.done_hist),
                median_days=median_days(curves[k]),
                stage_probability=round(100 * staged / n, 2) if n and learned else None,
                probability=round(100 * expected / n, 2) if n and learned else None,
                expected_completions=round(expected, 2) if n and learned else None,
                curve=curves[k],
            )
        )
    in_flight = sum(g.count for g in groups)
    overall = survival_curve(done_hist, ages)
    base = Forecast(
        in_flight=in_flight,
        probability=None,
        expected_completions=None,
        expected_days=None,
        completed_sample=sum(done_hist),
        censored_sample=sum(n for _, n in ages),
        curve=overall,
        stages=per_stage,
    )
    if not in_flight or not any(sum(s.done_hist) for s in ordered):
        return base
    expected = sum(g.count * g.within(horizon) for g in groups)
    return Forecast(
        in_flight=in_flight,
        probability=round(100 * expected / in_flight, 2),
        expected_completions=round(expected, 2),
        expected_days=_half_done(groups, in_flight),
        completed_sample=base.completed_sample,
        censored_sample=base.censored_sample,
        curve=overall,
        stages=per_stage,
    )


def _half_done(groups: Sequence[_Group], in_flight: int) -> float | None:
    """Days until half of the customers in flight are expected to have completed (to the
    grid); None when that takes more than REACH_DAYS."""

    def done(cell: int) -> float:
        return sum(g.count * g.within(cell * GRID) for g in groups)

    if done(CELLS) < in_flight / 2:
        return None
    low, high = 0, CELLS
    while low < high:
        mid = (low + high) // 2
        if done(mid) >= in_flight / 2:
            high = mid
        else:
            low = mid + 1
    return low * GRID / DAY
