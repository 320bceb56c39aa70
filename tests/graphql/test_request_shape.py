"""A body out of bounds is refused naming the item at fault."""

from __future__ import annotations

import pytest

from app.graphql.requests import RequestLimits, RequestRefused, check_shape


def test_a_refusal_still_names_the_item() -> None:
    limits = RequestLimits(1, 8, 4, 8, 1)
    body = {"query": "q" * 50, "variables": {"input": {"name": "too long"}}}
    with pytest.raises(RequestRefused) as refused:
        check_shape(body, limits)
    assert refused.value.details == {"field": "variables.input.name"}
