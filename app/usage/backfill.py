"""`liftoff import-events`: a file read and checked in a thread, chunk by chunk, while the
previous chunk is stored; refused lines written to a CSV file with their line numbers.

At most two chunks are held at once (one being read, one being stored), so memory stays
bounded whatever the file's size.
"""

from __future__ import annotations

import asyncio
import csv
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.kit.clock import utcnow
from app.usage import bulk
from app.usage.importer import Chunk, Refused, chunks

CHUNK_LINES = 20_000


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


def _next(source: Iterator[Chunk]) -> Chunk | None:
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
    on_progress: Progress | None = None,
    now: datetime | None = None,
) -> Report:
    """Import every line of `path`; refused lines go to `rejects` (line, code, reason)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = Report()
    with path.open("rb") as stream, rejects.open("w", newline="", encoding="utf-8") as out:
        size = os.fstat(stream.fileno()).st_size
        writer = csv.writer(out)
        writer.writerow(["line", "code", "reason"])

        def refuse(refused: list[Refused]) -> None:
            writer.writerows((r.line, r.code, r.reason) for r in sorted(refused, key=_line))
            report.rejected += len(refused)

        source = chunks(stream, fmt=fmt, size=chunk_lines, now=now or utcnow(), days=retention_days)
        storing: asyncio.Task[bulk.Stored] | None = None
        held: list[Refused] = []
        position = 0
        while True:
            chunk = await asyncio.to_thread(_next, source)
            if storing is not None:
                stored = await storing
                report.accepted += stored.accepted
                report.duplicates += stored.duplicates
                refuse(held + stored.refused)
                storing = None
                if on_progress is not None:
                    on_progress(position, size, report)
            if chunk is None:
                break
            held = chunk.refused
            report.lines = chunk.read or report.lines
            position = chunk.position
            storing = asyncio.create_task(
                bulk.store_chunk(organization_id, chunk.lines, actor=actor)
            )
    report.seconds = loop.time() - started
    return report


def _line(refused: Refused) -> int:
    return refused.line
