"""The pure ingestion rules, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from app.usage.rules import (
    EventIn,
    Reject,
    Rejection,
    check_event,
    depth,
    encode_properties,
    roll_up,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def event(**kw: object) -> EventIn:
    base: dict[str, object] = {
        "customer_id": "c",
        "name": "project_created",
        "occurred_at": NOW,
        "idempotency_key": "k",
    }
    return EventIn(**{**base, **kw})  # type: ignore[arg-type]


def code(e: EventIn) -> Reject | None:
    found = check_event(e, now=NOW, retention_days=400)
    return found.code if found else None


def test_names_follow_the_pattern() -> None:
    assert code(event(name="a")) is None
    assert code(event(name="billing.plan_changed")) is None
    assert code(event(name="a" * 64)) is None
    for bad in ("", "A", "1abc", "a-b", "a" * 65, "é"):
        assert code(event(name=bad)) is Reject.INVALID_NAME, bad


def test_time_window_is_five_minutes_ahead_and_the_retention_back() -> None:
    assert code(event(occurred_at=NOW + timedelta(minutes=5))) is None
    assert (
        code(event(occurred_at=NOW + timedelta(minutes=5, seconds=1))) is Reject.OCCURRED_IN_FUTURE
    )
    assert code(event(occurred_at=NOW - timedelta(days=399))) is None
    assert code(event(occurred_at=NOW - timedelta(days=401))) is Reject.OUTSIDE_RETENTION


def test_exactly_one_way_of_naming_the_customer() -> None:
    assert code(event(customer_id=None)) is Reject.INVALID_CUSTOMER
    assert code(event(external_id="e")) is Reject.INVALID_CUSTOMER
    assert code(event(customer_id=None, external_id="e")) is None


def test_idempotency_key_is_required_and_bounded() -> None:
    assert code(event(idempotency_key="")) is Reject.INVALID_IDEMPOTENCY_KEY
    assert code(event(idempotency_key=" k")) is Reject.INVALID_IDEMPOTENCY_KEY
    assert code(event(idempotency_key="k" * 201)) is Reject.INVALID_IDEMPOTENCY_KEY


def test_properties_are_an_object_of_bounded_size_and_depth() -> None:
    assert encode_properties(None) == "{}"
    assert encode_properties({"plan": "pro", "n": 2}) == '{"plan":"pro","n":2}'
    assert depth({"a": {"b": [1]}}) == 3
    five = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    assert isinstance(encode_properties(five), str)
    six = {"x": five}
    assert _code(encode_properties(six)) is Reject.PROPERTIES_TOO_DEEP
    assert _code(encode_properties([1])) is Reject.INVALID_PROPERTIES
    assert _code(encode_properties({"n": float("nan")})) is Reject.INVALID_PROPERTIES
    assert isinstance(encode_properties({"s": "x" * 8000}), str)
    assert _code(encode_properties({"s": "x" * 8200})) is Reject.PROPERTIES_TOO_LARGE


def _code(value: str | Rejection) -> Reject | None:
    return value.code if isinstance(value, Rejection) else None


def test_roll_up_counts_per_customer_utc_day_and_name() -> None:
    plus_two = timezone(timedelta(hours=2))
    late = datetime(2026, 6, 2, 1, 30, tzinfo=plus_two)  # 2026-06-01 23:30 UTC
    days = roll_up(
        [
            ("c1", "a", NOW),
            ("c1", "a", late),
            ("c1", "b", NOW),
            ("c2", "a", NOW + timedelta(days=1)),
        ]
    )
    first = days[("c1", date(2026, 6, 1), "a")]
    assert (first.count, first.first_at, first.last_at) == (2, NOW, late)
    assert days[("c1", date(2026, 6, 1), "b")].count == 1
    assert days[("c2", date(2026, 6, 2), "a")].count == 1
    assert len(days) == 3
