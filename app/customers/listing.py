"""The customers list in SQL: each filter on an index that also holds the sort key, keyset
pages, and a count that is only run when asked and stays cheap at any size.

Indexes (migration `performance`): (organization_id, <filter>, created_at) for user type,
acquisition channel and workflow status (mirrored on the customer row by the engine), and
pg_trgm GIN indexes on name and email for the search.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection

from app.customers.models import Customer
from app.kit.pagination import Cursors, clamp_first, decode_cursor
from app.onboarding.states import WorkflowStatus

EXACT_COUNT_LIMIT = 10_000
"""Counts up to this many rows are exact (an index range of at most this size); above it the
count is the planner's estimate, and says so."""


@dataclass(frozen=True)
class Count:
    """How many customers match: exact, or the planner's estimate above EXACT_COUNT_LIMIT."""

    value: int
    estimated: bool


@dataclass(frozen=True)
class CustomerPage(Cursors[Customer]):
    """One page of customers with the cursors around it; `count()` runs only when called."""

    items: list[Customer]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[Count]]


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
    raw: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """The WHERE clause of a filtered list and its parameters ($1, $2, ...); `raw` clauses are
    SQL the caller built from validated values (they may refer to `customer`)."""
    clauses, params = ["organization_id = $1"], [organization_id]

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
    clauses.extend(f"({sql})" for sql in raw)
    return " AND ".join(clauses), params


async def _count(where: str, params: list[Any]) -> Count:
    conn = get_connection("default")
    _, rows = await conn.execute_query(
        f"SELECT count(*) FROM (SELECT 1 FROM customer WHERE {where} LIMIT {EXACT_COUNT_LIMIT + 1})"
        " AS bounded",
        params,
    )
    exact = int(rows[0][0])
    if exact <= EXACT_COUNT_LIMIT:
        return Count(exact, estimated=False)
    _, plan = await conn.execute_query(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM customer WHERE {where}", params
    )
    document = plan[0][0]
    estimate = int(
        (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]["Plan Rows"]
    )
    return Count(max(estimate, exact), estimated=True)


async def page(
    where: str, params: list[Any], *, first: int | None, after: str | None
) -> CustomerPage:
    """One page in (created_at, id) order after the `after` cursor."""
    size = clamp_first(first)
    sql, args = where, list(params)
    if after:
        created, pk = decode_cursor(after)
        args += [created, pk]
        a, b = f"${len(args) - 1}", f"${len(args)}"
        sql += f" AND created_at >= {a} AND (created_at, id) > ({a}, {b})"
    rows = await get_connection("default").execute_query_dict(
        f"SELECT * FROM customer WHERE {sql} ORDER BY created_at, id LIMIT {size + 1}", args
    )
    items = [Customer._init_from_db(**row) for row in rows[:size]]

    async def count() -> Count:
        return await _count(where, params)

    return CustomerPage(
        items=items,
        has_next_page=len(rows) > size,
        has_previous_page=after is not None,
        count=count,
    )
