"""The two walks of a decoded JSON body agree: `within` (no paths) passes exactly the bodies
the path-following walk that words refusals passes, for every limit."""

from __future__ import annotations

import random

import pytest

from app.graphql.requests import RequestLimits, RequestRefused, _refuse_shape, check_shape, within

SCALARS = (1, 2.5, None, True, "", "ab", "x" * 9, "a\x00b")


def _value(rng: random.Random, depth: int) -> object:
    roll = rng.random()
    if depth > 5 or roll < 0.3:
        return rng.choice(SCALARS)
    if roll < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ("query", "variables", "input", "a")
    return {rng.choice(keys) + str(n % 2): _value(rng, depth + 1) for n in range(rng.randint(0, 3))}


def _refused(value: object, limits: RequestLimits) -> bool:
    try:
        _refuse_shape(value, limits)
    except RequestRefused:
        return True
    return False


def test_within_passes_what_the_worded_walk_passes() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        value = _value(rng, 0)
        if isinstance(value, dict) and rng.random() < 0.4:
            value["query"] = rng.choice(("q" * 12, "q\x00", "query"))
        limits = RequestLimits(1, rng.randint(0, 4), rng.randint(0, 8), rng.randint(0, 3), 1)
        assert within(value, limits) is not _refused(value, limits), (value, limits)


def test_a_refusal_still_names_the_item() -> None:
    limits = RequestLimits(1, 8, 4, 8, 1)
    body = {"query": "q" * 50, "variables": {"input": {"name": "too long"}}}
    with pytest.raises(RequestRefused) as refused:
        check_shape(body, limits)
    assert refused.value.details == {"field": "variables.input.name"}
