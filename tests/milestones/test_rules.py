"""Milestone criteria and their combination, as pure functions over facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.errors import InvalidMilestones
from app.milestones.criteria import Facts, filter_key, measure
from app.milestones.definitions import (
    EventCount,
    MilestoneDef,
    bundled_default,
    parse_set,
)
from app.milestones.rules import evaluate

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
SIGNUP = NOW - timedelta(days=40)


def facts(**kw: Any) -> Facts:
    return Facts(now=NOW, signed_up_at=SIGNUP, **kw)


def days_back(*counts: int) -> dict[date, int]:
    """Counts for today, yesterday, ... (index = days back)."""
    return {(NOW - timedelta(days=i)).date(): n for i, n in enumerate(counts) if n}


def milestone(*criteria: dict[str, Any], **kw: Any) -> MilestoneDef:
    return MilestoneDef.model_validate({"key": "m", "name": "M", "criteria": list(criteria), **kw})


def test_event_count_sums_days_and_respects_its_window() -> None:
    f = facts(usage={"project_created": days_back(1, 0, 2, 0, 0, 0, 0, 0, 5)})
    total = measure(EventCount(kind="event_count", event="project_created", count=10), f)
    assert (total.current, total.target, total.met) == (8, 10, False)
    assert total.missing == "2 more project_created events"
    week = EventCount(kind="event_count", event="project_created", count=3, within_days=7)
    assert measure(week, f).current == 3 and measure(week, f).met
    other = measure(EventCount(kind="event_count", event="login", count=1), f)
    assert other.current == 0 and other.missing == "1 more login event"


def test_a_property_filter_reads_its_own_count() -> None:
    c = EventCount(kind="event_count", event="report_shared", count=2, where={"audience": "client"})
    f = facts(usage={"report_shared": days_back(9)}, filtered={filter_key(c): days_back(1)})
    got = measure(c, f)
    assert (got.current, got.met) == (1, False)
    assert got.missing == "1 more report_shared event with audience=client"


def test_every_kind_measures_and_says_what_is_missing() -> None:
    f = facts(
        usage={"login": days_back(1, 1, 0, 3), "export": days_back(0, 0, 1)},
        tasks_completed={"verify_email": NOW, "invite_team": NOW},
        stages_completed={"welcome": NOW},
        points=420,
        health_log=[
            (NOW - timedelta(days=12), "at_risk"),
            (NOW - timedelta(days=10, hours=1), "healthy"),
            (NOW - timedelta(days=2), "healthy"),
        ],
    )
    cases = [
        ({"kind": "active_days", "days": 5, "event": "login"}, 3, "2 more days with login"),
        ({"kind": "active_days", "days": 4}, 4, ""),
        ({"kind": "active_days", "days": 3, "within_days": 2}, 2,
         "1 more day active in the last 2 days"),
        ({"kind": "tasks_completed", "tasks": ["verify_email", "add_client"]}, 1,
         "complete add_client"),
        ({"kind": "tasks_completed", "count": 3}, 2, "complete 1 more task"),
        ({"kind": "stages_completed", "stages": ["welcome"]}, 1, ""),
        ({"kind": "stages_completed", "count": 4}, 1, "finish 3 more stages"),
        ({"kind": "points_reached", "points": 500}, 420, "80 more points"),
        ({"kind": "health_level_held", "level": "healthy", "days": 14}, 10,
         "stay healthy 4 more days"),
        ({"kind": "health_level_held", "level": "at_risk", "days": 3}, 0,
         "reach the at risk level and hold it 3 days"),
        ({"kind": "days_since_signup", "days": 30}, 40, ""),
        ({"kind": "days_since_signup", "days": 45}, 40, "5 more days with us"),
    ]  # fmt: skip
    for raw, current, missing in cases:
        m = milestone(raw)
        got = measure(m.criteria[0], f)
        assert got.current == current, raw
        assert (got.missing if not got.met else "") == missing, raw


def test_workflow_completed_within_days_of_signup() -> None:
    m = milestone({"kind": "workflow_completed_within", "days": 7})
    fast = facts(workflow_completed_at=SIGNUP + timedelta(days=6))
    late = facts(workflow_completed_at=SIGNUP + timedelta(days=8))
    assert evaluate(m, fast).occurrences == 1
    assert evaluate(m, late).occurrences == 0
    assert evaluate(m, late).missing.startswith("No longer possible: the 7 days")
    fresh = Facts(now=NOW, signed_up_at=NOW - timedelta(days=2))
    assert evaluate(m, fresh).missing == "Finish onboarding within 5 more days."


def test_all_needs_every_criterion_and_any_needs_one() -> None:
    both = [
        {"kind": "event_count", "event": "a", "count": 2},
        {"kind": "event_count", "event": "b", "count": 4},
    ]
    f = facts(usage={"a": days_back(2), "b": days_back(1)})
    every = evaluate(milestone(*both), f)
    assert (every.current, every.target, every.occurrences) == (1, 2, 0)
    assert every.percent == pytest.approx(62.5)
    assert every.missing == "3 more b events."
    one = evaluate(milestone(*both, match="any"), f)
    assert (one.current, one.target, one.occurrences, one.percent) == (1, 1, 1, 100.0)
    assert one.missing == ""
    none = evaluate(milestone(*both, match="any"), facts())
    assert none.missing == "2 more a events or 4 more b events."


def test_a_repeatable_milestone_counts_whole_multiples() -> None:
    m = milestone({"kind": "event_count", "event": "project_created", "count": 25}, repeatable=True)
    got = evaluate(m, facts(usage={"project_created": days_back(30, 30, 1)}))
    assert (got.occurrences, got.current, got.target, got.percent) == (2, 61, 75, 44.0)
    assert got.missing == "14 more project_created events."


def test_a_set_is_refused_with_every_reason_at_once() -> None:
    raw = {
        "name": "Broken",
        "milestones": [
            {"key": "a", "name": "A", "criteria": [{"kind": "event_count", "event": "Bad!"}]},
            {"key": "a", "name": "A2", "criteria": [{"kind": "points_reached", "points": 5}]},
            {"key": "r", "name": "R", "repeatable": True,
             "criteria": [{"kind": "event_count", "event": "x", "count": 1, "within_days": 7}]},
            {"key": "t", "name": "T", "criteria": [
                {"kind": "tasks_completed"}, {"kind": "stages_completed", "stages": ["nope"]}]},
            {"key": "u", "name": "U", "criteria": [{"kind": "teleported"}]},
        ],
    }  # fmt: skip
    with pytest.raises(InvalidMilestones) as caught:
        parse_set(raw, stages=frozenset({"welcome"}))
    reasons = caught.value.details["reasons"]
    assert any("milestones.0.criteria.0.event_count.event" in r for r in reasons), reasons
    assert any("milestones.4.criteria.0" in r and "teleported" in r for r in reasons), reasons
    fixed = {**raw, "milestones": raw["milestones"][1:4]}
    with pytest.raises(InvalidMilestones) as caught:
        parse_set(fixed, stages=frozenset({"welcome"}))
    assert caught.value.code == "INVALID_MILESTONES"
    assert caught.value.details["reasons"] == [
        "milestones.1 (r): a repeatable milestone needs exactly one criterion that only grows "
        "(event_count or active_days without within_days, tasks_completed by count, "
        "points_reached)",
        "milestones.2 (t).criteria.0: give either `tasks` or `count`, one of them",
        "milestones.2 (t).criteria.1: unknown stage 'nope' (not in the default template)",
    ]


def test_yaml_text_and_the_bundled_default_parse() -> None:
    assert len(bundled_default().milestones) >= 10
    parsed = parse_set(
        "name: S\nmilestones:\n"
        " - {key: k, name: K, criteria: [{kind: days_since_signup, days: 3}]}\n"
    )
    assert parsed.milestones[0].criteria[0].kind == "days_since_signup"
    with pytest.raises(InvalidMilestones):
        parse_set("name: [unclosed")


def test_facts_go_back_in_time() -> None:
    f = Facts(
        now=NOW,
        signed_up_at=SIGNUP,
        usage={"login": days_back(1, 1, 1, 0, 1)},
        tasks_completed={"a": NOW - timedelta(days=3), "b": NOW - timedelta(hours=1)},
        workflow_completed_at=NOW - timedelta(hours=1),
        points_log=[(NOW - timedelta(days=3), 10), (NOW - timedelta(hours=1), 5)],
        health_log=[(NOW - timedelta(days=9), "healthy"), (NOW - timedelta(days=1), "at_risk")],
    )
    before = f.at(NOW - timedelta(days=2))
    assert before.usage == {"login": days_back(0, 0, 1, 0, 1)}
    assert set(before.tasks_completed) == {"a"} and before.workflow_completed_at is None
    assert before.points == 10 and f.at(NOW).points == 15
    assert (before.health_level, before.health_level_since) == ("healthy", NOW - timedelta(days=9))
    m = milestone({"kind": "active_days", "days": 4})
    assert evaluate(m, f).occurrences == 1 and evaluate(m, before).occurrences == 0
