"""Downloading a finished analytics export with its signed link (no bearer header)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from app.analytics import exports, render
from app.analytics.models import ExportJob
from app.errors import DomainError, Forbidden
from app.settings import Settings

_STATUS = {"FORBIDDEN": 403, "NOT_FOUND": 404}


async def _csv_stream(job: ExportJob) -> AsyncIterator[bytes]:
    yield render.csv_text(render.CUSTOMER_COLUMNS, []).encode()
    async for batch in exports.customer_batches(exports.scope_of(job)):
        yield render.csv_text(None, batch).encode()


async def _json_stream(job: ExportJob) -> AsyncIterator[bytes]:
    head = render.json_bytes(
        render.json_document(
            job.payload or {}, job.criteria, str((job.payload or {}).get("generatedAt", ""))
        )
    ).rstrip()
    yield head[:-1] + b', "customers": ['
    first = True
    async for batch in exports.customer_batches(exports.scope_of(job)):
        for row in batch:
            item = json.dumps(
                dict(zip(render.CUSTOMER_COLUMNS, row, strict=True)), ensure_ascii=False
            )
            yield (b"\n" if first else b",\n") + item.encode()
            first = False
    yield b"\n]}\n"


def _body(job: ExportJob) -> Any:
    if "CUSTOMERS" not in job.sections:
        return job.content or b""
    if job.format == "JSON":
        return _json_stream(job)
    if len(job.sections) == 1:
        return _csv_stream(job)
    files = render.stored_files(job.payload or {}, job.sections)
    return render.stream_zip(files, exports.customer_batches(exports.scope_of(job)))


def download_endpoint(settings: Settings) -> Any:
    """GET /exports/{id}/download?token=…: the file, or 403/404 with a code."""

    async def download(request: Request) -> Response:
        try:
            token = request.query_params.get("token")
            if not token:
                raise Forbidden("This download link has no token.")
            job = await exports.job_for_download(
                secret=settings.resolved_secret_key(),
                job_id=request.path_params["job_id"],
                token=token,
            )
        except DomainError as exc:
            return JSONResponse(
                {"code": exc.code, "message": exc.message}, status_code=_STATUS.get(exc.code, 400)
            )
        headers = {
            "Content-Disposition": f'attachment; filename="{job.filename}"',
            "Cache-Control": "no-store",
        }
        body = _body(job)
        if isinstance(body, bytes):
            return Response(body, media_type=job.content_type, headers=headers)
        return StreamingResponse(body, media_type=job.content_type, headers=headers)

    return download
