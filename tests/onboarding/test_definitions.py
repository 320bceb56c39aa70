"""Template definitions: the bundled default parses, broken ones are refused with reasons."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import pytest

from app.errors import InvalidTemplate
from app.onboarding.definitions import TemplateDef, load_text, parse_definition


def default_text() -> str:
    return (resources.files("app.onboarding") / "templates" / "default.yaml").read_text()


def t(key: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "title": f"Task {key}", "depends_on": list(depends_on), **extra}


def definition(*stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": "tpl", "name": "Template", "stages": list(stages), **extra}


def s(key: str, *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "tasks": list(tasks), **extra}


def reasons_of(raw: Any) -> list[str]:
    with pytest.raises(InvalidTemplate) as caught:
        parse_definition(raw)
    err = caught.value
    assert err.code == "INVALID_TEMPLATE"
    reasons = err.details["reasons"]
    assert isinstance(reasons, list) and reasons
    assert all(isinstance(r, str) for r in reasons)
    if reasons != ["not a mapping"]:
        # the message carries every reason so a caller sees them without the details
        assert all(r in err.message for r in reasons)
    return reasons


# --------------------------------------------------------------------------------------------
# The bundled default
# --------------------------------------------------------------------------------------------


def test_the_bundled_default_parses() -> None:
    template = parse_definition(load_text(default_text()))
    assert isinstance(template, TemplateDef)
    assert template.key == "default"
    names = [stage.name for stage in template.stages]
    assert len(names) >= 4
    assert names[:4] == ["Welcome", "Setup", "Features", "Mastery"]
    tasks = [task for _, task in template.all_tasks()]
    assert len(tasks) >= 10
    assert len({task.key for task in tasks}) == len(tasks)


def test_the_bundled_default_has_required_optional_dependencies_and_rewards() -> None:
    template = parse_definition(load_text(default_text()))
    tasks = {task.key: task for _, task in template.all_tasks()}
    assert any(not task.required for task in tasks.values())
    assert tasks["complete_profile"].depends_on == ["verify_email"]
    assert tasks["add_client"].success_criterion is not None
    assert tasks["add_client"].success_criterion.event == "client_added"
    assert tasks["verify_email"].help[0].kind == "article"
    by_key = {stage.key: stage for stage in template.stages}
    assert by_key["features"].unlock.min_points == 150
    assert by_key["mastery"].unlock.days_since_signup == 3
    assert all(stage.reward.badge is not None for stage in template.stages)
    assert [stage.reward.badge.key for stage in template.stages if stage.reward.badge] == [
        "first-steps",
        "all-set",
        "power-user",
        "mastermind",
    ]


def test_the_default_round_trips_through_its_json_dump() -> None:
    template = parse_definition(load_text(default_text()))
    assert parse_definition(template.model_dump(mode="json")) == template


def test_load_text_reads_json_too() -> None:
    raw = load_text(
        '{"key": "j", "name": "J", "stages": [{"key": "a", "name": "A", '
        '"tasks": [{"key": "x", "title": "X"}]}]}'
    )
    template = parse_definition(raw)
    assert [task.key for _, task in template.all_tasks()] == ["x"]
    assert template.stages[0].tasks[0].required is True


def test_a_minimal_valid_definition_parses() -> None:
    raw = definition(s("one", t("a"), t("b", "a")), s("two", t("c", "a", "b")))
    template = parse_definition(raw)
    assert [stage.key for stage in template.stages] == ["one", "two"]
    assert template.stages[1].tasks[0].depends_on == ["a", "b"]


# --------------------------------------------------------------------------------------------
# Structural problems
# --------------------------------------------------------------------------------------------


def test_two_task_cycle() -> None:
    reasons = reasons_of(definition(s("one", t("a", "b"), t("b", "a"))))
    assert reasons == ["dependency cycle: a -> b -> a"]


def test_longer_cycle() -> None:
    raw = definition(s("one", t("start"), t("a", "c", "start"), t("b", "a"), t("c", "b")))
    reasons = reasons_of(raw)
    assert len(reasons) == 1
    assert reasons[0].startswith("dependency cycle: ")
    path = reasons[0].removeprefix("dependency cycle: ").split(" -> ")
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == ["a", "b", "c"]
    assert "start" not in path


def test_cycle_across_stages_is_also_a_later_stage_dependency() -> None:
    raw = definition(s("one", t("a", "b")), s("two", t("b", "a")))
    reasons = reasons_of(raw)
    assert "task 'a' depends on 'b', which is in a later stage" in reasons
    assert "dependency cycle: a -> b -> a" in reasons


def test_self_dependency() -> None:
    reasons = reasons_of(definition(s("one", t("a", "a"))))
    assert reasons == ["task 'a' depends on itself"]


def test_unknown_dependency() -> None:
    reasons = reasons_of(definition(s("one", t("a"), t("b", "a", "nope"))))
    assert reasons == ["task 'b' depends on unknown task 'nope'"]


def test_dependency_on_a_later_stage() -> None:
    reasons = reasons_of(definition(s("one", t("a", "b")), s("two", t("b"))))
    assert reasons == ["task 'a' depends on 'b', which is in a later stage"]


def test_unknown_task_in_unlock_tasks_completed() -> None:
    raw = definition(s("one", t("a")), s("two", t("b"), unlock={"tasks_completed": ["ghost"]}))
    assert reasons_of(raw) == ["stage 'two' waits for unknown task 'ghost'"]


@pytest.mark.parametrize("waited", ["b", "c"])
def test_unlock_tasks_completed_of_the_same_or_a_later_stage(waited: str) -> None:
    raw = definition(
        s("one", t("a")),
        s("two", t("b"), unlock={"tasks_completed": [waited]}),
        s("three", t("c")),
    )
    reasons = reasons_of(raw)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"stage 'two' waits for task {waited!r}, which can only be done")


def test_unlock_tasks_completed_of_an_earlier_stage_is_fine() -> None:
    raw = definition(s("one", t("a")), s("two", t("b"), unlock={"tasks_completed": ["a"]}))
    assert parse_definition(raw).stages[1].unlock.tasks_completed == ["a"]


def test_duplicate_task_keys_within_and_across_stages() -> None:
    raw = definition(s("one", t("a"), t("a")), s("two", t("b"), t("c")), s("three", t("b")))
    reasons = reasons_of(raw)
    assert "task key 'a' is used more than once" in reasons
    assert "task key 'b' is used more than once" in reasons
    assert not any("'c'" in r for r in reasons)


def test_a_key_used_three_times_is_reported_once() -> None:
    reasons = reasons_of(definition(s("one", t("a"), t("a"), t("a"))))
    assert reasons.count("task key 'a' is used more than once") == 1


def test_duplicate_stage_keys() -> None:
    reasons = reasons_of(definition(s("one", t("a")), s("one", t("b"))))
    assert reasons == ["stage key 'one' is used more than once"]


def test_every_structural_problem_is_reported_at_once() -> None:
    raw = definition(
        s("one", t("a", "a"), t("b", "nope")),
        s("one", t("c", "d"), t("d", "c"), unlock={"tasks_completed": ["ghost"]}),
    )
    reasons = reasons_of(raw)
    assert set(reasons) == {
        "stage key 'one' is used more than once",
        "task 'a' depends on itself",
        "task 'b' depends on unknown task 'nope'",
        "stage 'one' waits for unknown task 'ghost'",
        "dependency cycle: c -> d -> c",
    }


# --------------------------------------------------------------------------------------------
# Shape problems (typos, bad keys, bad values)
# --------------------------------------------------------------------------------------------


def default_raw() -> dict[str, Any]:
    raw = load_text(default_text())
    assert isinstance(raw, dict)
    return copy.deepcopy(raw)


@pytest.mark.parametrize(
    ("edit", "location"),
    [
        (lambda d: d.update(stagse=[]), "stagse"),
        (lambda d: d["stages"][0].update(rewrad={"points": 1}), "stages.0.rewrad"),
        (lambda d: d["stages"][1]["tasks"][0].update(requried=False), "stages.1.tasks.0.requried"),
        (
            lambda d: d["stages"][2]["tasks"][1].update(dependson=["x"]),
            "stages.2.tasks.1.dependson",
        ),
        (
            lambda d: d["stages"][2]["unlock"].update(min_point=10),
            "stages.2.unlock.min_point",
        ),
        (
            lambda d: d["stages"][0]["reward"]["badge"].update(colour="red"),
            "stages.0.reward.badge.colour",
        ),
        (
            lambda d: d["stages"][0]["tasks"][0]["help"][0].update(link="x"),
            "stages.0.tasks.0.help.0.link",
        ),
    ],
)
def test_unknown_fields_are_refused_with_their_location(edit: Any, location: str) -> None:
    raw = default_raw()
    edit(raw)
    reasons = reasons_of(raw)
    assert len(reasons) == 1
    assert reasons[0].startswith(location + ": ")
    assert "Extra inputs are not permitted" in reasons[0]


@pytest.mark.parametrize(
    "bad_key", ["Verify", "verify email", "1st", "_x", "-x", "a" * 81, "", "ünïcode", "a.b"]
)
def test_bad_task_keys(bad_key: str) -> None:
    reasons = reasons_of(definition(s("one", t(bad_key))))
    assert len(reasons) == 1
    assert reasons[0].startswith("stages.0.tasks.0.key: ")


@pytest.mark.parametrize("good_key", ["a", "verify_email", "first-steps", "x9", "a" * 80])
def test_good_task_keys(good_key: str) -> None:
    template = parse_definition(definition(s("one", t(good_key))))
    assert template.stages[0].tasks[0].key == good_key


def test_bad_stage_template_and_badge_keys() -> None:
    raw = definition(
        s("Stage One", t("a"), reward={"badge": {"key": "Gold Star", "name": "Gold"}}),
    )
    raw["key"] = "My Template"
    reasons = reasons_of(raw)
    locations = sorted(r.split(": ", 1)[0] for r in reasons)
    assert locations == ["key", "stages.0.key", "stages.0.reward.badge.key"]


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (definition(), "stages"),
        (definition(s("one")), "stages.0.tasks"),
        (definition(s("one", t("a", points=-1))), "stages.0.tasks.0.points"),
        (definition(s("one", t("a", estimated_minutes=-5))), "stages.0.tasks.0.estimated_minutes"),
        (
            definition(s("one", t("a", help=[{"title": "x", "url": "y", "kind": "podcast"}]))),
            "stages.0.tasks.0.help.0.kind",
        ),
        (
            definition(s("one", t("a", success_criterion={"event": "e", "count": 0}))),
            "stages.0.tasks.0.success_criterion.count",
        ),
        (definition(s("one", t("a"), unlock={"min_points": -1})), "stages.0.unlock.min_points"),
        (
            definition(s("one", t("a"), unlock={"days_since_signup": -1})),
            "stages.0.unlock.days_since_signup",
        ),
        ({"key": "tpl", "stages": [s("one", t("a"))]}, "name"),
        (definition(s("one", {"key": "a"})), "stages.0.tasks.0.title"),
    ],
)
def test_bad_values_are_refused_with_their_location(raw: dict[str, Any], location: str) -> None:
    reasons = reasons_of(raw)
    assert [r.split(": ", 1)[0] for r in reasons] == [location]


@pytest.mark.parametrize("raw", [None, [], ["key", "x"], "key: default", 42, 1.5, True])
def test_non_mapping_input(raw: Any) -> None:
    assert reasons_of(raw) == ["not a mapping"]


# --------------------------------------------------------------------------------------------
# Unreadable text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "key: [unclosed",
        "stages:\n  - key: a\n   name: misaligned\n",
        '{"key": "x", "stages": [}',
        "key: 'open quote\n",
        "a: b: c",
        "\t- tab indented",
    ],
)
def test_load_text_refuses_unreadable_yaml(text: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        load_text(text)
    err = caught.value
    assert err.message.startswith("Template text is not valid YAML or JSON: ")
    reasons = err.details["reasons"]
    assert len(reasons) == 1 and reasons[0]
    assert reasons[0] in err.message


def test_load_text_of_a_scalar_is_then_refused_as_not_a_mapping() -> None:
    assert reasons_of(load_text("just a sentence")) == ["not a mapping"]
    assert reasons_of(load_text("")) == ["not a mapping"]


def test_field_errors_and_structural_problems_come_in_one_answer() -> None:
    raw = definition(
        s("welcome", t("a", points=-5), t("a"), t("b", "ghost"), t("c", "d"), t("d", "c")),
        s("empty"),
    )
    reasons = reasons_of(raw)
    assert any("points" in r and "greater than or equal to 0" in r for r in reasons), reasons
    assert any(r.startswith("stages.1.tasks") for r in reasons), reasons
    assert "task key 'a' is used more than once" in reasons
    assert "task 'b' depends on unknown task 'ghost'" in reasons
    assert any(r.startswith("dependency cycle: ") for r in reasons), reasons


def test_structural_checks_read_what_they_can_of_a_badly_typed_definition() -> None:
    raw = {
        "key": 7,
        "stages": [None, {"key": "x", "tasks": "nope"}, s("y", t("a", "a"), {"key": 3})],
    }
    reasons = reasons_of(raw)
    assert "task 'a' depends on itself" in reasons
    assert any(r.startswith("key:") for r in reasons) and any("name" in r for r in reasons)
