"""Keeping the rollups equal to the sum of every customer's contribution.

`refresh` recomputes the contribution of some customers from their current rows, subtracts
what each contributed before and adds the difference to the rollup rows, in the caller's
transaction. The consumer calls it for the customers its events touch, the aging job for
customers who just went idle, and `rebuild` starts an organization over from scratch.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from app.analytics import bulk, rules
from app.analytics.rules import (
    COHORT,
    COHORT_WEEK,
    COMPLETION,
    COMPLETION_DAY,
    FLIGHT,
    STEP,
    STEP_WEEK,
    CustomerFacts,
    Delta,
    counter_columns,
)
from app.db import transaction

NOTIFY_CHANNEL = "liftoff_analytics"
_LOCK_SPACE = 7_340_012

KEYS: dict[str, tuple[str, ...]] = {
    COHORT: ("day", "user_type", "channel", "template_version"),
    STEP: ("day", "user_type", "channel", "template_version", "stage_key", "task_key", "position"),
    COMPLETION: ("day", "user_type", "channel", "template_version", "signup_week"),
    FLIGHT: ("day", "user_type", "channel", "template_version", "stage_key"),
    COMPLETION_DAY: ("day", "user_type", "channel", "template_version"),
}
KEYS[STEP_WEEK] = KEYS[STEP]
KEYS[COHORT_WEEK] = KEYS[COHORT]
TABLES = {
    COHORT: "analytics_cohort",
    COHORT_WEEK: "analytics_cohort_week",
    STEP: "analytics_step",
    STEP_WEEK: "analytics_step_week",
    COMPLETION: "analytics_completion",
    FLIGHT: "analytics_flight",
    COMPLETION_DAY: "analytics_completion_day",
}


_TYPES = {
    "day": "date",
    "signup_week": "date",
    "template_version": "int",
    "position": "int",
}


def _columns(kind: str) -> list[str]:
    """A rollup table's key columns, then its counters (histograms' buckets included)."""
    return [*KEYS[kind], *counter_columns(kind)]


def insert_head(kind: str) -> str:
    """`INSERT INTO <table> (organization_id, <columns>)`."""
    return f"INSERT INTO {TABLES[kind]} (organization_id, {', '.join(_columns(kind))})"


def on_conflict_add(kind: str) -> str:
    """The ON CONFLICT clause adding the new counters to an existing row."""
    table, keys = TABLES[kind], KEYS[kind]
    sets = [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in counter_columns(kind)]
    return f"ON CONFLICT (organization_id, {', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"


def _upsert_sql(kind: str) -> str:
    """One statement adding many rows: keys and counters as parallel arrays."""
    keys = KEYS[kind]
    names = _columns(kind)
    types = [_TYPES.get(k, "text") for k in keys] + ["bigint"] * len(counter_columns(kind))
    unnest = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=2))
    return (
        f"{insert_head(kind)} SELECT $1, {', '.join(names)}"
        f" FROM unnest({unnest}) AS v({', '.join(names)}) {on_conflict_add(kind)}"
    )


UPSERT = {kind: _upsert_sql(kind) for kind in TABLES}

_FACTS = """SELECT c.id, c.organization_id, c.signed_up_at, c.user_type, c.acquisition_channel,
  t.version, w.id AS workflow_id, w.status, w.completed_at, w.points,
  jsonb_array_length(w.badges) AS badges, w.last_activity_at
FROM customer c
JOIN workflow w ON w.customer_id = c.id AND w.organization_id = c.organization_id
JOIN workflow_template t ON t.id = w.template_id
WHERE c.id = ANY($1::uuid[])"""
_STEPS = """SELECT true AS stage, id, workflow_id, NULL::uuid AS stage_id, key, position, status,
  0 AS attempts, unlocked_at AS since, completed_at
FROM workflow_stage WHERE organization_id = ANY($2::uuid[]) AND workflow_id = ANY($1::uuid[])
UNION ALL
SELECT false, NULL, workflow_id, stage_id, key, position, status, attempts, started_at,
  completed_at
FROM workflow_task WHERE organization_id = ANY($2::uuid[]) AND workflow_id = ANY($1::uuid[])"""
"""The stages and tasks of some workflows in one statement (each branch in its index's order,
as two statements read them)."""
_OLD = """SELECT id, contribution, active, last_activity_at FROM analytics_customer
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"""
STALE_ACTIVITY = timedelta(hours=1)
"""A customer whose contribution did not change keeps its saved row while the saved last
activity is at most this much older than the real one: the aging job then looks at it
at most this much early, finds it still active and saves it (`refresh(..., save_all=True)`)."""
_SAVE = """INSERT INTO analytics_customer
  (id, organization_id, contribution, active, last_activity_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET contribution = EXCLUDED.contribution,
  active = EXCLUDED.active, last_activity_at = EXCLUDED.last_activity_at,
  updated_at = EXCLUDED.updated_at"""


def _conn() -> BaseDBAsyncClient:
    return get_connection("default")


async def load_facts(
    customer_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, tuple[uuid.UUID, CustomerFacts]]:
    """The current facts of these customers (with their organization), read in two queries."""
    conn = _conn()
    heads = await conn.execute_query_dict(_FACTS, [list(customer_ids)])
    workflows = [r["workflow_id"] for r in heads]
    organizations = list({r["organization_id"] for r in heads})
    stages: dict[uuid.UUID, list[rules.StageFacts]] = {w: [] for w in workflows}
    tasks: dict[uuid.UUID, list[rules.TaskFacts]] = {w: [] for w in workflows}
    stage_keys: dict[uuid.UUID, str] = {}
    task_rows = []
    _, steps = await conn.execute_query(_STEPS, [workflows, organizations])  # records, no dicts
    for r in steps:
        if not r["stage"]:
            task_rows.append(r)
            continue
        stage_keys[r["id"]] = r["key"]
        stages[r["workflow_id"]].append(
            rules.StageFacts(r["key"], r["position"], r["status"], r["since"], r["completed_at"])
        )
    for r in task_rows:
        tasks[r["workflow_id"]].append(
            rules.TaskFacts(
                r["key"],
                stage_keys[r["stage_id"]],
                r["position"],
                r["status"],
                r["attempts"],
                r["since"],
                r["completed_at"],
            )
        )
    return {
        r["id"]: (
            r["organization_id"],
            CustomerFacts(
                signed_up_at=r["signed_up_at"],
                user_type=r["user_type"],
                channel=r["acquisition_channel"],
                template_version=r["version"],
                status=r["status"],
                completed_at=r["completed_at"],
                points=r["points"],
                badges=r["badges"] or 0,
                last_activity_at=r["last_activity_at"],
                stages=tuple(stages[r["workflow_id"]]),
                tasks=tuple(tasks[r["workflow_id"]]),
            ),
        )
        for r in heads
    }


async def lock_organizations(organization_ids: Iterable[uuid.UUID], *, exclusive: bool) -> None:
    """Shared for incremental work, exclusive for a rebuild (until the transaction ends)."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    for org in sorted(set(organization_ids)):
        await _conn().execute_query(f"SELECT {fn}($1, hashtext($2))", [_LOCK_SPACE, str(org)])


async def apply(organization_id: uuid.UUID, delta: Delta) -> None:
    """Add an organization's dense deltas to its rollup rows, one statement per table, rows
    in key order (so concurrent writers cannot deadlock)."""
    conn = _conn()
    for kind in TABLES:
        keys = sorted(key for k, key in delta if k == kind)
        if not keys:
            continue
        rows = [(*key, *delta[(kind, key)]) for key in keys]
        columns = [list(column) for column in zip(*rows, strict=True)]
        await conn.execute_query(UPSERT[kind], [organization_id, *columns])


_OWNERS = """WITH owners AS MATERIALIZED (
  SELECT id, organization_id FROM customer WHERE id = ANY($2::uuid[])
), locked AS MATERIALIZED (
  SELECT pg_advisory_xact_lock_shared($1, hashtext(o::text))
  FROM (SELECT DISTINCT organization_id AS o FROM owners ORDER BY 1) AS d
)
SELECT id, organization_id FROM owners WHERE (SELECT count(*) FROM locked) >= 0"""
"""The customers' organizations, each organization's shared lock taken (in organization order,
as `lock_organizations`) before the statement returns: one round trip for both."""
_CLAIM = """WITH claimed AS (
  INSERT INTO analytics_customer
    (id, organization_id, contribution, active, last_activity_at, updated_at)
  SELECT id, org, '{}'::jsonb, false, $3, $3 FROM unnest($1::uuid[], $2::uuid[]) AS u(id, org)
  ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id
), old AS (
  SELECT a.id, a.xmin::text AS version, a.active, a.last_activity_at,
    CASE WHEN a.xmin::text = k.version THEN NULL ELSE a.contribution END AS contribution
  FROM analytics_customer a JOIN unnest($1::uuid[], $4::text[]) AS k(id, version) ON k.id = a.id
  ORDER BY a.id FOR UPDATE OF a
)
SELECT id, version, contribution, active, last_activity_at, false AS claimed FROM old
UNION ALL SELECT id, NULL, NULL, false, $3, true FROM claimed"""
"""Claim (create empty) the missing rows and lock the others, in one statement: a row it
creates is its own (locked until the transaction ends), a row that existed is locked and
returned. A row another transaction created meanwhile is in neither (the statement's snapshot
predates it, its insert found it); `_OLD` locks and reads those. A row whose version (xmin) is
the one given for it in $4 comes without its contribution: the caller has it (`_KNOWN`)."""

_KNOWN: OrderedDict[uuid.UUID, tuple[str, dict[str, Any]]] = OrderedDict()
"""Contributions this process has read, with the version (xmin) of the row it read them from,
most recently used last. A row version is written once, by one transaction, and another
committed version never carries the same xmin, so a row whose xmin is the one kept here still
holds this contribution and need not be sent and decoded again (about a third of what an
unchanged customer costs: PostgreSQL's jsonb output and Python's json decoding). Only what was
read is kept, never what this process writes (its transaction may yet roll back)."""
KNOWN_SIZE = 4096
"""Customers kept (a contribution takes a few kB decoded): the busy ones, whose events come
again soon."""


def _remember(customer_id: uuid.UUID, version: str, contribution: dict[str, Any]) -> None:
    _KNOWN[customer_id] = (version, contribution)
    _KNOWN.move_to_end(customer_id)
    while len(_KNOWN) > KNOWN_SIZE:
        _KNOWN.popitem(last=False)


async def refresh(
    customer_ids: Iterable[uuid.UUID], *, now: datetime, save_all: bool = False
) -> set[uuid.UUID]:
    """Bring these customers' contributions up to date; return the organizations touched.

    Each customer's row in analytics_customer is locked (created empty first if missing)
    before its facts are read, so two refreshes of one customer (the consumer, the aging
    job, a rebuild) apply one after the other, the second from what the first saved. A
    customer whose contribution and activity flag are unchanged (most moves: a progress
    report, a task started in the same stage) adds nothing to the rollups, and its row is
    rewritten only when its saved last activity is `STALE_ACTIVITY` behind, or `save_all`.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    conn = _conn()
    _, rows = await conn.execute_query(_OWNERS, [_LOCK_SPACE, ids])
    owners = {r["id"]: r["organization_id"] for r in rows}
    ids = [cid for cid in ids if cid in owners]
    organizations = sorted(set(owners.values()))
    known = {cid: _KNOWN[cid] for cid in ids if cid in _KNOWN}  # as the statement is sent
    versions = [known[cid][0] if cid in known else None for cid in ids]
    old: dict[uuid.UUID, dict[str, Any]] = {}
    _, rows = await conn.execute_query(_CLAIM, [ids, [owners[cid] for cid in ids], now, versions])
    for r in rows:
        cid = r["id"]
        if r["claimed"]:
            contribution = {}
        elif r["contribution"] is None:
            contribution = known[cid][1]
            _remember(cid, r["version"], contribution)
        else:
            contribution = _json(r["contribution"])
            _remember(cid, r["version"], contribution)
        old[cid] = {**r, "contribution": contribution}
    if missed := [cid for cid in ids if cid not in old]:
        old.update({r["id"]: r for r in await conn.execute_query_dict(_OLD, [missed])})
    facts = await load_facts(ids)
    pairs: dict[uuid.UUID, list[tuple[dict[str, Any] | None, dict[str, Any]]]] = {}
    saves = []
    for cid in ids:
        if cid not in facts:
            continue
        org, f = facts[cid]
        new = rules.entries(f, now=now)
        active = rules.is_active(f, now)
        saved = old.get(cid)
        before = _json(saved["contribution"]) if saved is not None else None
        if before == new and saved is not None and saved["active"] == active:
            if save_all or saved["last_activity_at"] < f.last_activity_at - STALE_ACTIVITY:
                saves.append([cid, org, json.dumps(new), active, f.last_activity_at, now])
            continue
        pairs.setdefault(org, []).append((before or None, new))
        saves.append([cid, org, json.dumps(new), active, f.last_activity_at, now])
    changed = set()
    for org in organizations:
        delta = rules.diff(pairs.get(org, []))
        if delta:
            await apply(org, delta)
            changed.add(org)
    if saves:
        await conn.execute_many(_SAVE, saves)
    for org in sorted(changed):
        await conn.execute_query("SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, str(org)])
    return set(organizations)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


_GONE_IDLE = """SELECT id FROM analytics_customer
WHERE active AND last_activity_at < $1 ORDER BY last_activity_at LIMIT $2"""


AGE_BATCH = 1000


async def age(*, now: datetime, limit: int = AGE_BATCH) -> int:
    """Refresh customers who were active and have now been idle for IDLE_DAYS days."""
    cutoff = now - timedelta(days=rules.IDLE_DAYS)
    rows = await _conn().execute_query_dict(_GONE_IDLE, [cutoff, limit])
    await refresh([r["id"] for r in rows], now=now, save_all=True)
    return len(rows)


_COUNT = """SELECT count(*) AS n FROM customer c WHERE c.organization_id = $1
  AND NOT EXISTS (SELECT 1 FROM analytics_customer a WHERE a.id = c.id)"""


async def clear(organization_id: uuid.UUID) -> None:
    """Forget an organization's rollups and contributions (caller's transaction), waiting for
    the refreshes under way to finish first."""
    conn = _conn()
    await lock_organizations([organization_id], exclusive=True)
    for table in (*TABLES.values(), "analytics_customer"):
        await conn.execute_query(
            f"DELETE FROM {table} WHERE organization_id = $1", [organization_id]
        )


_PAGES = """SELECT pg_relation_size('customer') / current_setting('block_size')::int AS pages,
  greatest(1, (SELECT reltuples / greatest(relpages, 1) FROM pg_class
    WHERE oid = 'customer'::regclass)) AS per_page"""


async def rebuild(
    organization_id: uuid.UUID,
    *,
    now: datetime,
    chunk: int = 20_000,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute an organization's rollups from its customers' current rows, set-based inside
    PostgreSQL (`bulk`), one transaction per about `chunk` customers; return how many
    customers it added.

    A first short transaction clears the organization. Chunks then take the customers stored
    in consecutive ranges of the customer table's pages (their workflows, stages and tasks
    were written with them, so a chunk reads near pages, whatever order signups came in), and
    a last sweep in signup order takes whoever is still missing (a row an update moved behind
    the ranges, a customer added meanwhile). A chunk takes the organization's exclusive lock
    and only customers without a contribution, so a customer the consumer refreshed meanwhile
    is skipped (counted once) and one it refreshes later starts from the contribution the
    chunk saved. With `resume` (after an interrupted rebuild) nothing is cleared. While it
    runs, figures cover the customers added so far. At the end the rollup tables are
    vacuumed: each chunk's upserts leave dead versions of the rows they added to.
    """
    conn = _conn()
    if not resume:
        async with transaction():
            await clear(organization_id)
    total_rows = await conn.execute_query_dict(_COUNT, [organization_id])
    total, done = int(total_rows[0]["n"]), 0
    upserts = {kind: (insert_head(kind), on_conflict_add(kind)) for kind in TABLES}
    if progress:
        progress(0, total)

    async def add(page: tuple[str, list[Any]]) -> list[dict[str, Any]]:
        nonlocal done
        async with transaction() as tx:
            await lock_organizations([organization_id], exclusive=True)
            last = await bulk.add_chunk(tx, organization_id, now=now, page=page, upserts=upserts)
            if last:
                await tx.execute_query(
                    "SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, str(organization_id)]
                )
        if last:
            done += int(last[0]["n"])
            if progress:
                progress(min(total, done), total)
        return last

    [size] = await conn.execute_query_dict(_PAGES)
    step = max(1, int(chunk / float(size["per_page"])))
    for start in range(0, int(size["pages"]) + 1, step):
        await add((bulk.BY_PAGES, [start, start + step]))
    after: tuple[datetime, uuid.UUID] = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
    while last := await add((bulk.BY_SIGNUP, [*after, chunk])):
        after = (last[0]["signed_up_at"], last[0]["id"])
    if done:  # chunks rewrote rollup rows many times: leave them compact for the readers
        await conn.execute_script(f"VACUUM (ANALYZE) {', '.join(TABLES.values())}")
    return done
