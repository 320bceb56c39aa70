"""Recompute orchestration: changed customers from the event spine, on-demand jobs with
progress, and the daily recompute and snapshot of every organization.

Each batch of customers is one transaction; a job records how far it got, so a job taken
over after a crash resumes at the next customer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.db import retried_transaction, transaction
from app.errors import NotFound
from app.health.compute import BATCH, WHERE_FROM, BatchResult, Run, prepare, score_batch
from app.health.models import HealthJob, JobStatus
from app.health.rules import HealthLevel
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import scoped

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)
PARALLEL = 2
"""Concurrent sweeps of a full recompute, each over its own range of customer ids and its own
connection: the work is in PostgreSQL, so one per database core it may use."""
Progress = Callable[[int, int], Awaitable[None] | None]


@dataclass(frozen=True)
class Scope:
    """Which customers a recompute covers (all of them when empty)."""

    user_type: str | None = None
    acquisition_channel: str | None = None
    level: HealthLevel | None = None
    customer_ids: tuple[uuid.UUID, ...] = ()

    def sql(self, first: int = 3) -> tuple[str, list[Any]]:
        """A condition over `customer c` / `health_score h`, its parameters numbered from
        `$first`."""
        conds: list[str] = []
        params: list[Any] = []

        def add(cond: str, value: Any) -> None:
            params.append(value)
            conds.append(cond.format(f"${len(params) + first - 1}"))

        if self.user_type:
            add("c.user_type = {}", self.user_type.lower())
        if self.acquisition_channel:
            add("c.acquisition_channel = {}", self.acquisition_channel.lower())
        if self.level:
            add("h.level = {}", self.level.value)
        if self.customer_ids:
            add("c.id = ANY({}::uuid[])", list(self.customer_ids))
        return " AND ".join(conds), params

    def to_json(self) -> dict[str, Any]:
        return {
            "userType": self.user_type,
            "acquisitionChannel": self.acquisition_channel,
            "level": self.level.value if self.level else None,
            "customerIds": [str(c) for c in self.customer_ids],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        return cls(
            user_type=data.get("userType"),
            acquisition_channel=data.get("acquisitionChannel"),
            level=HealthLevel(data["level"]) if data.get("level") else None,
            customer_ids=tuple(uuid.UUID(c) for c in data.get("customerIds") or ()),
        )


async def count(organization_id: uuid.UUID, scope: Scope) -> int:
    """How many customers the scope covers."""
    where, params = scope.sql(first=2)
    join = (  # only a level filter reads the scores
        "LEFT JOIN health_score h ON h.organization_id = c.organization_id "
        "AND h.customer_id = c.id "
        if scope.level
        else ""
    )
    rows = await get_connection("default").execute_query_dict(
        f"SELECT count(*) AS n FROM customer c {join}"
        f"WHERE c.organization_id = $1 AND {where or 'true'}",
        [organization_id, *params],
    )
    return int(rows[0]["n"])


async def recompute_customers(
    organization_id: uuid.UUID, customer_ids: Sequence[uuid.UUID], *, now: datetime
) -> int:
    """Score these customers now, inside the caller's transaction (the event consumer)."""
    if not customer_ids:
        return 0
    run = await prepare(organization_id, now=now, fresh_norm=False)
    done = 0
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), BATCH):
        done += (await score_batch(run, ids=ids[start : start + BATCH])).scored
    return done


def id_ranges(parts: int) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """`parts` ranges (after, upto] of customer ids that cover them all (ids are random, so
    the ranges hold about as many customers each)."""
    step = (1 << 128) // parts
    bounds = [uuid.UUID(int=i * step) for i in range(1, parts)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


async def sweep(
    run: Run,
    scope: Scope,
    *,
    after: uuid.UUID | None = None,
    upto: uuid.UUID | None = None,
    on_batch: Callable[[uuid.UUID, BatchResult], Awaitable[None]] | None = None,
    batch_size: int = BATCH,
) -> tuple[int, int]:
    """Score every customer of the scope (with an id in (after, upto]) in batches, one
    transaction each; return (customers scored, customers whose score moved notably)."""
    where, params = scope.sql(first=WHERE_FROM)
    dense = not where  # every customer in each batch's id range: its rollups read as a range
    if upto is not None:
        params = [*params, upto]
        where = " AND ".join(
            c for c in (where, f"c.id <= ${WHERE_FROM + len(params) - 1}::uuid") if c
        )
    scored = changed = 0
    while True:
        got = await _batch(run, after, where, params, batch_size, on_batch, dense)
        if got.last_id is None:
            return scored, changed
        scored, changed, after = scored + got.scored, changed + len(got.changed), got.last_id
        if got.scored < batch_size:
            return scored, changed


async def _batch(
    run: Run,
    after: uuid.UUID | None,
    where: str,
    params: list[Any],
    batch_size: int,
    on_batch: Callable[[uuid.UUID, BatchResult], Awaitable[None]] | None,
    dense: bool = False,
) -> BatchResult:
    """One batch in its own transaction, tried again when the database rolls it back to break
    a deadlock (concurrent sweeps may meet on the summary rows their triggers update); then
    `on_batch`, once, after the batch committed (a batch done again is counted once)."""

    async def unit() -> BatchResult:
        # a batch lost in a crash is recomputed (its job's cursor stays before it), so its
        # commit need not wait for the disk
        await get_connection("default").execute_script("SET LOCAL synchronous_commit = off")
        return await score_batch(
            run, after=after, where=where, params=params, limit=batch_size, dense=dense
        )

    got = await retried_transaction(unit, what=f"health batch after {after}")
    if got.last_id is not None and on_batch is not None:
        await on_batch(got.last_id, got)
    return got


async def recompute_all(
    organization_id: uuid.UUID,
    *,
    now: datetime | None = None,
    on_progress: Progress | None = None,
    parallel: int = PARALLEL,
) -> tuple[int, int]:
    """Score every customer of the organization with a freshly measured norm, in `parallel`
    concurrent sweeps over ranges of ids (each batch its own transaction, so call it outside
    one)."""
    now = now or utcnow()
    async with transaction():
        run = await prepare(organization_id, now=now, fresh_norm=True)
        total = await count(organization_id, Scope())
    done = written = 0

    async def progressed(_: uuid.UUID, got: BatchResult) -> None:
        nonlocal done, written
        done, written = done + got.scored, written + got.written
        if on_progress is not None:
            maybe = on_progress(done, total)
            if maybe is not None:
                await maybe

    swept = await asyncio.gather(
        *(
            sweep(run, Scope(), after=lo, upto=hi, on_batch=progressed)
            for lo, hi in id_ranges(max(1, parallel))
        )
    )
    scored, changed = sum(s for s, _ in swept), sum(c for _, c in swept)
    # a recompute that rewrote few scores (the same inputs again) leaves the statistics be
    await refresh_statistics(written)
    return scored, changed


ANALYZE_AT = (50, 0.1)
"""Autovacuum's default analyze threshold: rows written, plus this share of the table."""


async def refresh_statistics(written: int) -> bool:
    """ANALYZE `health_score` when a sweep wrote more of it than autovacuum's analyze
    threshold, as autovacuum would later (or never, on a server running without it): list
    pages filtered by level and ordered by score are planned from these statistics, and after
    the first recompute of a big organization they still say the table is empty (a level
    page of 1,000,000 scores took 11 s on such statistics, 19 ms after ANALYZE)."""
    conn = get_connection("default")
    rows = await conn.execute_query_dict(
        "SELECT greatest(reltuples, 0) AS n FROM pg_class WHERE oid = 'health_score'::regclass"
    )
    base, share = ANALYZE_AT
    if written <= base + share * float(rows[0]["n"]):
        return False
    await conn.execute_script(f"ANALYZE health_score ({', '.join(ANALYZED)})")
    return True


ANALYZED = (
    "id", "organization_id", "customer_id", "score", "level", "computed_score", "computed_level",
    "confidence", "segment", "channel", "model_version", "override_id", "computed_at",
    "changed_at",
)  # fmt: skip
"""The columns `refresh_statistics` samples: not the components and facts, which no query
filters or sorts on, and whose JSON values made up half of the ANALYZE's time (100,000 scores:
3.1 s against 1.6 s)."""


async def start_job(viewer: Viewer, scope: Scope) -> HealthJob:
    """Queue a recompute of the scope's customers (ADMIN); a worker runs it."""
    viewer.require(Role.ADMIN)
    total = await count(viewer.organization_id, scope)
    job = await HealthJob.create(
        organization_id=viewer.organization_id,
        scope=scope.to_json(),
        total=total,
        created_by=viewer.label,
    )
    await audit.record(
        viewer=viewer,
        action="health.recompute_started",
        target_type="health_job",
        target_id=job.id,
        after={"scope": scope.to_json(), "total": total},
    )
    return job


async def get_job(viewer: Viewer, job_id: str) -> HealthJob:
    """One of the organization's recompute jobs (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    job = await scoped(HealthJob, viewer).get_or_none(id=parse_id(job_id, what="health job"))
    if job is None:
        raise NotFound(f"No health job with id {job_id}.")
    return job


async def claim_job(*, now: datetime, organization_id: uuid.UUID | None = None) -> HealthJob | None:
    """Take the oldest pending job (of one organization, or any), or a running one whose
    worker stopped beating."""
    async with transaction():
        rows = await get_connection("default").execute_query_dict(
            "UPDATE health_job SET status = 'RUNNING', heartbeat_at = $1, "
            "started_at = coalesce(started_at, $1) WHERE id = ("
            "SELECT id FROM health_job WHERE (status = 'PENDING' "
            "OR (status = 'RUNNING' AND heartbeat_at < $2)) "
            "AND ($3::uuid IS NULL OR organization_id = $3) "
            "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
            [now, now - STALE_AFTER, organization_id],
        )
    return await HealthJob.get(id=rows[0]["id"]) if rows else None


async def run_job(
    job: HealthJob, *, on_progress: Progress | None = None, batch_size: int = BATCH
) -> HealthJob:
    """Run a claimed job to its end, recording progress after every batch."""
    org = job.organization_id  # type: ignore[attr-defined]
    try:
        async with transaction():
            run = await prepare(org, now=utcnow(), fresh_norm=job.cursor is None)

        written = 0

        async def progressed(last: uuid.UUID, got: BatchResult) -> None:
            nonlocal written
            written += got.written
            job.done, job.changed = job.done + got.scored, job.changed + len(got.changed)
            job.cursor = last
            job.heartbeat_at = utcnow()
            await job.save(update_fields=["done", "changed", "cursor", "heartbeat_at"])
            if on_progress is not None:
                maybe = on_progress(job.done, job.total)
                if maybe is not None:
                    await maybe

        scope = Scope.from_json(job.scope)
        await sweep(run, scope, after=job.cursor, on_batch=progressed, batch_size=batch_size)
        await refresh_statistics(written)
        job.status, job.total = JobStatus.SUCCEEDED, max(job.total, job.done)
    except Exception as exc:
        log.exception("health job %s failed", job.id)
        job.status, job.error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    job.finished_at = utcnow()
    await job.save(update_fields=["status", "total", "error", "finished_at"])
    return job


async def run_pending_jobs() -> int:
    """Run queued jobs until none is left (a scheduled job of the worker)."""
    ran = 0
    while (job := await claim_job(now=utcnow())) is not None:
        await run_job(job)
        ran += 1
    return ran
