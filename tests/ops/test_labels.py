"""Bounded metric labels and request ids, as plain functions."""

from __future__ import annotations

from app.ops import metrics
from app.ops.logs import request_id_of
from app.ops.middleware import route_label


def test_operation_names_are_bounded() -> None:
    assert metrics.operation_label(None) == "anonymous"
    assert metrics.operation_label("") == "anonymous"
    assert metrics.operation_label("x" * 300) == "x" * 64
    for i in range(metrics.MAX_OPERATION_NAMES + 50):
        metrics.operation_label(f"Op{i}")
    assert len(metrics._names) <= metrics.MAX_OPERATION_NAMES
    assert metrics.operation_label("NeverSeenBefore") == "other"
    assert metrics.operation_label("Op0") in ("Op0", "other")


def test_routes_are_bounded() -> None:
    assert route_label("/graphql") == "/graphql"
    assert route_label("/static/vendor/x.js") == "/static"
    assert route_label("/graphqlx") == "other"
    assert route_label("/customers/123") == "other"


def test_request_ids_from_proxies_are_kept_only_when_sane() -> None:
    assert request_id_of("abc-123_x.y:z") == "abc-123_x.y:z"
    made = request_id_of("bad id with spaces")
    assert made != "bad id with spaces" and len(made) == 32
    assert len(request_id_of("a" * 200)) == 32
    assert request_id_of(None) != request_id_of(None)
