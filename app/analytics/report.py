"""The analytics sections computed from rollup sums: pure functions over plain data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from app.analytics.forecast import StageInput
from app.analytics.histogram import BOUNDS, BUCKETS, WEEKS, add, quantile
from app.analytics.query import CohortSums, Scope
from app.analytics.rules import COHORT_COLUMNS, STEP_COLUMNS, StepOutcome, week_of
from app.customers.service import CustomerFilter

STALL_TASKS = 5


def percent(part: int, whole: int) -> float | None:
    """part / whole on the 0-100 scale; None when there is nothing to divide."""
    return round(100.0 * part / whole, 2) if whole else None


def base_drill(scope: Scope) -> CustomerFilter:
    """The customers a scope covers, as a `customers(filter:)` argument."""
    start, end = scope.start, scope.end
    if scope.signup_cohort is not None:
        start, end = max(start, scope.signup_cohort), min(end, scope.signup_cohort + timedelta(6))
    return CustomerFilter(
        user_type=scope.user_type,
        acquisition_channel=scope.channel,
        signed_up_from=start,
        signed_up_to=end,
        template_version=scope.template_version,
    )


@dataclass
class Totals:
    """Headline sums of a set of signup cells."""

    customers: int = 0
    started: int = 0
    completed: int = 0
    active: int = 0
    points: int = 0
    badges: int = 0
    done_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    done_weeks: list[int] = field(default_factory=lambda: [0] * WEEKS)

    def add(self, values: Sequence[int]) -> None:
        n = len(COHORT_COLUMNS)
        self.customers += values[0]
        self.started += values[1]
        self.completed += values[2]
        self.active += values[3]
        self.points += values[4]
        self.badges += values[5]
        add(self.done_hist, values[n : n + BUCKETS])
        add(self.done_weeks, values[n + BUCKETS : n + BUCKETS + WEEKS])

    @property
    def in_flight(self) -> int:
        return self.customers - self.completed

    @property
    def completion_rate(self) -> float | None:
        return percent(self.completed, self.customers)

    @property
    def median_seconds(self) -> float | None:
        return quantile(self.done_hist, 0.5)

    @property
    def p90_seconds(self) -> float | None:
        return quantile(self.done_hist, 0.9)


@dataclass
class Figures:
    """Headline figures of a group of customers, with the filter that lists them."""

    label: str
    totals: Totals
    drill: CustomerFilter


@dataclass
class StepFigures:
    """One funnel step (a stage, or a task within it)."""

    stage_key: str
    task_key: str | None
    name: str
    position: int
    reached: int
    completed: int
    skipped: int
    failed: int
    here: int
    dropped: int
    time_hist: list[int]
    conversion: float | None = None
    drill: CustomerFilter | None = None
    tasks: list[StepFigures] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return percent(self.completed, self.reached)

    @property
    def drop_off_rate(self) -> float | None:
        return percent(self.dropped, self.reached)

    @property
    def median_seconds(self) -> float | None:
        return quantile(self.time_hist, 0.5)

    @property
    def p90_seconds(self) -> float | None:
        return quantile(self.time_hist, 0.9)

    def outcome_drill(self, base: CustomerFilter, outcome: StepOutcome) -> CustomerFilter:
        return replace(
            base, stage_key=self.stage_key, task_key=self.task_key or "", outcome=outcome
        )


@dataclass
class Funnel:
    stages: list[StepFigures]
    stall_tasks: list[StepFigures]


@dataclass
class RetentionRow:
    """Of the customers who signed up in `week`, how many had completed by week W+k."""

    week: date
    customers: int
    completed_by_week: list[int]
    drill: CustomerFilter


@dataclass
class Cohorts:
    by_user_type: list[Figures]
    by_channel: list[Figures]
    by_signup_week: list[RetentionRow]


@dataclass
class TrendPoint:
    start: date
    signups: int
    completions: int
    completion_rate: float | None
    median_seconds: float | None
    drill: CustomerFilter


@dataclass
class Change:
    metric: str
    current: float | None
    previous: float | None

    @property
    def absolute(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return round(self.current - self.previous, 2)

    @property
    def relative(self) -> float | None:
        if self.current is None or not self.previous:
            return None
        return round(100.0 * (self.current - self.previous) / self.previous, 2)


@dataclass
class Trends:
    granularity: str
    points: list[TrendPoint]
    changes: list[Change]


StepRow = tuple[str, str, str, str, int, list[int]]


def totals(values: Iterable[Sequence[int]]) -> Totals:
    out = Totals()
    for v in values:
        out.add(v)
    return out


def within(scope: Scope, days: Iterable[tuple[date, list[int]]]) -> list[tuple[date, list[int]]]:
    """The signup days of the scope's own period (the sums also hold the previous one)."""
    return [(d, v) for d, v in days if scope.start <= d <= scope.end]


def period_totals(scope: Scope, sums: CohortSums) -> Totals:
    """The headline counts (no histograms) of a period's signup days."""
    return totals(v for _, v in within(scope, sums.days))


def overview(scope: Scope, sums: CohortSums) -> Figures:
    """Every sum of the period: the user types together (each customer has one)."""
    return Figures(
        label="all", totals=totals(v for _, v in sums.user_types), drill=base_drill(scope)
    )


def step_of(rows: Iterable[StepRow], key: tuple[str, str], name: str) -> StepFigures:
    sums = [0] * (len(STEP_COLUMNS) + BUCKETS)
    position = 0
    for r in rows:
        position = r[4]
        add(sums, r[5])
    n = len(STEP_COLUMNS)
    return StepFigures(
        stage_key=key[0],
        task_key=key[1] or None,
        name=name,
        position=position,
        reached=sums[0],
        completed=sums[1],
        skipped=sums[2],
        failed=sums[3],
        here=sums[4],
        dropped=sums[5],
        time_hist=sums[n:],
    )


def funnel(
    scope: Scope, customers: int, rows: Sequence[StepRow], names: dict[tuple[str, str], str]
) -> Funnel:
    """Stages in order, each with its tasks; conversion is reached / reached one step before."""
    groups: dict[tuple[str, str], list[StepRow]] = {}
    for r in rows:
        groups.setdefault((r[2], r[3]), []).append(r)
    steps = {k: step_of(v, k, names.get(k, k[1] or k[0])) for k, v in groups.items()}
    base = base_drill(scope)
    stages = sorted((s for k, s in steps.items() if not k[1]), key=lambda s: s.position)
    before = customers
    for stage in stages:
        stage.conversion = percent(stage.reached, before)
        stage.drill = stage.outcome_drill(base, StepOutcome.REACHED)
        before = stage.reached
        tasks = sorted(
            (s for k, s in steps.items() if k[0] == stage.stage_key and k[1]),
            key=lambda s: s.position,
        )
        prior = stage.reached
        for task in tasks:
            task.conversion = percent(task.reached, prior)
            task.drill = task.outcome_drill(base, StepOutcome.REACHED)
            prior = task.reached
        stage.tasks = tasks
    every_task = [t for s in stages for t in s.tasks]
    stall = sorted((t for t in every_task if t.dropped), key=lambda t: (-t.dropped, t.position))[
        :STALL_TASKS
    ]
    return Funnel(stages=stages, stall_tasks=stall)


def _by(
    scope: Scope,
    groups: Sequence[tuple[str, list[int]]],
    drill: Callable[[CustomerFilter, str], CustomerFilter],
) -> list[Figures]:
    base = base_drill(scope)
    figures = [Figures(label=k, totals=totals([v]), drill=drill(base, k)) for k, v in groups]
    return sorted(figures, key=lambda f: (-f.totals.customers, f.label))


def cohorts(scope: Scope, sums: CohortSums) -> Cohorts:
    weeks = {week: totals([values]) for week, values in sums.weeks}
    base = base_drill(scope)
    table = []
    for week, t in sorted(weeks.items()):
        running, cumulative = 0, []
        for count in t.done_weeks:
            running += count
            cumulative.append(running)
        table.append(
            RetentionRow(
                week=week,
                customers=t.customers,
                completed_by_week=cumulative,
                drill=replace(
                    base,
                    signed_up_from=max(week, scope.start),
                    signed_up_to=min(week + timedelta(6), scope.end),
                ),
            )
        )
    return Cohorts(
        by_user_type=_by(scope, sums.user_types, lambda b, k: replace(b, user_type=k)),
        by_channel=_by(scope, sums.channels, lambda b, k: replace(b, acquisition_channel=k)),
        by_signup_week=table,
    )


def _bucket(day: date, scope: Scope, granularity: str) -> date:
    if granularity == "WEEK":
        return max(week_of(day), scope.start)
    return day


def trends(
    scope: Scope,
    granularity: str,
    sums: CohortSums,
    completions: Sequence[tuple[date, list[int]]],
) -> Trends:
    """Signups and completion rate by signup day/week; completions and their median time by
    completion day/week; each figure against the previous period of the same length."""
    signups: dict[date, Totals] = {}
    for day, values in within(scope, sums.days):
        signups.setdefault(_bucket(day, scope, granularity), Totals()).add(values)
    done: dict[date, list[int]] = {}
    for day, values in completions:
        if scope.start <= day <= scope.end:
            add(done.setdefault(_bucket(day, scope, granularity), [0] * (1 + BUCKETS)), values)
    points = []
    step = timedelta(days=7 if granularity == "WEEK" else 1)
    cursor = _bucket(scope.start, scope, granularity)
    base = base_drill(scope)
    while cursor <= scope.end:
        t = signups.get(cursor, Totals())
        d = done.get(cursor, [0] * (1 + BUCKETS))
        last = min(scope.end, (week_of(cursor) + timedelta(6)) if granularity == "WEEK" else cursor)
        points.append(
            TrendPoint(
                start=cursor,
                signups=t.customers,
                completions=d[0],
                completion_rate=t.completion_rate,
                median_seconds=quantile(d[1:], 0.5),
                drill=replace(base, signed_up_from=cursor, signed_up_to=last),
            )
        )
        cursor = week_of(cursor) + step if granularity == "WEEK" else cursor + step
    previous = scope.previous()
    now_t, before_t = period_totals(scope, sums), period_totals(previous, sums)
    now_d, before_d = [0] * (1 + BUCKETS), [0] * (1 + BUCKETS)
    for day, values in completions:
        if scope.start <= day <= scope.end:
            add(now_d, values)
        elif previous.start <= day <= previous.end:
            add(before_d, values)
    changes = [
        Change("signups", now_t.customers, before_t.customers),
        Change("completions", now_d[0], before_d[0]),
        Change("completionRate", now_t.completion_rate, before_t.completion_rate),
        Change(
            "medianTimeToCompleteHours",
            _hours(quantile(now_d[1:], 0.5)),
            _hours(quantile(before_d[1:], 0.5)),
        ),
    ]
    return Trends(granularity=granularity, points=points, changes=changes)


def _hours(seconds: float | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


_MIDDLES = [(BOUNDS[b] + BOUNDS[b + 1]) / 2 for b in range(BUCKETS - 1)] + [float(BOUNDS[-1])]


def stage_inputs(
    steps: Sequence[StepRow],
    flight: Sequence[tuple[date, str, list[int]]],
    names: dict[tuple[str, str], str],
    age: Callable[[date], float],
) -> list[StageInput]:
    """The forecast's figures per stage: durations of completed passes (funnel sums) and the
    customers in it now by time spent there (signup age less the midpoint of the bucket of
    their time from signup to entering the stage)."""
    done: dict[str, list[int]] = {}
    position: dict[str, int] = {}
    for r in steps:
        if not r[3]:
            add(done.setdefault(r[2], [0] * BUCKETS), r[5][len(STEP_COLUMNS) :])
            position[r[2]] = r[4]
    here: dict[str, dict[float, int]] = {}
    for day, stage, counts in flight:
        seconds = age(day)
        mine = here.setdefault(stage, {})
        for b, n in enumerate(counts):
            if n:
                spent = max(0.0, seconds - _MIDDLES[b])
                mine[spent] = mine.get(spent, 0) + n
    return [
        StageInput(
            key=key,
            name=names.get((key, ""), key),
            position=position[key],
            done_hist=hist,
            here=sorted(here.get(key, {}).items()),
        )
        for key, hist in done.items()
    ]
