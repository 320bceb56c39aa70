"""Pure rule functions: definition validation, conditions, matching, limits, the action walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.automation import conditions, rules
from app.automation.rules import InvalidRule, parse_rule, plan

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def rule(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Nudge",
        "trigger": {"type": "event", "event": "stage.completed"},
        "actions": [{"type": "notify", "title": "Well done {{ customer.name }}"}],
    }
    base.update(over)
    return base


def reasons(raw: Any) -> list[str]:
    with pytest.raises(InvalidRule) as caught:
        parse_rule(raw)
    assert caught.value.code == "INVALID_RULE"
    return list(caught.value.details["reasons"])


# --- validation --------------------------------------------------------------------------------


def test_a_valid_rule_is_normalized_with_camel_case_keys_and_defaults() -> None:
    doc = parse_rule(
        rule(cooldownSeconds=3600, maxRuns=2, goal={"event": "stage.completed"})
    ).document()
    assert doc["cooldownSeconds"] == 3600 and doc["maxRuns"] == 2 and doc["priority"] == 0
    assert doc["actions"][0] == {
        "type": "notify",
        "to": "customer",
        "title": "Well done {{ customer.name }}",
        "body": "",
    }
    assert doc["goal"]["withinDays"] == 7
    assert parse_rule(doc).document() == doc  # the stored form reads back as itself


def test_every_shape_reason_is_reported_at_once() -> None:
    got = reasons(
        {
            "name": "",
            "trigger": {"type": "someday"},
            "actions": [{"type": "send_email", "subject": "Hi", "text": ""}, {"type": "explode"}],
            "conditions": {"fact": "customer.plan", "op": "like", "value": "x"},
        }
    )
    assert any(r.startswith("name:") for r in got)
    assert any(r.startswith("trigger:") and "someday" in r for r in got)
    assert any(r.startswith("actions.0.send_email.text") for r in got)
    assert any(r.startswith("actions.1:") and "explode" in r for r in got)
    assert any(r.startswith("conditions.op: must be one of") for r in got)


def test_every_semantic_reason_is_reported_at_once() -> None:
    got = reasons(
        rule(
            conditions={
                "all": [
                    {"fact": "workflow.progress", "op": "gt", "value": "lots"},
                    {"fact": "", "op": "in", "value": []},
                    {"any": []},
                    {"not": {"fact": "x", "op": "exists", "value": "yes"}},
                    {"fact": "customer.tags", "op": "eq", "value": ["a"]},
                    {"fact": "customer.name", "op": "starts_with", "value": 3},
                    {"fact": "customer.name", "op": "eq", "value": "a", "extra": 1},
                ]
            },
            actions=[
                {"type": "send_email", "subject": "{{ customer.name", "text": "ok"},
                {"type": "delay"},
                {
                    "type": "if",
                    "conditions": {"fact": "x", "op": "eq"},
                    "then": [{"type": "delay"}],
                },
            ],
            activeFrom="2026-02-01T00:00:00Z",
            activeUntil="2026-01-01T00:00:00Z",
        )
    )
    expected = [
        "conditions.all[0].value: gt compares with a number or an ISO date",
        "conditions.all[1].fact: a dotted fact name such as customer.userType is required",
        "conditions.all[1].value: in needs a non-empty list",
        "conditions.all[2].any: must be a non-empty list of conditions",
        "conditions.all[3].not.value: exists takes true or false",
        "conditions.all[4].value: eq compares with a single value, not a list",
        "conditions.all[5].value: starts_with needs a string",
        "actions[1]: a delay needs days, hours, minutes or seconds",
        "actions[2].conditions.value: eq needs a value",
        "actions[2].then[0]: a delay needs days, hours, minutes or seconds",
        "activeUntil: must be after activeFrom",
    ]
    for reason in expected:
        assert reason in got, (reason, got)
    assert any(r.startswith("conditions.all[6]: unknown keys ['extra']") for r in got)
    assert any(r.startswith("actions[0].subject: template error, line 1") for r in got)


def test_deep_branches_and_too_many_actions_are_refused() -> None:
    deep: dict[str, Any] = {"type": "notify", "title": "x"}
    for _ in range(rules.MAX_BRANCH_DEPTH + 2):
        deep = {"type": "if", "conditions": {"fact": "a", "op": "exists"}, "then": [deep]}
    assert any("branches nest deeper" in r for r in reasons(rule(actions=[deep])))
    many = [{"type": "award_points", "points": 1}] * (rules.MAX_ACTIONS + 1)
    assert any("at most 50 actions" in r for r in reasons(rule(actions=many)))
    assert reasons("nope") == ["not a mapping"]


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "event", "event": "usage.*"},
        {"type": "event", "event": "health.level_changed"},
        {"type": "no_progress", "days": 3, "stage": "setup"},
        {"type": "no_usage", "days": 7},
        {"type": "after_signup", "days": 1},
        {"type": "date_property", "property": "renewalDate", "days": -30},
    ],
)
def test_every_trigger_kind_is_accepted(trigger: dict[str, Any]) -> None:
    parsed = parse_rule(rule(trigger=trigger))
    assert parsed.trigger_key == (
        trigger["event"] if trigger["type"] == "event" else f"time:{trigger['type']}"
    )


def test_bad_triggers_are_refused() -> None:
    assert any("trigger.event.event" in r for r in reasons(rule(trigger={"type": "event"})))
    assert any(
        "trigger.no_progress.days" in r
        for r in reasons(rule(trigger={"type": "no_progress", "days": 0}))
    )
    assert any(
        "trigger.event.event" in r
        for r in reasons(rule(trigger={"type": "event", "event": "Task Completed"}))
    )


# --- conditions --------------------------------------------------------------------------------

FACTS = {
    "customer": {
        "name": "Ada",
        "email": "ada@example.com",
        "userType": "enterprise",
        "tags": ["vip", "beta"],
        "properties": {"plan": "pro", "seats": 12, "renewalDate": "2026-07-01"},
        "signedUpAt": datetime(2026, 5, 1, tzinfo=UTC),
    },
    "workflow": {"progress": 40.0, "points": 120, "status": "ACTIVE", "currentStage": "setup"},
    "event": {"type": "health.level_changed", "payload": {"level": "at_risk", "score": 41}},
}


@pytest.mark.parametrize(
    ("fact", "op", "value", "held", "seen"),
    [
        ("customer.userType", "eq", "enterprise", True, "enterprise"),
        ("customer.userType", "ne", "enterprise", False, "enterprise"),
        ("workflow.points", "eq", "120", False, 120),  # typed: a string is not a number
        ("workflow.points", "ne", "120", True, 120),
        ("workflow.progress", "gt", 39.5, True, 40.0),
        ("workflow.progress", "gte", 40, True, 40.0),
        ("workflow.progress", "lt", 40, False, 40.0),
        ("workflow.progress", "lte", 40, True, 40.0),
        ("customer.name", "gt", 3, False, "Ada"),
        ("customer.signedUpAt", "lt", "2026-05-02", True, "2026-05-01T00:00:00+00:00"),
        ("customer.properties.renewalDate", "gte", "2026-07-01T00:00:00Z", True, "2026-07-01"),
        ("workflow.currentStage", "in", ["setup", "features"], True, "setup"),
        ("workflow.currentStage", "not_in", ["setup"], False, "setup"),
        ("customer.tags", "contains", "vip", True, ["vip", "beta"]),
        ("customer.email", "contains", "@example", True, "ada@example.com"),
        ("customer.email", "starts_with", "ada@", True, "ada@example.com"),
        ("customer.properties.plan", "exists", None, True, "pro"),
        ("customer.properties.missing", "exists", False, True, None),
        ("customer.properties.missing", "eq", "x", False, None),
        ("event.payload.level", "eq", "at_risk", True, "at_risk"),
        ("event.payload.score", "lt", 50, True, 41),
    ],
)
def test_each_operator_with_typed_values(
    fact: str, op: str, value: Any, held: bool, seen: Any
) -> None:
    condition = {"fact": fact, "op": op, "value": value}
    assert conditions.problems(condition) == []
    result = conditions.evaluate(condition, FACTS)
    assert result.held is held, result
    assert result.flatten()[0]["seen"] == seen


def test_nested_groups_explain_every_condition() -> None:
    tree = {
        "all": [
            {"fact": "customer.userType", "op": "eq", "value": "enterprise"},
            {
                "any": [
                    {"fact": "workflow.progress", "op": "gte", "value": 90},
                    {"not": {"fact": "customer.tags", "op": "contains", "value": "churned"}},
                ]
            },
        ]
    }
    result = conditions.evaluate(tree, FACTS)
    assert result.held
    rows = result.flatten()
    assert [(r["path"], r["kind"], r["held"]) for r in rows] == [
        ("$", "all", True),
        ("$.all[0]", "fact", True),
        ("$.all[1]", "any", True),
        ("$.all[1].any[0]", "fact", False),
        ("$.all[1].any[1]", "not", True),
        ("$.all[1].any[1].not", "fact", False),
    ]
    assert rows[3]["seen"] == 40.0 and rows[3]["reason"] == "40.0 gte 90: no"
    assert rows[0]["reason"] == "2 of 2 held"
    assert conditions.evaluate(None, FACTS).held


# --- matching, limits, loops -------------------------------------------------------------------


def test_event_patterns() -> None:
    assert rules.event_matches("task.completed", "task.completed")
    assert not rules.event_matches("task.completed", "task.completed_late")
    assert rules.event_matches("usage.*", "usage.report_exported")
    assert not rules.event_matches("usage.*", "usages.x")
    assert rules.event_matches("*", "anything")


def test_skip_reasons_for_window_cooldown_and_max_runs() -> None:
    r = parse_rule(
        rule(
            cooldownSeconds=3600,
            maxRuns=2,
            activeFrom="2026-05-01T00:00:00Z",
            activeUntil="2026-07-01T00:00:00Z",
        )
    )
    assert rules.skip_reason(r, now=NOW, last_fired_at=None, runs=0) is None
    early = NOW - timedelta(days=60)
    assert rules.skip_reason(r, now=early, last_fired_at=None, runs=0) == "before its active window"
    late = NOW + timedelta(days=60)
    assert rules.skip_reason(r, now=late, last_fired_at=None, runs=0) == "after its active window"
    cooling = rules.skip_reason(r, now=NOW, last_fired_at=NOW - timedelta(minutes=10), runs=1)
    assert cooling is not None and cooling.startswith("cooling down until 2026-06-01T12:50")
    assert rules.skip_reason(r, now=NOW, last_fired_at=NOW - timedelta(hours=2), runs=1) is None
    assert rules.skip_reason(r, now=NOW, last_fired_at=None, runs=2) == "max runs reached (2 of 2)"


def test_loop_depth_is_read_from_the_payload_and_limited() -> None:
    assert rules.loop_depth({}) == 0
    assert rules.loop_depth({"automation": {"depth": 2, "rule": "r"}}) == 2
    assert rules.loop_depth({"automation": {"depth": "2"}}) == 0
    assert not rules.over_loop_limit(rules.MAX_LOOP_DEPTH - 1)
    assert rules.over_loop_limit(rules.MAX_LOOP_DEPTH)


# --- the action walk ---------------------------------------------------------------------------

STALLED = parse_rule(
    rule(
        actions=[
            {"type": "notify", "to": "operators", "title": "{{ customer.name }} stalled"},
            {"type": "delay", "days": 2},
            {
                "type": "if",
                "conditions": {"fact": "workflow.status", "op": "eq", "value": "ACTIVE"},
                "then": [
                    {"type": "send_email", "subject": "Need help?", "text": "Hi"},
                    {
                        "type": "if",
                        "conditions": {"fact": "customer.userType", "op": "eq", "value": "ent"},
                        "then": [{"type": "create_task", "title": "Call them"}],
                        "else": [
                            {"type": "delay", "hours": 1},
                            {"type": "tag_customer", "tag": "x"},
                        ],
                    },
                ],
                "else": [{"type": "award_points", "points": 5}],
            },
            {"type": "untag_customer", "tag": "stalled"},
        ]
    )
)


def paths(p: rules.Plan) -> list[str]:
    return [s.path for s in p.steps]


def test_plan_stops_at_a_delay_and_resumes_after_it() -> None:
    first = plan(STALLED.actions, FACTS)
    assert paths(first) == ["0"] and first.wait is not None and first.wait.path == "1"
    active = {"workflow": {"status": "ACTIVE"}, "customer": {"userType": "smb"}}
    second = plan(STALLED.actions, active, after="1", decided=first.branches)
    assert paths(second) == ["2.then.0"]
    assert second.wait is not None and second.wait.path == "2.then.1.else.0"
    assert second.branches == {"2": True, "2.then.1": False}
    assert second.explanations["2"][0]["seen"] == "ACTIVE"
    # After the inner delay the decided branches hold even if the facts changed meanwhile.
    changed = {"workflow": {"status": "COMPLETED"}, "customer": {"userType": "ent"}}
    third = plan(STALLED.actions, changed, after=second.wait.path, decided=second.branches)
    assert paths(third) == ["2.then.1.else.1", "3"] and third.wait is None


def test_plan_takes_the_else_branch_when_conditions_fail() -> None:
    done = {"workflow": {"status": "COMPLETED"}}
    p = plan(STALLED.actions, done, after="1")
    assert paths(p) == ["2.else.0", "3"] and p.branches == {"2": False}
    assert isinstance(rules.at_path(STALLED.actions, "2.else.0"), rules.AwardPoints)
    assert isinstance(rules.at_path(STALLED.actions, "2.then.1.then.0"), rules.CreateTask)


def test_retry_schedule_is_svix_with_jitter_and_a_scale() -> None:
    base = [rules.next_attempt_delay(n, jitter=0) for n in range(8)]
    assert base == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert rules.next_attempt_delay(8) is None
    low = rules.next_attempt_delay(2, rand=lambda: 0.0)
    high = rules.next_attempt_delay(2, rand=lambda: 0.999999)
    assert low == pytest.approx(240) and high == pytest.approx(360, rel=1e-3)
    assert rules.next_attempt_delay(6, scale=0.001, jitter=0) == pytest.approx(36)


def test_the_compiled_check_agrees_with_the_explained_evaluation() -> None:
    cases = [
        {"fact": f, "op": op, "value": v}
        for f in (
            "customer.userType",
            "workflow.points",
            "workflow.progress",
            "customer.tags",
            "customer.signedUpAt",
            "customer.properties.seats",
            "nope.nothing",
        )
        for op, v in (
            ("eq", "enterprise"),
            ("ne", "enterprise"),
            ("eq", 120),
            ("ne", 120),
            ("in", ["enterprise", "smb"]),
            ("not_in", ["smb"]),
            ("gt", 39.5),
            ("lte", 40),
            ("gte", "2026-04-30"),
            ("contains", "vip"),
            ("starts_with", "ent"),
            ("exists", None),
            ("exists", False),
            ("eq", True),
        )
    ]
    trees = [*cases, {"all": cases[:5]}, {"any": cases[5:12]}, {"not": cases[3]}, None]
    for tree in trees:
        compiled = conditions.compile_condition(tree)
        assert compiled(FACTS) == conditions.evaluate(tree, FACTS).held, tree


def test_discriminators_name_a_fact_and_the_values_a_rule_needs() -> None:
    seg = {"fact": "customer.userType", "op": "eq", "value": "enterprise"}
    assert conditions.discriminator(seg) == ("customer.userType", frozenset({"enterprise"}))
    both = {
        "all": [
            {"fact": "workflow.progress", "op": "lt", "value": 50},
            {"fact": "event.payload.level", "op": "in", "value": ["at_risk", "critical"]},
        ]
    }
    assert conditions.discriminator(both) == (
        "event.payload.level",
        frozenset({"at_risk", "critical"}),
    )
    assert conditions.discriminator({"any": [seg]}) is None
    assert conditions.discriminator({"not": seg}) is None
    assert conditions.discriminator({"fact": "workflow.points", "op": "eq", "value": 3}) is None
    assert conditions.discriminator(None) is None
