"""The customers list in SQL: each filter on an index that also holds the sort key, keyset
pages, and a count that is only run when asked and stays cheap at any size.

Indexes (migration `performance`): (organization_id, <filter>, created_at) for user type,
acquisition channel and workflow status (mirrored on the customer row by the engine), and
pg_trgm GIN indexes on name and email for the search. Health filters and the health order
use `health_score`'s (organization_id, score, customer_id) and (organization_id, level, score,
customer_id), so a level filter in a health order walks that level's scores only.

Orders: signup order (created_at, id), or by health score (score, id) ascending or
descending; customers not scored yet come after every scored one, in id order. A cursor
carries its order, so a cursor of one order is refused by another.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.customers.models import Customer
from app.db import transaction
from app.errors import ValidationFailed
from app.kit.pagination import clamp_first, decode_cursor, encode_cursor
from app.onboarding.states import WorkflowStatus

EXACT_COUNT_LIMIT = 10_000
"""Counts up to this many rows are exact (an index range of at most this size); above it the
count is the planner's estimate, and says so."""


async def _rows(sql: str, args: list[Any]) -> list[dict[str, Any]]:
    """A list statement's rows, planned for its own values: a prepared statement run five
    times may switch to a generic plan that takes every organization for an average one, and
    scans all of a million-customer organization (a search that matches nothing) or walks the
    whole table for a small one (a count)."""
    async with transaction() as conn:
        await conn.execute_script("SET LOCAL plan_cache_mode = force_custom_plan")
        return await conn.execute_query_dict(sql, args)


@dataclass(frozen=True)
class Count:
    """How many customers match: exact, or the planner's estimate above EXACT_COUNT_LIMIT."""

    value: int
    estimated: bool


class Order(StrEnum):
    """The order of the customers list."""

    CREATED_ASC = "CREATED_ASC"
    HEALTH_ASC = "HEALTH_ASC"
    HEALTH_DESC = "HEALTH_DESC"


@dataclass(frozen=True)
class CustomerPage:
    """One page of customers with a cursor for each; `count()` runs only when called."""

    items: list[Customer]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[Count]]

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


@dataclass(frozen=True)
class HealthFilter:
    """Conditions on the current (shown) health score; scores are 0-100, bounds exclusive."""

    level: str | None = None
    below: float | None = None
    above: float | None = None

    def __bool__(self) -> bool:
        return self.level is not None or self.below is not None or self.above is not None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(
    organization_id: uuid.UUID,
    *,
    user_type: str | None,
    acquisition_channel: str | None,
    workflow_status: WorkflowStatus | None,
    search: str | None,
    signed_up_from: datetime | None = None,
    signed_up_before: datetime | None = None,
    template_version: int | None = None,
    health: HealthFilter | None = None,
    raw: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """The WHERE clause of a filtered list and its parameters ($1, $2, ...); `raw` clauses are
    SQL the caller built from validated values (they may refer to `customer`)."""
    clauses: list[str] = ["customer.organization_id = $1"]
    params: list[Any] = [organization_id]

    def add(sql: str, value: Any) -> None:
        params.append(value)
        clauses.append(sql.replace("?", f"${len(params)}"))

    if user_type:
        add("user_type = ?", user_type)
    if acquisition_channel:
        add("acquisition_channel = ?", acquisition_channel)
    if workflow_status:
        add("workflow_status = ?", workflow_status.value)
    if search:
        add("(name ILIKE ? OR email ILIKE ?)", _like(search))
    if signed_up_from:
        add("signed_up_at >= ?", signed_up_from)
    if signed_up_before:
        add("signed_up_at < ?", signed_up_before)
    if template_version is not None:
        add(
            "EXISTS (SELECT 1 FROM workflow w JOIN workflow_template t ON t.id = w.template_id"
            " WHERE w.customer_id = customer.id AND w.organization_id = customer.organization_id"
            " AND t.version = ?)",
            template_version,
        )
    if health:
        scored = ["h.organization_id = customer.organization_id", "h.customer_id = customer.id"]
        for sql, value in (
            ("h.level = ?", health.level),
            ("h.score < ?::float8", health.below),
            ("h.score > ?::float8", health.above),
        ):
            if value is not None:
                params.append(value)
                scored.append(sql.replace("?", f"${len(params)}"))
        clauses.append(f"EXISTS (SELECT 1 FROM health_score h WHERE {' AND '.join(scored)})")
    clauses.extend(f"({sql})" for sql in raw)
    return " AND ".join(clauses), params


async def _count(where: str, params: list[Any]) -> Count:
    rows = await _rows(
        f"SELECT count(*) AS n FROM (SELECT 1 FROM customer WHERE {where}"
        f" LIMIT {EXACT_COUNT_LIMIT + 1}) AS bounded",
        params,
    )
    exact = int(rows[0]["n"])
    if exact <= EXACT_COUNT_LIMIT:
        return Count(exact, estimated=False)
    plan = await _rows(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM customer WHERE {where}", params)
    document = next(iter(plan[0].values()))
    estimate = int(
        (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]["Plan Rows"]
    )
    return Count(max(estimate, exact), estimated=True)


def health_cursor(order: Order, score: float | None, pk: uuid.UUID) -> str:
    """An opaque cursor of a health order: after (score, id), or among the unscored."""
    raw = json.dumps([order.value, score, str(pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_health_cursor(order: Order, cursor: str) -> tuple[float | None, uuid.UUID]:
    try:
        kind, score, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if kind != order.value or not (score is None or isinstance(score, int | float)):
            raise ValueError(kind)
        return (None if score is None else float(score)), uuid.UUID(pk)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(
            "The `after` cursor is not one this API issued for this `orderBy`; "
            "start again without `after`."
        ) from exc


async def page(
    where: str,
    params: list[Any],
    *,
    first: int | None,
    after: str | None,
    order: Order = Order.CREATED_ASC,
    health: HealthFilter | None = None,
) -> CustomerPage:
    """One page in the given order after the `after` cursor; `health` is the filter that
    `conditions` got, so a health order can walk the scores of the asked level only."""
    size = clamp_first(first)
    if order is Order.CREATED_ASC:
        items, more = await _by_created(where, params, size, after)
        cursors = [encode_cursor(c) for c in items]
    else:
        scored, more = await _by_health(where, params, size, after, order, health)
        items = [c for c, _ in scored]
        cursors = [health_cursor(order, score, c.id) for c, score in scored]

    async def count() -> Count:
        return await _count(where, params)

    return CustomerPage(
        items=items,
        cursors=cursors,
        has_next_page=more,
        has_previous_page=after is not None,
        count=count,
    )


async def _by_created(
    where: str, params: list[Any], size: int, after: str | None
) -> tuple[list[Customer], bool]:
    sql, args = where, list(params)
    if after:
        created, pk = decode_cursor(after)
        args += [created, pk]
        a, b = f"${len(args) - 1}", f"${len(args)}"
        sql += (
            f" AND customer.created_at >= {a} AND (customer.created_at, customer.id) > ({a}, {b})"
        )
    rows = await _rows(
        f"SELECT * FROM customer WHERE {sql} ORDER BY created_at, id LIMIT {size + 1}", args
    )
    return [Customer._init_from_db(**row) for row in rows[:size]], len(rows) > size


async def _by_health(
    where: str,
    params: list[Any],
    size: int,
    after: str | None,
    order: Order,
    health: HealthFilter | None,
) -> tuple[list[tuple[Customer, float | None]], bool]:
    """Scored customers by (score, id) in the order's direction, then the unscored by id.
    A level filter is put on the joined score itself, so the walk follows (organization, level,
    score, id) instead of passing over every score of other levels; with any health filter no
    unscored customer can match, so they are not looked for."""
    score, pk = _decode_health_cursor(order, after) if after else (None, None)
    found: list[tuple[Customer, float | None]] = []
    if pk is None or score is not None:
        args = list(params)
        sql = where
        if health and health.level is not None:
            args.append(health.level)
            sql += f" AND s.level = ${len(args)}"
        if pk is not None:
            args += [score, pk]
            s, i = f"${len(args) - 1}::float8", f"${len(args)}::uuid"
            sql += (
                f" AND (s.score, s.customer_id) > ({s}, {i})"
                if order is Order.HEALTH_ASC
                else f" AND (s.score, s.customer_id) < ({s}, {i})"
            )
        direction = "" if order is Order.HEALTH_ASC else " DESC"
        rows = await _rows(
            "SELECT customer.*, s.score AS health_sort_score FROM customer JOIN health_score s "
            "ON s.organization_id = customer.organization_id AND s.customer_id = customer.id "
            f"WHERE {sql} ORDER BY s.score{direction}, s.customer_id{direction} "
            f"LIMIT {size + 1}",
            args,
        )
        for row in rows:
            sort = float(row.pop("health_sort_score"))
            found.append((Customer._init_from_db(**row), sort))
        if len(found) > size:
            return found[:size], True
        pk = None
    if health:
        return found, False
    args = list(params)
    sql = where + (
        " AND NOT EXISTS (SELECT 1 FROM health_score s WHERE s.organization_id = "
        "customer.organization_id AND s.customer_id = customer.id)"
    )
    if pk is not None:
        args.append(pk)
        sql += f" AND customer.id > ${len(args)}::uuid"
    rows = await _rows(
        f"SELECT * FROM customer WHERE {sql} ORDER BY customer.id LIMIT {size + 1 - len(found)}",
        args,
    )
    found += [(Customer._init_from_db(**row), None) for row in rows]
    return found[:size], len(found) > size
