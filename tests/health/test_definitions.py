"""Health model definitions: the default parses, broken ones are refused with every reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.errors import InvalidHealthModel
from app.health.definitions import bundled_default, bundled_default_text, parse_model
from app.onboarding.definitions import load_text


def default_raw() -> dict[str, Any]:
    raw = load_text(bundled_default_text())
    assert isinstance(raw, dict)
    return copy.deepcopy(raw)


def reasons_of(raw: Any) -> list[str]:
    with pytest.raises(InvalidHealthModel) as caught:
        parse_model(raw)
    err = caught.value
    assert err.code == "INVALID_HEALTH_MODEL"
    reasons = err.details["reasons"]
    assert reasons and all(isinstance(r, str) for r in reasons)
    if reasons != ["not a mapping"]:
        for reason in reasons:
            assert reason in err.message
    return list(reasons)


def test_default_model_has_every_component_and_segments() -> None:
    model = bundled_default()
    keys = [k for k, _ in model.components.present()]
    assert keys == ["engagement", "adoption", "onboarding", "support", "sentiment", "billing"]
    enterprise = model.for_segment("enterprise")
    assert enterprise.components.onboarding and model.components.onboarding
    assert enterprise.components.onboarding.expected_days == 60
    assert model.components.onboarding.expected_days == 30
    assert model.for_segment("unknown") is model
    assert model.for_segment(None) is model


def test_json_text_is_accepted() -> None:
    import json

    assert parse_model(json.dumps(default_raw())) == bundled_default()


def test_every_reason_is_listed_at_once() -> None:
    raw = default_raw()
    raw["levels"] = {"healthy": 30, "at_risk": 60}
    raw["components"]["engagement"]["weight"] = -1
    raw["components"]["billing"]["failure_events"] = ["support_ticket_opened"]
    raw["segments"]["enterprise"]["components"]["support"]["window_days"] = 7
    raw["segments"]["enterprise"]["components"]["support"]["penalty"] = 500
    reasons = reasons_of(raw)
    assert any(r.startswith("components.engagement.weight") for r in reasons), reasons
    # pydantic errors stop before structural checks; fix them and see the rest
    raw["components"]["engagement"]["weight"] = 30
    reasons = reasons_of(raw)
    assert "levels: at_risk (60) must be below healthy (30)" in reasons
    assert "event 'support_ticket_opened' is used by both support and billing" in reasons
    assert any("segments.enterprise.components.support.window_days" in r for r in reasons)
    assert any(r.startswith("segments.enterprise.components.support.penalty") for r in reasons)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.pop("levels"), "levels: Field required"),
        (lambda r: r.update(components={}), "components: the model needs at least one component"),
        (
            lambda r: [c.update(weight=0) for c in r["components"].values()],
            "components: the weights must not all be zero",
        ),
        (lambda r: r["components"].update(mood={"weight": 1}), "components.mood: Extra inputs"),
        (
            lambda r: r["components"]["adoption"].update(features=["Bad Name"]),
            "components.adoption.features.0: String should match pattern",
        ),
        (
            lambda r: r["segments"].update({"Big Co": {"levels": {"healthy": 10, "at_risk": 20}}}),
            "segments: 'Big Co' is not a segment name",
        ),
        (
            lambda r: r["segments"].update(smb={"levels": {"healthy": 10, "at_risk": 20}}),
            "segments.smb.levels: at_risk (20) must be below healthy (10)",
        ),
    ],
)
def test_refusals(change: Any, expected: str) -> None:
    raw = default_raw()
    change(raw)
    reasons = reasons_of(raw)
    assert any(r.startswith(expected) for r in reasons), reasons


def test_segment_for_a_missing_component_is_refused() -> None:
    raw = default_raw()
    raw["components"].pop("billing")
    raw["segments"]["startup"]["components"]["billing"] = {"weight": 5}
    assert "segments.startup.components.billing: the model has no billing component" in reasons_of(
        raw
    )


def test_unreadable_text_and_non_mapping() -> None:
    assert reasons_of("levels: [unclosed")
    assert reasons_of("- a list") == ["not a mapping"]
