"""Recommendations derived from the figures: each appears only when its finding holds with
enough customers behind it, and carries its evidence, effect size and drill-down."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.analytics.report import Change, Figures, Funnel, StepFigures, percent
from app.analytics.rules import StepOutcome
from app.customers.service import CustomerFilter

MIN_SAMPLE = 30
"""Customers a group needs before any finding about it is stated."""
MIN_GAP = 20.0
"""Relative completion-rate gap (percent) a segment needs against the rest."""
Z_CRITICAL = 1.96
"""Two-sided 95 % two-proportion z-test."""
STALL_SHARE = 15.0
FAIL_SHARE = 10.0
TREND_DROP_POINTS = 5.0


@dataclass(frozen=True)
class Evidence:
    label: str
    value: str


@dataclass(frozen=True)
class Recommendation:
    kind: str
    message: str
    evidence: list[Evidence]
    effect_size: float
    sample_size: int
    drill: CustomerFilter


def z_score(a: int, n: int, b: int, m: int) -> float:
    """Two-proportion z statistic of a/n against b/m (0 when undefined)."""
    if not n or not m:
        return 0.0
    pooled = (a + b) / (n + m)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return (a / n - b / m) / se if se else 0.0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def _segments(
    kind: str,
    groups: Sequence[Figures],
    stall_by_segment: dict[str, StepFigures],
    stage_names: dict[str, str],
) -> list[Recommendation]:
    out = []
    total_n = sum(g.totals.customers for g in groups)
    total_done = sum(g.totals.completed for g in groups)
    for g in groups:
        n, done = g.totals.customers, g.totals.completed
        rest_n, rest_done = total_n - n, total_done - done
        if n < MIN_SAMPLE or rest_n < MIN_SAMPLE or not rest_done:
            continue
        rate, rest_rate = done / n, rest_done / rest_n
        gap = 100 * (rate - rest_rate) / rest_rate
        z = z_score(done, n, rest_done, rest_n)
        if gap > -MIN_GAP or z > -Z_CRITICAL:
            continue
        noun = "acquisition channel" if kind == "channel" else "user type"
        message = (
            f"Customers with {noun} '{g.label}' complete onboarding {abs(gap):.0f} % less often"
            f" than the others ({done:,} of {n:,}, {100 * rate:.1f} % against"
            f" {100 * rest_rate:.1f} %)."
        )
        evidence = [
            Evidence("completed", f"{done:,} of {n:,}"),
            Evidence("others completed", f"{rest_done:,} of {rest_n:,}"),
            Evidence("z", f"{z:.2f}"),
        ]
        stall = stall_by_segment.get(g.label)
        if stall is not None and stall.dropped:
            share = percent(stall.dropped, stall.reached)
            where = stage_names.get(stall.stage_key, stall.stage_key)
            message += (
                f" Their main drop-off is '{stall.name}' in {where}"
                f" ({_fmt(share)} of those who reached it stall there)."
                " Consider guided help for that step aimed at this group."
            )
            evidence.append(
                Evidence(f"stalled at {stall.name}", f"{stall.dropped:,} of {stall.reached:,}")
            )
        else:
            message += " Consider reviewing what this group is promised at signup."
        out.append(
            Recommendation(
                kind=f"SEGMENT_{kind.upper()}",
                message=message,
                evidence=evidence,
                effect_size=round(gap, 1),
                sample_size=n,
                drill=g.drill,
            )
        )
    return out


def _stalls(funnel: Funnel, base: CustomerFilter) -> list[Recommendation]:
    out = []
    for task in funnel.stall_tasks[:1]:
        share = percent(task.dropped, task.reached)
        if task.reached < MIN_SAMPLE or share is None or share < STALL_SHARE:
            continue
        stage = next(
            (s.name for s in funnel.stages if s.stage_key == task.stage_key), task.stage_key
        )
        out.append(
            Recommendation(
                kind="STALL",
                message=(
                    f"{task.dropped:,} of {task.reached:,} customers who reached '{task.name}'"
                    f" in {stage} ({share:.1f} %) have been idle there for 7 days or more,"
                    " the largest stall in the funnel. Consider a reminder or a help resource"
                    " at that step."
                ),
                evidence=[
                    Evidence("stalled", f"{task.dropped:,}"),
                    Evidence("reached", f"{task.reached:,}"),
                ],
                effect_size=share,
                sample_size=task.reached,
                drill=task.outcome_drill(base, StepOutcome.DROPPED),
            )
        )
    return out


def _failures(funnel: Funnel, base: CustomerFilter) -> list[Recommendation]:
    tasks = [t for s in funnel.stages for t in s.tasks if t.reached >= MIN_SAMPLE]
    worst = max(tasks, key=lambda t: t.failed / t.reached, default=None)
    if worst is None:
        return []
    share = percent(worst.failed, worst.reached)
    if share is None or share < FAIL_SHARE:
        return []
    return [
        Recommendation(
            kind="FAILURES",
            message=(
                f"'{worst.name}' failed at least once for {worst.failed:,} of {worst.reached:,}"
                f" customers who reached it ({share:.1f} %), the highest failure rate of any"
                " task. Consider checking its failure reasons and adding a retry hint."
            ),
            evidence=[
                Evidence("failed", f"{worst.failed:,}"),
                Evidence("reached", f"{worst.reached:,}"),
            ],
            effect_size=share,
            sample_size=worst.reached,
            drill=worst.outcome_drill(base, StepOutcome.FAILED),
        )
    ]


def _trend(
    changes: Sequence[Change],
    current: tuple[int, int],
    previous: tuple[int, int],
    base: CustomerFilter,
) -> list[Recommendation]:
    rate = next((c for c in changes if c.metric == "completionRate"), None)
    (done, n), (done0, n0) = current, previous
    if rate is None or rate.absolute is None or n < MIN_SAMPLE or n0 < MIN_SAMPLE:
        return []
    z = z_score(done, n, done0, n0)
    if rate.absolute > -TREND_DROP_POINTS or z > -Z_CRITICAL:
        return []
    return [
        Recommendation(
            kind="TREND",
            message=(
                f"The completion rate fell from {_fmt(rate.previous)} to {_fmt(rate.current)}"
                f" against the previous period of the same length ({done:,} of {n:,} against"
                f" {done0:,} of {n0:,}). Consider what changed in onboarding or acquisition"
                " between the two periods."
            ),
            evidence=[
                Evidence("this period", f"{done:,} of {n:,}"),
                Evidence("previous period", f"{done0:,} of {n0:,}"),
                Evidence("z", f"{z:.2f}"),
            ],
            effect_size=rate.absolute,
            sample_size=n + n0,
            drill=replace(base),
        )
    ]


def recommendations(
    *,
    base: CustomerFilter,
    funnel: Funnel,
    by_user_type: Sequence[Figures],
    by_channel: Sequence[Figures],
    stall_by_user_type: dict[str, StepFigures],
    stall_by_channel: dict[str, StepFigures],
    changes: Sequence[Change],
    current: tuple[int, int],
    previous: tuple[int, int],
) -> list[Recommendation]:
    """Every finding that holds, largest effect first within each kind."""
    stage_names = {s.stage_key: s.name for s in funnel.stages}
    found = _segments("channel", by_channel, stall_by_channel, stage_names)
    found += _segments("user_type", by_user_type, stall_by_user_type, stage_names)
    found.sort(key=lambda r: r.effect_size)
    return (
        found
        + _stalls(funnel, base)
        + _failures(funnel, base)
        + _trend(changes, current, previous, base)
    )
