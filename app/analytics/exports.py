"""Analytics exports: ADMIN-only jobs, finished inline (CSV, JSON) or by the worker (PDF),
downloaded once signed links prove which job of which organization they are for."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import jwt
from tortoise.connection import get_connection

from app.accounts.models import Organization, Role
from app.accounts.viewer import Viewer
from app.analytics import render
from app.analytics.models import ExportJob
from app.analytics.query import Scope
from app.audit import service as audit
from app.db import transaction
from app.errors import Forbidden, NotFound, ValidationFailed
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.tenancy import scoped

FORMATS = ("CSV", "JSON", "PDF")
DOWNLOAD_TTL = timedelta(minutes=10)
STALE_RUN = timedelta(minutes=5)
BATCH = 2000
_AUDIENCE = "liftoff-export"
_TYPES = {"CSV": "text/csv; charset=utf-8", "JSON": "application/json", "PDF": "application/pdf"}


def check_request(viewer: Viewer, *, format: str, sections: list[str]) -> list[str]:
    """Refuse a non-ADMIN, an unknown format or section; return the sections in order."""
    viewer.require(Role.ADMIN)
    if format not in FORMATS:
        raise ValidationFailed(f"`format` is one of {', '.join(FORMATS)}.", field="format")
    unknown = sorted(set(sections) - set(render.SECTIONS))
    if not sections or unknown:
        raise ValidationFailed(
            "Name one or more known sections.", field="sections", unknown=unknown
        )
    if format == "PDF" and "CUSTOMERS" in sections:
        raise ValidationFailed("A PDF report has no customer list; export it as CSV or JSON.")
    return [s for s in render.SECTIONS if s in sections]


def _name(format: str, sections: list[str], now: datetime) -> tuple[str, str]:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    if format == "CSV" and len(sections) > 1:
        return f"liftoff-analytics-{stamp}.zip", "application/zip"
    suffix = "csv" if format == "CSV" else format.lower()
    return f"liftoff-analytics-{stamp}.{suffix}", _TYPES[format]


async def create(
    viewer: Viewer,
    *,
    format: str,
    sections: list[str],
    scope: Scope,
    data: dict[str, Any],
    now: datetime,
) -> ExportJob:
    """Record an export job (caller's transaction); CSV and JSON are finished at once."""
    sections = check_request(viewer, format=format, sections=sections)
    rows = render.row_count(data, sections)
    if "CUSTOMERS" in sections:
        rows += await count_customers(scope)
    filename, content_type = _name(format, sections, now)
    job = ExportJob(
        id=uuid.uuid4(),
        organization_id=viewer.organization_id,
        requested_by=viewer.label,
        format=format,
        sections=sections,
        criteria=scope.as_dict(),
        payload=data,
        row_count=rows,
        filename=filename,
        content_type=content_type,
    )
    if format != "PDF":
        job.content = _stored_content(job)
        job.status, job.progress, job.finished_at = "DONE", 100.0, now
    await job.save(force_create=True)
    await audit.record(
        viewer=viewer,
        action="analytics.export",
        target_type="analytics_export",
        target_id=job.id,
        after={"format": format, "sections": sections, "filter": job.criteria, "rowCount": rows},
    )
    return job


def _stored_content(job: ExportJob) -> bytes:
    data = job.payload or {}
    if job.format == "JSON":
        return render.json_bytes(
            render.json_document(data, job.criteria, str(data.get("generatedAt", "")))
        )
    files = render.stored_files(data, job.sections)
    if len(job.sections) > 1:
        return render.stored_zip(files)
    return next(iter(files.values()), "").encode()


async def get_job(viewer: Viewer, job_id: str) -> ExportJob:
    """One of the organization's export jobs (ADMIN)."""
    viewer.require(Role.ADMIN)
    job = await scoped(ExportJob, viewer).get_or_none(id=parse_id(job_id, what="export job"))
    if job is None:
        raise NotFound(f"No export job {job_id}.", job=job_id)
    return job


_CLAIM = """UPDATE analytics_export SET status = 'RUNNING', claimed_at = $1, progress = 1
WHERE id = (SELECT id FROM analytics_export
            WHERE status = 'PENDING' OR (status = 'RUNNING' AND claimed_at < $2)
            ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id"""


async def run_next(*, now: datetime | None = None) -> bool:
    """Claim one pending (or abandoned) job and render it, with progress; False when idle."""
    now = now or utcnow()
    async with transaction():
        claimed = await get_connection("default").execute_query_dict(_CLAIM, [now, now - STALE_RUN])
    if not claimed:
        return False
    from app.analytics import pdf  # fpdf2 takes a while to import: only when a PDF is due

    job = await ExportJob.get(id=claimed[0]["id"])
    org = await Organization.get(id=job.organization_id)  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    pending: list[concurrent.futures.Future[None]] = []

    def progress(value: float) -> None:
        pending.append(asyncio.run_coroutine_threadsafe(_set_progress(job.id, value), loop))

    try:
        content = await asyncio.to_thread(
            pdf.render_pdf,
            organization=org.name,
            data=job.payload or {},
            scope=job.criteria,
            generated_at=job.created_at.strftime("%Y-%m-%d %H:%M"),
            progress=progress,
        )
        for future in pending:
            await asyncio.wrap_future(future)
        async with transaction():
            await ExportJob.filter(id=job.id).update(
                content=content, status="DONE", progress=100.0, finished_at=utcnow()
            )
    except Exception as exc:
        async with transaction():
            await ExportJob.filter(id=job.id).update(status="FAILED", error=str(exc)[:500])
        raise
    return True


async def _set_progress(job_id: uuid.UUID, value: float) -> None:
    await ExportJob.filter(id=job_id, status="RUNNING").update(progress=value)


async def run_pending() -> int:
    """Render every pending export (a scheduled job of the worker)."""
    done = 0
    while await run_next():
        done += 1
    return done


def download_token(*, secret: str, job: ExportJob, now: datetime | None = None) -> str:
    """A short-lived signed token for one job of one organization."""
    now = now or utcnow()
    claims = {
        "sub": str(job.id),
        "org": str(job.organization_id),  # type: ignore[attr-defined]
        "aud": _AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + DOWNLOAD_TTL).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def job_for_download(*, secret: str, job_id: str, token: str) -> ExportJob:
    """The finished job a download token grants; FORBIDDEN for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=_AUDIENCE,
            options={"require": ["exp", "sub", "org", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Forbidden("This download link has expired; ask for a new one.") from None
    except jwt.InvalidTokenError:
        raise Forbidden("This download link is not valid.") from None
    if claims["sub"] != job_id:
        raise Forbidden("This download link is for another export.")
    job = await ExportJob.get_or_none(
        id=parse_id(job_id, what="export job"), organization_id=claims["org"]
    )
    if job is None:
        raise Forbidden("This download link is not valid.")
    if job.status != "DONE":
        raise NotFound("This export has not finished yet.")
    return job


def scope_of(job: ExportJob) -> Scope:
    """The scope an export was asked for."""
    c = job.criteria
    return Scope(
        organization_id=job.organization_id,  # type: ignore[attr-defined]
        start=date.fromisoformat(c["from"]),
        end=date.fromisoformat(c["to"]),
        user_type=c.get("userType"),
        channel=c.get("acquisitionChannel"),
        signup_cohort=date.fromisoformat(c["signupCohort"]) if c.get("signupCohort") else None,
        template_version=c.get("templateVersion"),
    )


def _customer_sql(scope: Scope, *, count: bool) -> tuple[str, list[Any]]:
    start = datetime.combine(scope.start, time(), UTC)
    end = datetime.combine(scope.end + timedelta(days=1), time(), UTC)
    if scope.signup_cohort is not None:
        start = max(start, datetime.combine(scope.signup_cohort, time(), UTC))
        end = min(end, datetime.combine(scope.signup_cohort + timedelta(days=7), time(), UTC))
    params: list[Any] = [scope.organization_id, start, end]
    where = ["c.organization_id = $1", "c.signed_up_at >= $2", "c.signed_up_at < $3"]
    for column, value in (
        ("c.user_type", scope.user_type),
        ("c.acquisition_channel", scope.channel),
        ("tp.version", scope.template_version),
    ):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    joins = (
        "FROM customer c JOIN workflow w"
        " ON w.customer_id = c.id AND w.organization_id = c.organization_id"
        " JOIN workflow_template tp ON tp.id = w.template_id"
    )
    if count:
        return f"SELECT count(*) AS n {joins} WHERE {' AND '.join(where)}", params
    done = (
        "(SELECT round(100.0 * count(*) FILTER (WHERE t.status IN ('COMPLETED', 'SKIPPED'))"
        " / greatest(count(*), 1), 1) FROM workflow_task t"
        " WHERE t.organization_id = c.organization_id AND t.workflow_id = w.id)"
    )
    columns = (
        "c.id, c.email, c.name, c.user_type, c.acquisition_channel, c.signed_up_at, w.status,"
        f" {done} AS done, w.points, w.completed_at, w.last_activity_at, c.created_at"
    )
    n = len(params)
    where.append(f"(c.created_at, c.id) > (${n + 1}, ${n + 2})")
    order = f"ORDER BY c.created_at, c.id LIMIT ${n + 3}"
    return f"SELECT {columns} {joins} WHERE {' AND '.join(where)} {order}", params


async def count_customers(scope: Scope) -> int:
    sql, params = _customer_sql(scope, count=True)
    rows = await get_connection("default").execute_query_dict(sql, params)
    return int(rows[0]["n"])


async def customer_batches(scope: Scope, *, batch: int = BATCH) -> AsyncIterator[list[list[Any]]]:
    """The scope's customers with their progress, a page at a time (bounded memory)."""
    sql, params = _customer_sql(scope, count=False)
    after: tuple[datetime, uuid.UUID] = (datetime(1970, 1, 1, tzinfo=UTC), uuid.UUID(int=0))
    conn = get_connection("default")
    while True:
        rows = await conn.execute_query_dict(sql, [*params, *after, batch])
        if not rows:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])
        yield [
            [
                str(r["id"]),
                r["email"],
                r["name"],
                r["user_type"],
                r["acquisition_channel"],
                r["signed_up_at"].isoformat(),
                r["status"],
                float(r["done"]),
                r["points"],
                r["completed_at"].isoformat() if r["completed_at"] else "",
                r["last_activity_at"].isoformat(),
            ]
            for r in rows
        ]
        if len(rows) < batch:
            return
