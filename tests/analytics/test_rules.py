"""Pure parts of analytics: histogram percentiles, the forecast and when recommendations fire."""

from __future__ import annotations

from app.analytics import recommend
from app.analytics.forecast import forecast
from app.analytics.histogram import BUCKETS, bucket_of, quantile
from app.analytics.report import Figures, Funnel, StepFigures, Totals
from app.customers.service import CustomerFilter

DAY = 86400


def hist(*seconds: float) -> list[int]:
    out = [0] * BUCKETS
    for s in seconds:
        out[bucket_of(s)] += 1
    return out


def test_quantiles_are_exact_on_bucket_bounds_and_interpolated_inside() -> None:
    assert quantile(hist(DAY, 2 * DAY, 3 * DAY), 0.5) == 2 * DAY
    assert quantile(hist(DAY, 2 * DAY, 3 * DAY), 0.9) == 3 * DAY
    assert quantile(hist(), 0.5) is None
    inside = quantile(hist(1.5 * DAY, 1.5 * DAY), 0.5)  # two in (1d, 2d]: rank 1 of 2
    assert inside == 1.5 * DAY
    assert quantile(hist(10**9), 0.5) == 365 * DAY  # the open bucket answers its lower bound


def test_forecast_of_a_history_where_half_complete_within_a_week() -> None:
    """Five completed after 1..5 days; five in flight for 60 days: S falls to 9/10 * 8/9 * 7/8
    * 6/7 * 5/6 = 0.5 by day 5 and stays there."""
    done = hist(*(d * DAY for d in (1, 2, 3, 4, 5)))
    young = forecast(done, [(60 * DAY, 5), (0.5 * DAY, 1)])
    assert [round(p.survival, 3) for p in young.curve if p.days in (1, 5, 365)] == [0.9, 0.5, 0.5]
    # the new customer: 1 - S(30.5) / S(0.5) = 0.5; the five old ones: 0
    assert young.in_flight == 6 and young.expected_completions == 0.5
    assert young.probability == round(100 * 0.5 / 6, 2)
    assert young.expected_days is None  # most customers in flight are not expected to finish
    [(days, _)] = [(p.days, p) for p in young.curve if p.censored == 5]
    assert 45 < days <= 60
    old = forecast(done, [(60 * DAY, 5)])
    assert old.probability == 0.0 and old.expected_days is None
    assert forecast(hist(), [(DAY, 3)]).probability is None  # no completion to learn from


def group(label: str, customers: int, completed: int) -> Figures:
    return Figures(
        label=label,
        totals=Totals(customers=customers, completed=completed),
        drill=CustomerFilter(acquisition_channel=label),
    )


def step(task: str, reached: int, dropped: int, failed: int = 0) -> StepFigures:
    return StepFigures(
        stage_key="setup",
        task_key=task,
        name=task.replace("_", " "),
        position=1,
        reached=reached,
        completed=reached - dropped,
        skipped=0,
        failed=failed,
        here=0,
        dropped=dropped,
        time_hist=[0] * BUCKETS,
        drill=CustomerFilter(),
    )


def found(
    channels: list[Figures], stall: list[StepFigures] | None = None
) -> list[recommend.Recommendation]:
    stage = step("", 0, 0)
    stage.task_key, stage.name = None, "Setup"
    stage.tasks = stall or []
    return recommend.recommendations(
        base=CustomerFilter(),
        funnel=Funnel(stages=[stage], stall_tasks=sorted(stall or [], key=lambda t: -t.dropped)),
        by_user_type=[],
        by_channel=channels,
        stall_by_user_type={},
        stall_by_channel={"paid_ads": step("connect_data_source", 500, 220)},
        changes=[],
        current=(0, 0),
        previous=(0, 0),
    )


def test_a_weak_channel_is_named_with_its_numbers_and_main_drop_off() -> None:
    [rec] = found([group("paid_ads", 1040, 212), group("organic", 2000, 900)])
    assert rec.kind == "SEGMENT_CHANNEL" and rec.sample_size == 1040
    assert "'paid_ads'" in rec.message and "212 of 1,040" in rec.message
    assert "'connect data source' in Setup (44.0 % of those who reached it" in rec.message
    assert rec.effect_size == round(100 * (212 / 1040 - 900 / 2000) / (900 / 2000), 1)
    assert rec.drill.acquisition_channel == "paid_ads"


def test_no_recommendation_without_a_finding() -> None:
    assert found([group("paid_ads", 1000, 430), group("organic", 2000, 900)]) == []  # 4 % gap
    assert found([group("paid_ads", 20, 1), group("organic", 2000, 900)]) == []  # too few
    assert found([group("paid_ads", 60, 20), group("organic", 60, 28)]) == []  # not significant


def test_stalls_and_failures_need_their_share_and_sample() -> None:
    kinds = [r.kind for r in found([], [step("invite_team", 200, 60, failed=30)])]
    assert kinds == ["STALL", "FAILURES"]
    assert found([], [step("invite_team", 200, 10, failed=5)]) == []
    assert found([], [step("invite_team", 20, 10, failed=10)]) == []
