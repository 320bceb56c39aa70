"""Scores in words: one line per component, risk factors with evidence, why a score moved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.health import rules
from app.health.definitions import HealthModelDef
from app.health.rules import Facts, Norm, Part

LABELS = {
    "engagement": "Engagement",
    "adoption": "Feature adoption",
    "onboarding": "Onboarding",
    "support": "Support",
    "sentiment": "Sentiment",
    "billing": "Billing",
}


@dataclass(frozen=True, slots=True)
class Risk:
    """A reason the score is lower than it could be, with the evidence in words."""

    component: str
    message: str
    impact: float
    """Points of score the component loses (100 - value, weighted); larger first."""


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _days(days: int) -> str:
    return _n(days, "day")


def _median(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def line(model: HealthModelDef, key: str, f: Facts, n: Norm, value: float | None) -> str:
    """One sentence saying what a component's value rests on."""
    c = model.components
    if key == "engagement" and c.engagement:
        if value is None:
            return "No usage events from this organization yet."
        w = c.engagement.window_days
        head = f"{_n(f.events, 'event')} on {_n(f.active_days, 'active day')} in {_days(w)}"
        median = f"the organization's median is {_median(n.median_events)}"
        if f.days_since_active is None:
            return f"{head}, {median}; no activity on record."
        last = "today" if f.days_since_active == 0 else f"{_days(f.days_since_active)} ago"
        return f"{head}, {median}; last active {last}."
    if key == "adoption" and c.adoption:
        if value is None:
            return "No usage events from this organization yet."
        used = [x for x in c.adoption.features if x in f.features_used]
        names = f" ({', '.join(used)})" if used else ""
        return f"Uses {len(used)} of {len(c.adoption.features)} expected features{names}."
    if key == "onboarding" and c.onboarding:
        if value is None:
            return "No onboarding workflow."
        if f.completed:
            return "Onboarding completed."
        done = round(100 * (f.progress or 0))
        expected = round(100 * rules.expected_progress(c.onboarding, f))
        where = f", in {f.stage}" if f.stage else ""
        return (
            f"{done}% done after {_days(f.days_since_signup)}{where}; {expected}% expected by now."
        )
    if key == "support" and c.support:
        if value is None:
            return "No support data."
        tickets = _n(f.tickets, "support ticket")
        esc = f", {_n(f.escalations, 'escalation')}" if f.escalations else ""
        return (
            f"{tickets}{esc} in {_days(c.support.window_days)} ({c.support.tolerated} tolerated)."
        )
    if key == "sentiment" and c.sentiment:
        if value is None:
            return "No survey answers."
        return (
            f"{f.positive} positive, {f.neutral} neutral, {f.negative} negative survey "
            f"answers in {_days(c.sentiment.window_days)}."
        )
    if key == "billing" and c.billing:
        if value is None:
            return "No billing events."
        if not f.payment_failures and not f.downgrades:
            return f"Payments in order over {_days(c.billing.window_days)}."
        return (
            f"{_n(f.payment_failures, 'failed payment')}, {_n(f.downgrades, 'downgrade')} "
            f"in {_days(c.billing.window_days)}."
        )
    return "No data."


def _evidence(model: HealthModelDef, key: str, f: Facts, n: Norm) -> list[str]:
    """The facts behind a low component, most telling first."""
    c = model.components
    out: list[str] = []
    if key == "engagement" and c.engagement:
        if f.days_since_active is None:
            out.append("no activity on record")
        elif f.days_since_active * 2 >= c.engagement.inactive_days:
            out.append(f"no activity for {_days(f.days_since_active)}")
        if n.median_events and f.events < n.median_events / 2:
            out.append(
                f"{_n(f.events, 'event')} in {_days(c.engagement.window_days)}, "
                f"the organization's median is {_median(n.median_events)}"
            )
    elif key == "adoption" and c.adoption:
        missing = [x for x in c.adoption.features if x not in f.features_used]
        if missing:
            used = len(c.adoption.features) - len(missing)
            out.append(
                f"uses {used} of {len(c.adoption.features)} expected features; "
                f"not yet: {', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}"
            )
    elif key == "onboarding" and c.onboarding and not f.completed:
        if f.stalled_days is not None and f.stalled_days > c.onboarding.stall_days:
            out.append(f"stalled in {f.stage or 'onboarding'} for {_days(f.stalled_days)}")
        expected = rules.expected_progress(c.onboarding, f)
        if f.progress is not None and f.progress + 0.25 < expected:
            out.append(
                f"onboarding behind pace: {round(100 * f.progress)}% done after "
                f"{_days(f.days_since_signup)}, {round(100 * expected)}% expected"
            )
    elif key == "support" and c.support:
        if f.escalations:
            out.append(f"{_n(f.escalations, 'escalated ticket')} in {_days(c.support.window_days)}")
        if f.tickets > c.support.tolerated:
            out.append(f"{_n(f.tickets, 'support ticket')} in {_days(c.support.window_days)}")
    elif key == "sentiment" and c.sentiment and f.negative:
        out.append(
            f"{_n(f.negative, 'negative survey answer')} in {_days(c.sentiment.window_days)}"
        )
    elif key == "billing" and c.billing:
        if f.payment_failures:
            out.append(
                f"{_n(f.payment_failures, 'failed payment')} in {_days(c.billing.window_days)}"
            )
        if f.downgrades:
            out.append(f"{_n(f.downgrades, 'downgrade')} in {_days(c.billing.window_days)}")
    return out


def risks(model: HealthModelDef, parts: Sequence[Part], f: Facts, n: Norm) -> list[Risk]:
    """Risk factors with evidence, the ones that cost the most points first."""
    with_data = sum(p.weight for p in parts if p.value is not None)
    found: list[Risk] = []
    for order, part in enumerate(parts):
        if part.value is None or part.value >= 80 or with_data <= 0:
            continue
        lost = (100.0 - part.value) * part.weight / with_data
        for rank, message in enumerate(_evidence(model, part.key, f, n)):
            # Within a component the first piece of evidence ranks first.
            found.append(Risk(part.key, message, round(lost, 2) - rank * 1e-6 - order * 1e-9))
    found.sort(key=lambda r: -r.impact)
    return [Risk(r.component, r.message, round(r.impact, 2)) for r in found]


@dataclass(frozen=True, slots=True)
class Change:
    """How one component moved the score between two snapshots."""

    component: str
    delta: float
    message: str


def _value_words(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f}"


def changes(
    old: Sequence[Part], new: Sequence[Part], *, old_facts: Facts, new_facts: Facts
) -> list[Change]:
    """Per component, the contribution it gained or lost between two scores, largest first."""
    before = {p.key: p for p in old}
    out: list[Change] = []
    for part in new:
        prev = before.pop(part.key, None)
        was = prev.contribution if prev else 0.0
        delta = part.contribution - was
        if abs(delta) < 0.05 and (prev is None or prev.value == part.value):
            continue
        label = LABELS.get(part.key, part.key)
        sign = "+" if delta >= 0 else "-"
        why = _fact_change(part.key, old_facts, new_facts)
        out.append(
            Change(
                part.key,
                round(delta, 2),
                f"{label} {sign}{abs(delta):.1f} points "
                f"({_value_words(prev.value if prev else None)} → {_value_words(part.value)})"
                + (f": {why}" if why else ""),
            )
        )
    for key, prev in before.items():
        out.append(
            Change(key, round(-prev.contribution, 2), f"{LABELS.get(key, key)} left the model")
        )
    out.sort(key=lambda c: -abs(c.delta))
    return out


def _fact_change(key: str, a: Facts, b: Facts) -> str:
    pairs: dict[str, list[tuple[str, object, object]]] = {
        "engagement": [
            ("events", a.events, b.events),
            ("active days", a.active_days, b.active_days),
            ("days since last activity", a.days_since_active, b.days_since_active),
        ],
        "adoption": [("features used", len(a.features_used), len(b.features_used))],
        "onboarding": [
            ("progress %", _pct(a.progress), _pct(b.progress)),
            ("days stalled", a.stalled_days, b.stalled_days),
        ],
        "support": [
            ("tickets", a.tickets, b.tickets),
            ("escalations", a.escalations, b.escalations),
        ],
        "sentiment": [
            ("negative answers", a.negative, b.negative),
            ("positive answers", a.positive, b.positive),
        ],
        "billing": [
            ("failed payments", a.payment_failures, b.payment_failures),
            ("downgrades", a.downgrades, b.downgrades),
        ],
    }
    moved = [
        f"{name} {x if x is not None else '-'} → {y if y is not None else '-'}"
        for name, x, y in pairs.get(key, [])
        if x != y
    ]
    return ", ".join(moved)


def _pct(value: float | None) -> int | None:
    return None if value is None else round(100 * value)
