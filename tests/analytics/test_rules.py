"""Pure parts of analytics: histogram percentiles, the forecast and when recommendations fire."""

from __future__ import annotations

from app.analytics import recommend
from app.analytics.forecast import StageInput, forecast, survival_curve
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


def test_overall_curve_of_a_history_where_half_complete_within_a_week() -> None:
    """Five completed after 1..5 days; five in flight for 60 days: S falls to 9/10 * 8/9 * 7/8
    * 6/7 * 5/6 = 0.5 by day 5 and stays there."""
    done = hist(*(d * DAY for d in (1, 2, 3, 4, 5)))
    curve = survival_curve(done, [(60 * DAY, 5), (0.5 * DAY, 1)])
    assert [round(p.survival, 3) for p in curve if p.days in (1, 5, 365)] == [0.9, 0.5, 0.5]
    [(days, _)] = [(p.days, p) for p in curve if p.censored == 5]
    assert 45 < days <= 60


def _two_stages(*welcome_here: tuple[float, int]) -> list[StageInput]:
    """Welcome: four passes of one day each. Setup: two passes of 10 days, and two customers
    there for 60 days."""
    return [
        StageInput("setup", "Setup", 1, hist(10 * DAY, 10 * DAY), [(60 * DAY, 2)]),
        StageInput("welcome", "Welcome", 0, hist(*[DAY] * 4), list(welcome_here)),
    ]


def test_forecast_per_stage_on_a_known_history() -> None:
    """Welcome's curve falls from 1 to 0 inside (12 h, 1 d]: its mass sits at 18 h. Setup's
    falls to 1 - 2/4 = 0.5 inside (7 d, 10 d] (mass 0.5 at 8.5 d) and stays there. A customer
    who just entered Welcome finishes it for sure and Setup with 0.5 within 30 days; the two
    in Setup for 60 days have nobody ever leaving after that: 0."""
    f = forecast(hist(), [], _two_stages((0.0, 1)))
    welcome, setup = f.stages
    assert (welcome.key, welcome.in_flight, welcome.completed_sample) == ("welcome", 1, 4)
    assert (welcome.stage_probability, welcome.probability) == (100.0, 50.0)
    assert welcome.median_days == 0.75
    assert (setup.in_flight, setup.completed_sample, setup.median_days) == (2, 2, 10.0)
    assert (setup.stage_probability, setup.probability, setup.expected_completions) == (0, 0, 0)
    assert [round(p.survival, 3) for p in setup.curve if p.days in (7, 10, 60)] == [1, 0.5, 0.5]
    assert f.in_flight == 3 and f.expected_completions == 0.5
    assert f.probability == round(100 * 0.5 / 3, 2)
    assert f.expected_days is None  # at most half of one of three customers is expected


def test_forecast_conditions_on_time_in_stage_and_finds_the_expected_date() -> None:
    """Welcome alone: a newcomer is done at 18 h. One who has spent 18 h there is censored
    inside (12 h, 1 d]: S(1 d) = 1 - 4 / 4.5 = 1/9, S(18 h) = 1 - (8/9)(6/12) = 5/9, and the
    mass left after 18 h is (8/9)(6/12) = 4/9, at 21 h: 4/5 within 30 days, 3 h away (one
    6-hour cell). With Setup after Welcome (two passes of 10 days, both done), a newcomer
    needs 18 h + 8.5 d."""
    welcome = _two_stages((0.0, 1))[1]
    alone = forecast(hist(), [], [welcome])
    assert alone.stages[0].probability == 100.0 and alone.expected_days == 0.75
    late = forecast(hist(), [], [_two_stages((18 * 3600.0, 1))[1]])
    assert late.stages[0].stage_probability == 80.0 and late.expected_days == 0.25
    setup = StageInput("setup", "Setup", 1, hist(10 * DAY, 10 * DAY), [])
    both = forecast(hist(), [], [welcome, setup])
    assert both.probability == 100.0 and both.expected_days == 9.25
    nobody = forecast(hist(), [], [StageInput("welcome", "Welcome", 0, hist(), [(DAY, 3)])])
    assert nobody.probability is None and nobody.stages[0].probability is None


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
