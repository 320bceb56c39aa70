"""Pure rules of usage ingestion: what makes an event acceptable, and how events roll up."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

MAX_BATCH = 1000
MAX_PROPERTIES_BYTES = 8 * 1024
MAX_DEPTH = 5
MAX_KEY_LENGTH = 200
FUTURE_TOLERANCE = timedelta(minutes=5)
NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


class ItemStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


class Reject(StrEnum):
    """Stable codes of a rejected item."""

    NOT_FOUND = "NOT_FOUND"
    MALFORMED_ITEM = "MALFORMED_ITEM"
    INVALID_CUSTOMER = "INVALID_CUSTOMER"
    INVALID_NAME = "INVALID_NAME"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    INVALID_OCCURRED_AT = "INVALID_OCCURRED_AT"
    OCCURRED_IN_FUTURE = "OCCURRED_IN_FUTURE"
    OUTSIDE_RETENTION = "OUTSIDE_RETENTION"
    INVALID_PROPERTIES = "INVALID_PROPERTIES"
    PROPERTIES_TOO_LARGE = "PROPERTIES_TOO_LARGE"
    PROPERTIES_TOO_DEEP = "PROPERTIES_TOO_DEEP"


@dataclass(slots=True)
class EventIn:
    """One event as a caller sent it: a customer by our id or by the organization's own id."""

    name: str
    occurred_at: datetime | str  # text as sent over the API, parsed per item
    idempotency_key: str
    customer_id: str | None = None
    external_id: str | None = None
    properties: Any = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one item was refused."""

    code: Reject
    reason: str


def depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0, `{}` is 1)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_properties(properties: Any) -> str | Rejection:
    """The properties as compact JSON text, or why they are refused."""
    if properties is None or properties == {}:
        return "{}"
    if not isinstance(properties, dict):
        return Rejection(Reject.INVALID_PROPERTIES, "`properties` must be a JSON object.")
    if depth(properties) > MAX_DEPTH:
        return Rejection(
            Reject.PROPERTIES_TOO_DEEP, f"`properties` nests deeper than {MAX_DEPTH} levels."
        )
    try:
        text = _COMPACT.encode(properties)
    except (TypeError, ValueError) as exc:
        return Rejection(Reject.INVALID_PROPERTIES, f"`properties` is not JSON: {exc}.")
    if "\\u0000" in text:  # PostgreSQL refuses NUL characters in jsonb
        return Rejection(Reject.INVALID_PROPERTIES, "`properties` may not contain NUL characters.")
    if len(text) * 4 <= MAX_PROPERTIES_BYTES:  # at most 4 bytes a character: small enough
        return text
    size = len(text.encode())
    if size > MAX_PROPERTIES_BYTES:
        return Rejection(
            Reject.PROPERTIES_TOO_LARGE,
            f"`properties` is {size} bytes; the limit is {MAX_PROPERTIES_BYTES}.",
        )
    return text


_FIELDS = {
    "customerId": "customer_id",
    "externalId": "external_id",
    "name": "name",
    "occurredAt": "occurred_at",
    "idempotencyKey": "idempotency_key",
    "properties": "properties",
}


def event_from_json(item: Any) -> EventIn | Rejection:
    """One item of a batch as sent (a JSON object with the fields of `EventIn` in
    camelCase), or why its shape is refused."""
    if type(item) is not dict:
        return Rejection(Reject.MALFORMED_ITEM, "Each event must be a JSON object.")
    if not _FIELDS.keys() >= item.keys():
        unknown = [k for k in item if k not in _FIELDS]
        return Rejection(Reject.MALFORMED_ITEM, f"Unknown field(s): {', '.join(unknown)[:200]}.")
    customer_id, external_id = item.get("customerId"), item.get("externalId")
    for key, value in (("customerId", customer_id), ("externalId", external_id)):
        if value is not None and type(value) is not str:
            return Rejection(Reject.INVALID_CUSTOMER, f"`{key}` must be a string.")
    name, at, idempotency_key = item.get("name"), item.get("occurredAt"), item.get("idempotencyKey")
    if type(name) is not str or type(at) is not str or type(idempotency_key) is not str:
        for key in ("name", "occurredAt", "idempotencyKey"):
            if not isinstance(item.get(key), str):
                return Rejection(
                    Reject.MALFORMED_ITEM, f"`{key}` is required and must be a string."
                )
    return EventIn(name, at, idempotency_key, customer_id, external_id, item.get("properties"))  # type: ignore[arg-type]


def occurred_at_of(value: datetime | str) -> datetime | Rejection:
    """The time an event happened (ISO 8601 with a UTC offset), or why it is refused."""
    if isinstance(value, str):
        sent = value
        try:
            value = datetime.fromisoformat(sent)
        except ValueError:
            return Rejection(
                Reject.INVALID_OCCURRED_AT,
                f"`occurredAt` {sent[:40]!r} is not an ISO 8601 time, e.g. 2024-05-01T09:30:00Z.",
            )
    if value.tzinfo is None or value.utcoffset() is None:
        return Rejection(Reject.INVALID_OCCURRED_AT, "`occurredAt` needs a UTC offset.")
    return value


@dataclass(frozen=True, slots=True)
class Window:
    """The times an event may have happened at, for one batch or file."""

    earliest: datetime
    latest: datetime
    retention_days: int

    @classmethod
    def at(cls, now: datetime, retention_days: int) -> Window:
        return cls(
            retention_start(now=now, retention_days=retention_days),
            now + FUTURE_TOLERANCE,
            retention_days,
        )


def check_fields(
    customer_id: str | None,
    external_id: str | None,
    name: str,
    occurred_at: datetime | str,
    idempotency_key: str,
    window: Window,
) -> datetime | Rejection:
    """When an event happened, or why it cannot be stored (apart from its customer and
    properties); the one check of the API and of file imports."""
    named = customer_id if external_id is None else external_id
    if (customer_id is None) == (external_id is None) or "\x00" in (named or ""):
        return Rejection(
            Reject.INVALID_CUSTOMER,
            "Name the customer by `customerId` or `externalId`, one of them.",
        )
    if not NAME.match(name):
        return Rejection(
            Reject.INVALID_NAME, f"Event name {name[:80]!r} must match [a-z][a-z0-9_.]{{0,63}}."
        )
    key = idempotency_key
    if not key or len(key) > MAX_KEY_LENGTH or key.strip() != key or "\x00" in key:
        return Rejection(
            Reject.INVALID_IDEMPOTENCY_KEY,
            f"`idempotencyKey` must be 1-{MAX_KEY_LENGTH} characters without surrounding spaces.",
        )
    at = occurred_at_of(occurred_at)
    if isinstance(at, Rejection):
        return at
    if at > window.latest:
        return Rejection(
            Reject.OCCURRED_IN_FUTURE, "`occurredAt` is more than 5 minutes in the future."
        )
    if at < window.earliest:
        return Rejection(
            Reject.OUTSIDE_RETENTION,
            f"`occurredAt` is older than the {window.retention_days}-day retention window.",
        )
    return at


def check_event(event: EventIn, *, now: datetime, retention_days: int) -> Rejection | None:
    """Why `event` cannot be stored (apart from its customer and properties), or None."""
    checked = check_fields(
        event.customer_id,
        event.external_id,
        event.name,
        event.occurred_at,
        event.idempotency_key,
        Window.at(now, retention_days),
    )
    return checked if isinstance(checked, Rejection) else None


def retention_start(*, now: datetime, retention_days: int) -> datetime:
    """The oldest `occurredAt` still kept."""
    return now - timedelta(days=retention_days)


@dataclass
class DayCount:
    """Running totals of one (customer, UTC day, event name)."""

    count: int
    first_at: datetime
    last_at: datetime


RollupKey = tuple[Any, date, str]


def roll_up(events: Iterable[tuple[Any, str, datetime]]) -> dict[RollupKey, DayCount]:
    """Counts per (customer, UTC day, name) of `(customer, name, occurred_at)` triples."""
    days: dict[RollupKey, DayCount] = {}
    for customer, name, at in events:
        key = (customer, at.astimezone(UTC).date(), name)
        found = days.get(key)
        if found is None:
            days[key] = DayCount(1, at, at)
        else:
            found.count += 1
            found.first_at = min(found.first_at, at)
            found.last_at = max(found.last_at, at)
    return days
