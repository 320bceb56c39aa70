"""`liftoff import-events`: a file read and checked in a thread, chunk by chunk, while the
previous chunks are stored (`workers` transactions at once, on their own connections, so
PostgreSQL works on several cores); refused lines written to a CSV file with their line
numbers, in the file's order.

At most `workers + 1` chunks are held at once (one being read, the others being stored), so
memory stays bounded whatever the file's size. Concurrent chunks cannot deadlock: each claims
its keys, then writes its rollups, each in sorted order; a key two chunks share waits for the
first to commit and counts as a duplicate in the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.kit.clock import utcnow
from app.usage import bulk, copyload, storage
from app.usage.importer import Chunk, Refused, chunks
from app.usage.rules import Window

CHUNK_LINES = 20_000
WORKERS = 2


@dataclass
class Report:
    """The outcome of an import."""

    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0


Progress = Callable[[int, int, Report], None]
"""Called after each chunk with (bytes read, file size, the figures so far)."""


def _next(source: Iterator[Chunk | copyload.Block]) -> Chunk | copyload.Block | None:
    return next(source, None)


async def import_file(
    path: Path,
    *,
    organization_id: uuid.UUID,
    fmt: str,
    rejects: Path,
    retention_days: int,
    actor: str,
    chunk_lines: int = CHUNK_LINES,
    workers: int = WORKERS,
    on_progress: Progress | None = None,
    now: datetime | None = None,
    fast: bool = True,
) -> Report:
    """Import every line of `path`; refused lines go to `rejects` (line, code, reason).
    CSV goes through PostgreSQL (`copyload`) unless `fast` is off; JSON Lines, and the
    chunks PostgreSQL would read otherwise, are read and checked by Python."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = Report()
    with path.open("rb") as stream, rejects.open("w", newline="", encoding="utf-8") as out:
        size = os.fstat(stream.fileno()).st_size
        writer = csv.writer(out)
        writer.writerow(["line", "code", "reason"])
        storing: deque[tuple[asyncio.Task[bulk.Stored], list[Refused], int]] = deque()

        async def finish_oldest() -> None:
            task, held, position = storing.popleft()
            stored = await task
            report.accepted += stored.accepted
            report.duplicates += stored.duplicates
            refused = sorted(held + stored.refused, key=_line)
            writer.writerows((r.line, r.code, r.reason) for r in refused)
            report.rejected += len(refused)
            if on_progress is not None:
                on_progress(position, size, report)

        window = Window.at(now or utcnow(), retention_days)
        plan = copyload.open_csv(stream, window) if fmt == "csv" and fast else None
        if plan is None:
            stream.seek(0)
            source: Iterator[Chunk | copyload.Block] = chunks(
                stream, fmt=fmt, size=chunk_lines, window=window
            )
        elif isinstance(plan, Refused):
            source = iter([Chunk(refused=[plan], read=1, position=size)])
        else:
            # every week of the window has its partition before chunks store in parallel
            await storage.ensure_window(window.earliest, window.latest)
            source = copyload.blocks(stream, plan, size=chunk_lines)
        try:
            while True:
                item = await asyncio.to_thread(_next, source)
                while storing and (item is None or len(storing) >= max(1, workers)):
                    await finish_oldest()
                if item is None:
                    break
                if isinstance(item, copyload.Block):
                    assert isinstance(plan, copyload.Plan)
                    report.lines = item.first + item.lines - 1
                    task = asyncio.create_task(_store_block(plan, organization_id, item, actor))
                    storing.append((task, [], item.position))
                    continue
                report.lines = item.read or report.lines
                # missing partitions are created here, one chunk at a time, not by two
                # chunks' transactions racing to create the same week
                await storage.ensure_weeks({storage.week_of(x.occurred_at) for x in item.lines})
                task = asyncio.create_task(
                    bulk.store_chunk(organization_id, item.lines, actor=actor)
                )
                storing.append((task, item.refused, item.position))
        finally:
            for task, _, _ in storing:  # a failed chunk stops the import; the others finish
                with contextlib.suppress(Exception):
                    await task
    report.seconds = loop.time() - started
    return report


async def _store_block(
    plan: copyload.Plan, organization_id: uuid.UUID, block: copyload.Block, actor: str
) -> bulk.Stored:
    """A block through PostgreSQL, or through Python when PostgreSQL reads it otherwise."""
    try:
        return await copyload.store_block(plan, organization_id, block, actor=actor)
    except copyload.Fallback:
        chunk = await asyncio.to_thread(copyload.parse_block, plan, block)
        await storage.ensure_weeks({storage.week_of(x.occurred_at) for x in chunk.lines})
        stored = await bulk.store_chunk(organization_id, chunk.lines, actor=actor)
        stored.refused.extend(chunk.refused)
        return stored


def _line(refused: Refused) -> int:
    return refused.line
