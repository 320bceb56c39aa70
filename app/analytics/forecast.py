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
from dataclasses import dataclass, field, replace

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


def _masses(curve: Sequence[CurvePoint]) -> list[tuple[float, float, float]]:
    """(low, high, mass) of each bucket the curve falls in, the open last one left out."""
    out, low_s = [], 1.0
    for j, p in enumerate(curve[: BUCKETS - 1]):
        if low_s - p.survival > 0:
            out.append((float(BOUNDS[j]), float(BOUNDS[j + 1]), low_s - p.survival))
        low_s = p.survival
    return out


def _atoms(
    curve: Sequence[CurvePoint],
    spent: float = 0.0,
    masses: list[tuple[float, float, float]] | None = None,
) -> Atoms:
    """The remaining duration of a stage after `spent` seconds in it: each bucket's mass
    (uniform inside it, so S is linear there) at the midpoint of its part after `spent`,
    divided by S(spent). Empty when nobody is expected to leave the stage."""
    start = survival_at(curve, spent / DAY)
    if start <= 0:
        return []
    out = []
    for low, high, mass in _masses(curve) if masses is None else masses:
        if high <= spent:
            continue
        if low < spent:
            mass *= (high - spent) / (high - low)
            low = spent
        out.append(((low + high) / 2 - spent, mass / start))
    return out


def _cell(seconds: float) -> int:
    """The grid cell a duration takes: rounded up, so a stage is never shorter than it was."""
    return max(0, math.ceil(seconds / GRID - 1e-9))


def _sum_cdf(stages: Sequence[list[CurvePoint]]) -> list[float]:
    """P(the stages' durations together <= i * GRID), for i = 0..CELLS."""
    cells: dict[int, float] = {0: 1.0}
    for curve in stages:
        nxt: dict[int, float] = {}
        for seconds, p in _atoms(curve):
            shift = _cell(seconds)
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
class _Stage:
    """The customers in one stage now: how many are expected to leave it in each grid cell
    from now (`leaving`), and P(every later stage together fits in i cells) (`later`)."""

    count: int
    leaving: dict[int, float]
    later: list[float]

    def done_by(self, cell: int) -> float:
        """Customers expected to have finished onboarding `cell` grid cells from now."""
        return sum(n * self.later[cell - c] for c, n in self.leaving.items() if c <= cell)

    def stage_done_by(self, cell: int) -> float:
        return sum(n for c, n in self.leaving.items() if c <= cell)


def _in_stage(
    curve: list[CurvePoint], here: Sequence[tuple[float, int]], later: list[float]
) -> _Stage:
    """Customers by time spent (to the grid), each group's remaining stage time from the
    curve conditioned on that time."""
    spent: dict[int, int] = {}
    for seconds, count in here:
        if count:
            cell = round(seconds / GRID)
            spent[cell] = spent.get(cell, 0) + count
    leaving: dict[int, float] = {}
    masses = _masses(curve)
    for cell, n in spent.items():
        for u, p in _atoms(curve, cell * GRID, masses):
            k = _cell(u)
            leaving[k] = leaving.get(k, 0.0) + n * p
    return _Stage(sum(spent.values()), leaving, later)


def forecast(
    done_hist: Sequence[int],
    ages: Sequence[tuple[float, int]],
    stages: Sequence[StageInput],
) -> Forecast:
    """The per-stage forecast of the customers in flight (`stages[].here`, time spent there
    taken to the 6-hour grid), with the overall signup-to-completion curve of the same
    customers (`done_hist`, in-flight `ages`)."""
    ordered = sorted(stages, key=lambda s: s.position)
    curves = [survival_curve(s.done_hist, s.here) for s in ordered]
    horizon = _cell(HORIZON_DAYS * DAY)
    groups = [
        _in_stage(curves[k], stage.here, _sum_cdf(curves[k + 1 :]))
        for k, stage in enumerate(ordered)
    ]
    per_stage = []
    for stage, curve, group in zip(ordered, curves, groups, strict=True):
        n = group.count
        known = bool(n and sum(stage.done_hist))
        expected = group.done_by(horizon)
        per_stage.append(
            StageForecast(
                key=stage.key,
                name=stage.name,
                in_flight=n,
                completed_sample=sum(stage.done_hist),
                median_days=median_days(curve),
                stage_probability=round(100 * group.stage_done_by(horizon) / n, 2)
                if known
                else None,
                probability=round(100 * expected / n, 2) if known else None,
                expected_completions=round(expected, 2) if known else None,
                curve=curve,
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
    expected = sum(g.done_by(horizon) for g in groups)
    return replace(
        base,
        probability=round(100 * expected / in_flight, 2),
        expected_completions=round(expected, 2),
        expected_days=_half_done(groups, in_flight),
    )


def _half_done(groups: Sequence[_Stage], in_flight: int) -> float | None:
    """Days until half of the customers in flight are expected to have completed (to the
    grid); None when that takes more than REACH_DAYS."""

    def done(cell: int) -> float:
        return sum(g.done_by(cell) for g in groups)

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
