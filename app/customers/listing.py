"""The customers list in SQL: each filter on an index that also holds the sort key, keyset
pages, and a count that is only run when asked and stays cheap at any size.

Indexes (migrations `customer_list_order`, `customer_search_text`): (organization_id,
[<filter>,] created_at, id) for no filter, user type, acquisition channel and workflow status
(mirrored on the customer row by the engine), the unfiltered one including `search_text` (name
and email lower-cased, a generated column) for a search that walks it; and a GIN index of
(organization_id, search_text trigrams) for a rare search term. A page reads the workflows of
its customers in its own statement when they are asked for. Health filters and the health order
use `health_score`'s (organization_id, score, customer_id) and (organization_id, level, score,
customer_id), so a level filter in a health order walks that level's scores only.

Orders: signup order (created_at, id), or by health score (score, id) ascending or
descending; customers not scored yet come after every scored one, in id order. A cursor
carries its order, so a cursor of one order is refused by another.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from asyncpg import Record
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.connection import get_connection

from app.db import transaction
from app.errors import ValidationFailed
from app.kit.pagination import clamp_first, cursor_of, decode_cursor
from app.onboarding.records import (
    WORKFLOW_COLUMNS,
    WORKFLOW_WIDTH,
    WorkflowRecord,
    workflow_of_row,
)
from app.onboarding.states import WorkflowStatus

EXACT_COUNT_LIMIT = 10_000
"""Counts up to this many rows are exact (an index range of at most this size); above it the
count is the planner's estimate, and says so."""


Run = Callable[[str, list[Any]], Awaitable[list[Record]]]


@contextlib.asynccontextmanager
async def _reading(plan: str = "") -> AsyncIterator[Run]:
    """Runs list statements, each planned for its own values: a prepared statement run five
    times may switch to a generic plan that takes every organization for an average one, and
    scans all of a million-customer organization (a search that matches nothing) or walks the
    whole table for a small one (a count). No JIT and no parallel workers either: a page stops
    after its LIMIT, and compiling, or starting workers (6-9 ms measured: a trigram bitmap
    estimated from another organization's matches of the term, read in 0.2 ms), would cost
    more than any statement here runs.

    Outside a transaction: one read-only transaction, opened and set in one round trip (BEGIN
    and SET LOCAL as one simple query), its statements, COMMIT. Inside the caller's
    transaction: a savepoint, as any unit of work. `plan`: further SET LOCALs for these
    statements alone (undone before the caller's own statements run, when nested)."""
    client = get_connection("default")
    settings = f"{_SETTINGS}; {plan}" if plan else _SETTINGS
    if isinstance(client, TransactionalDBClient):
        async with transaction() as conn:
            await conn.execute_script(settings)

            async def nested(sql: str, args: list[Any]) -> list[Record]:
                return list((await conn.execute_query(sql, args))[1])

            yield nested
            if plan:  # a released savepoint keeps its SET LOCALs until the transaction ends
                await conn.execute_script(_unset(plan))
        return
    async with client.acquire_connection() as raw:

        async def run(sql: str, args: list[Any]) -> list[Record]:
            client.log.debug("%s: %s", sql, args)  # as Tortoise logs what it sends
            return list(await raw.fetch(sql, *args))

        await raw.execute(f"BEGIN READ ONLY; {settings}")
        try:
            yield run
        except BaseException:
            with contextlib.suppress(Exception):  # else the pool rolls back on release
                await raw.execute("ROLLBACK")
            raise
        await raw.execute("COMMIT")


_SETTINGS = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off;"
    " SET LOCAL max_parallel_workers_per_gather = 0"
)


def _unset(plan: str) -> str:
    """RESETs of the settings that `plan` (SET LOCAL statements) sets."""
    names = [part.split()[2] for part in plan.split(";") if part.strip()]
    return "; ".join(f"RESET {name}" for name in names)


async def _rows(sql: str, args: list[Any], plan: str = "") -> list[Record]:
    """The rows of one list statement (see `_reading`)."""
    async with _reading(plan) as run:
        return await run(sql, args)


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

    items: list[ListedCustomer]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[Count]]
    workflows: dict[uuid.UUID, WorkflowRecord | None] | None = None
    """Each listed customer's workflow (None before it starts), when the page was asked with
    `workflows=True`: read in the page's statement."""

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


@dataclass(frozen=True)
class Where:
    """A list's conditions: SQL over `customer` with its parameters ($1 is the organization).
    `walk`: they are those of one (organization, [filter,] created_at, id) index, whose range
    holds exactly the matching customers in list order. `search`: they include a search of
    name and email."""

    sql: str
    params: list[Any]
    walk: bool = False
    search: bool = False
    search_alone: str | None = None
    """The search's clause when it is the only condition besides the organization: a page
    then takes a bounded walk (`_bounded_search`)."""


SEARCH_SEPARATOR = "\x1f"
"""What separates name and email in `customer.search_text` (migration `customer_search_text`):
`lower(name) || SEARCH_SEPARATOR || lower(email)`, kept by PostgreSQL as a generated column. A
term without it matches there exactly when it matches name or email case-insensitively (ILIKE
is LIKE over `lower()` of both sides), so a search tests one lowered column with LIKE instead of
lower-casing two columns and the pattern for every customer it passes."""


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
) -> Where:
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
        if SEARCH_SEPARATOR in search:  # could span name and email in `search_text`
            add("(name ILIKE ? OR email ILIKE ?)", _like(search))
        else:
            add("search_text LIKE lower(?::text)", _like(search))
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
    indexed = [v for v in (user_type, acquisition_channel, workflow_status) if v]
    walk = len(clauses) == 1 + len(indexed) and len(indexed) <= 1
    alone = clauses[1] if search and len(clauses) == 2 else None
    return Where(" AND ".join(clauses), params, walk=walk, search=bool(search), search_alone=alone)


async def _count(where: str, params: list[Any], *, walk: bool) -> Count:
    """Exact up to EXACT_COUNT_LIMIT, else the planner's estimate (labelled). With `walk` (the
    conditions are those of one of the (organization, [filter,] created_at, id) indexes), the
    bounded count walks that index in its order, index-only: a plain LIMIT let the planner
    take a sequential scan that passed over every other organization's rows first."""
    order = " ORDER BY created_at, id" if walk else ""
    async with _reading() as run:
        rows = await run(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM customer WHERE {where}{order}"
            f" LIMIT {EXACT_COUNT_LIMIT + 1}) AS bounded",
            params,
        )
        exact = int(rows[0]["n"])
        if exact <= EXACT_COUNT_LIMIT:
            return Count(exact, estimated=False)
        plan = await run(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM customer WHERE {where}", params)
    document = plan[0][0]
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
    where: Where,
    *,
    first: int | None,
    after: str | None,
    order: Order = Order.CREATED_ASC,
    health: HealthFilter | None = None,
    workflows: bool = False,
) -> CustomerPage:
    """One page in the given order after the `after` cursor; `health` is the filter that
    `conditions` got, so a health order can walk the scores of the asked level only. With
    `workflows`, each customer's workflow comes in the same statement (`CustomerPage.workflows`).
    """
    size = clamp_first(first)
    listed = _Listed(workflows)
    if order is Order.CREATED_ASC:
        items, more = await _by_created(listed, where, size, after)
        cursors = [c.cursor for c in items]
    else:
        scored, more = await _by_health(listed, where.sql, where.params, size, after, order, health)
        items = [c for c, _ in scored]
        cursors = [health_cursor(order, score, c.id) for c, score in scored]

    async def count() -> Count:
        return await _count(where.sql, where.params, walk=where.walk)

    return CustomerPage(
        items=items,
        cursors=cursors,
        has_next_page=more,
        has_previous_page=after is not None,
        count=count,
        workflows={c.id: listed.workflows.get(c.id) for c in items} if workflows else None,
    )


@dataclass(frozen=True, slots=True)
class ListedCustomer:
    """A customer as a list shows it: the columns a page reads (not its free-form properties)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    name: str
    company: str | None
    external_id: str | None
    user_type: str
    acquisition_channel: str
    tags: list[str]
    signed_up_at: datetime
    created_at: datetime

    @property
    def cursor(self) -> str:
        """Its cursor in signup order."""
        return cursor_of(self.created_at, self.id)


_COLUMNS = (
    "customer.id, customer.organization_id, customer.email, customer.name, customer.company, "
    "customer.external_id, customer.user_type, customer.acquisition_channel, "
    "customer.tags::text AS tags, customer.signed_up_at, customer.created_at"
)
_WIDTH = 11


def _listed(v: Sequence[Any]) -> ListedCustomer:
    tags = v[8]
    return ListedCustomer(
        id=v[0],
        organization_id=v[1],
        email=v[2],
        name=v[3],
        company=v[4],
        external_id=v[5],
        user_type=v[6],
        acquisition_channel=v[7],
        tags=[] if tags == "[]" else list(json.loads(tags)),
        signed_up_at=v[9],
        created_at=v[10],
    )


class _Listed:
    """Runs a page's statement, with each customer's workflow joined to the page's rows (after
    its LIMIT, so the walk that finds the rows is the same) when `workflows`."""

    def __init__(self, workflows: bool) -> None:
        self.join = workflows
        self.workflows: dict[uuid.UUID, WorkflowRecord] = {}

    async def rows(
        self, select: str, order: str, args: list[Any]
    ) -> list[tuple[ListedCustomer, tuple[Any, ...]]]:
        """The customers of `select` (which starts with `_COLUMNS`), each with the select's
        further columns; `order` is its order over the select's output (`listed.<column>`)."""
        if self.join:
            select = (
                f"SELECT listed.*, {WORKFLOW_COLUMNS} FROM ({select}) AS listed "
                "LEFT JOIN workflow w ON w.organization_id = listed.organization_id "
                f"AND w.customer_id = listed.id ORDER BY {order}"
            )
        out = []
        for r in await _rows(select, args):
            values = tuple(r)
            if self.join:
                head = len(values) - WORKFLOW_WIDTH
                if values[head] is not None:
                    self.workflows[values[0]] = workflow_of_row(values[head:])
                values = values[:head]
            out.append((_listed(values), values[_WIDTH:]))
        return out


async def _by_created(
    listed: _Listed, where: Where, size: int, after: str | None
) -> tuple[list[ListedCustomer], bool]:
    """A page in signup order. A search alone takes `_bounded_search`; with other filters, the
    page's ids are found first (the planner's choice of index) and its rows read after."""
    position = decode_cursor(after) if after else None
    if where.search_alone is not None:
        return await _bounded_search(listed, where, where.search_alone, size, position)
    if where.search:
        found = await _found(listed, where, position, size + 1)
    else:
        sql, args = _after(where.sql, list(where.params), position)
        rows = await listed.rows(
            f"SELECT {_COLUMNS} FROM customer WHERE {sql} ORDER BY created_at, id LIMIT {size + 1}",
            "listed.created_at, listed.id",
            args,
        )
        found = [c for c, _ in rows]
    return found[:size], len(found) > size


Position = tuple[datetime, uuid.UUID | int]
"""A place in signup order: (created_at, id)."""


def _after(sql: str, args: list[Any], position: Position | None) -> tuple[str, list[Any]]:
    """`sql` and `args` limited to the customers after `position` in signup order."""
    if position is None:
        return sql, args
    args = [*args, *position]
    a, b = f"${len(args) - 1}", f"${len(args)}"
    return (
        f"{sql} AND customer.created_at >= {a} AND (customer.created_at, customer.id) > ({a}, {b})",
        args,
    )


async def _found(
    listed: _Listed, where: Where, position: Position | None, limit: int
) -> list[ListedCustomer]:
    """The first `limit` customers of `where` after `position` in signup order: their ids
    found first, their rows read after (a search tests each customer it passes index-only)."""
    sql, args = _after(where.sql, list(where.params), position)
    rows = await listed.rows(
        f"SELECT {_COLUMNS} FROM (SELECT customer.id FROM customer WHERE {sql}"
        f" ORDER BY created_at, id LIMIT {limit}) AS found JOIN customer"
        " ON customer.organization_id = $1 AND customer.id = found.id"
        " ORDER BY customer.created_at, customer.id",
        "listed.created_at, listed.id",
        args,
    )
    return [c for c, _ in rows]


async def _by_trigrams(
    listed: _Listed, where: Where, position: Position, limit: int
) -> list[ListedCustomer]:
    """As `_found`, by the organization's trigram bitmap (TRIGRAMS); the rows are read in a
    statement of their own, planned as usual (by primary key)."""
    sql, args = _after(where.sql, list(where.params), position)
    found = await _rows(
        f"SELECT customer.id FROM customer WHERE {sql} ORDER BY created_at, id LIMIT {limit}",
        args,
        TRIGRAMS,
    )
    if not found:
        return []
    rows = await listed.rows(
        f"SELECT {_COLUMNS} FROM customer WHERE customer.organization_id = $1"
        " AND customer.id = ANY($2::uuid[]) ORDER BY customer.created_at, customer.id",
        "listed.created_at, listed.id",
        [where.params[0], [r["id"] for r in found]],
    )
    return [c for c, _ in rows]


SEARCH_WALK = 1_000
"""The signup-order index entries a search page tests first (index-only, one LIKE each: well
under a millisecond). An organization of fewer customers takes no other path."""
SEARCH_WALK_MORE = 30_000
"""At most this many more when the first walk's hits say the page fills within them."""
TRIGRAMS = (
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off;"
    " SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = on"
)
"""The plan of the rest of a sparse search: the organization's trigram bitmap, then a sort of
its matches, whatever the planner estimates of the term (its statistics are the table's)."""


async def _bounded_search(
    listed: _Listed, where: Where, search: str, size: int, position: Position | None
) -> tuple[list[ListedCustomer], bool]:
    """A search page whose cost does not depend on the planner's guess of the term. The
    planner weighs a term by the whole table's statistics, so a term common elsewhere but
    absent from a big organization walked all of its signup-order range (17-37 ms per
    100,000 customers), and a term rare elsewhere but common here read all its matches by
    trigrams. Instead: walk SEARCH_WALK entries of the signup-order index, index-only; if the
    page is not full and the range goes on, walk up to SEARCH_WALK_MORE further when the hits
    so far say the page fills within them, and take the rest by the organization's trigram
    bitmap (TRIGRAMS) after the last entry walked: then the term is sparse here, and its
    matches after that point few. Same rows, order and cursors as one walk."""
    want = size + 1
    found: list[ListedCustomer] = []
    for walk in (SEARCH_WALK, SEARCH_WALK_MORE):
        hits, last = await _walked(listed, where, search, position, walk, want - len(found))
        found += hits
        if len(found) >= want or last is None:
            return found[:size], len(found) > size
        position = last
        if (want - len(found)) * SEARCH_WALK > len(found) * SEARCH_WALK_MORE:
            break  # sparse: expected to need more than SEARCH_WALK_MORE entries
    assert position is not None  # the walk's last entry
    found += await _by_trigrams(listed, where, position, want - len(found))
    return found[:size], len(found) > size


async def _walked(
    listed: _Listed,
    where: Where,
    search: str,
    position: Position | None,
    walk: int,
    want: int,
) -> tuple[list[ListedCustomer], Position | None]:
    """The first `want` matches of `search` among the next `walk` customers after `position`
    in signup order (one statement: the walk stops at `want` matches), and the walk's last
    entry when it went through all `walk` of them without `want` matches."""
    sql, args = _after("customer.organization_id = $1", list(where.params), position)
    rows = await listed.rows(
        f"SELECT {_COLUMNS}, found.hit, found.n = {walk} AS last FROM (SELECT id, hit, n"
        f" FROM (SELECT customer.id, customer.created_at, coalesce({search}, false) AS hit,"
        " row_number() OVER (ORDER BY customer.created_at, customer.id) AS n FROM customer"
        f" WHERE {sql} ORDER BY customer.created_at, customer.id LIMIT {walk}) AS walked"
        f" WHERE hit OR n = {walk} ORDER BY created_at, id LIMIT {want + 1}) AS found"
        " JOIN customer ON customer.organization_id = $1 AND customer.id = found.id"
        " ORDER BY customer.created_at, customer.id",
        "listed.created_at, listed.id",
        args,
    )
    hits = [c for c, (hit, _) in rows if hit][:want]
    ends = [c for c, (_, last) in rows if last]
    end = ends[0] if ends and len(hits) < want else None
    return hits, None if end is None else (end.created_at, end.id)


async def _by_health(
    listed: _Listed,
    where: str,
    params: list[Any],
    size: int,
    after: str | None,
    order: Order,
    health: HealthFilter | None,
) -> tuple[list[tuple[ListedCustomer, float | None]], bool]:
    """Scored customers by (score, id) in the order's direction, then the unscored by id.
    A level filter is put on the joined score itself, so the walk follows (organization, level,
    score, id) instead of passing over every score of other levels; with any health filter no
    unscored customer can match, so they are not looked for."""
    score, pk = _decode_health_cursor(order, after) if after else (None, None)
    found: list[tuple[ListedCustomer, float | None]] = []
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
        rows = await listed.rows(
            f"SELECT {_COLUMNS}, s.score AS health_sort_score FROM customer JOIN health_score s "
            "ON s.organization_id = customer.organization_id AND s.customer_id = customer.id "
            f"WHERE {sql} ORDER BY s.score{direction}, s.customer_id{direction} "
            f"LIMIT {size + 1}",
            f"listed.health_sort_score{direction}, listed.id{direction}",
            args,
        )
        found += [(c, float(extra[0])) for c, extra in rows]
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
    rows = await listed.rows(
        f"SELECT {_COLUMNS} FROM customer WHERE {sql} ORDER BY customer.id"
        f" LIMIT {size + 1 - len(found)}",
        "listed.id",
        args,
    )
    found += [(c, None) for c, _ in rows]
    return found[:size], len(found) > size
