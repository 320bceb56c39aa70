"""The ceiling of `bench.ingest`: what PostgreSQL alone spends to take the rows an import
stores, with the least the issue requires and nothing of ours around it.

The same rows as an import round's file (customers, names, times within 60 days, a quarter
with properties), rendered as CSV before the clock starts, go with `COPY` straight into
`usage_event` (its partitions, its primary key and its per-customer index), then their keys
into `usage_event_key`: no checks, no customer look-up, no duplicates found, no rollups, no
outbox, no staging table. Chunks of `CHUNK` rows, two connections at once (as the import
stores two chunks at once), each chunk its own transaction with `synchronous_commit = off`
(as the import's). CPU is PostgreSQL's backends for the database (the bench's own sending is
left out: the ceiling is PostgreSQL's).
"""

from __future__ import annotations

import asyncio
import io
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.metrics import cpu_or_zero

CHUNK = 20_000  # the import's chunk (app/usage/backfill.CHUNK_LINES)
NAMES = ("project_created", "report_shared", "teammate_invited", "dashboard_viewed", "export_run")
EVENT_COLUMNS = ["organization_id", "customer_id", "name", "occurred_at", "idempotency_key",
                 "properties"]  # fmt: skip
KEY_COLUMNS = ["organization_id", "idempotency_key"]


@dataclass
class Ceiling:
    """Figures of the bare COPY at one table size, one entry per round."""

    rate: list[float] = field(default_factory=list)  # events/s, events then keys
    event_us: list[float] = field(default_factory=list)  # PostgreSQL µs per event row
    key_us: list[float] = field(default_factory=list)  # PostgreSQL µs per key row

    def total_us(self) -> list[float]:
        return [a + b for a, b in zip(self.event_us, self.key_us, strict=True)]


def render(org: uuid.UUID, customers: list[uuid.UUID], lines: int, tag: str) -> tuple[
        list[bytes], list[bytes]]:  # fmt: skip
    """The chunks of event rows and of key rows, as CSV, the import file's shapes."""
    rng = random.Random(tag)
    now = datetime.now(UTC)
    events: list[bytes] = []
    keys: list[bytes] = []
    for start in range(0, lines, CHUNK):
        ev, ks = [], []
        for i in range(start, min(lines, start + CHUNK)):
            at = (now - timedelta(seconds=rng.randint(60, 60 * 86400))).isoformat()
            props = '"{""plan"": ""pro""}"' if i % 4 == 0 else "{}"
            key = f"{tag}-{i}"
            ev.append(f"{org},{rng.choice(customers)},{rng.choice(NAMES)},{at},{key},{props}\n")
            ks.append(f"{org},{key}\n")
        events.append("".join(ev).encode())
        keys.append("".join(ks).encode())
    return events, keys


async def _copy(conns: list[asyncpg.Connection], table: str, columns: list[str],
                chunks: list[bytes]) -> None:  # fmt: skip
    """COPY the chunks on the connections at once, one transaction a chunk."""
    queue = list(reversed(chunks))

    async def worker(conn: asyncpg.Connection) -> None:
        while queue:
            data = queue.pop()
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.copy_to_table(
                    table, source=io.BytesIO(data), columns=columns, format="csv"
                )

    await asyncio.gather(*(worker(c) for c in conns))


async def ceiling_round(url: str, org: uuid.UUID, customers: list[uuid.UUID], figures: Ceiling,
                        tag: str, lines: int) -> None:  # fmt: skip
    """One round: the events' COPY, then the keys' COPY, timed and costed separately (the CPU
    of the two backends, read while they live)."""
    events, keys = await asyncio.to_thread(render, org, customers, lines, tag)
    conns = [await asyncpg.connect(url) for _ in range(2)]
    try:
        pids = [c.get_server_pid() for c in conns]
        seconds = 0.0
        for table, columns, chunks, out in (
            ("usage_event", EVENT_COLUMNS, events, figures.event_us),
            ("usage_event_key", KEY_COLUMNS, keys, figures.key_us),
        ):
            before = sum(cpu_or_zero(p) for p in pids)
            started = time.perf_counter()
            await _copy(conns, table, columns, chunks)
            seconds += time.perf_counter() - started
            out.append(1e6 * (sum(cpu_or_zero(p) for p in pids) - before) / lines)
        figures.rate.append(lines / seconds)
    finally:
        for c in conns:
            await c.close()


def report_ceiling(sizes: list[Any], empties: list[Any] | None) -> None:
    """The ceiling beside the import of the same rounds (`bench.ingest.Size` rows)."""
    from bench.report import table

    print("\nCeiling: the same rows COPYd by PostgreSQL alone into usage_event and then "
          "usage_event_key\n(two connections, 20,000-row chunks, no checks, no rollups); "
          "PostgreSQL's CPU per event")  # fmt: skip
    med = statistics.median
    rows = []
    for i, s in enumerate(sizes):
        c: Ceiling = s.ceiling
        total = med(c.total_us())
        imp = med(s.import_cpu_us)
        row = [
            f"{s.rows:,}", f"{med(c.rate):,.0f}", f"{min(c.rate):,.0f}-{max(c.rate):,.0f}",
            f"{med(c.event_us):.1f}", f"{med(c.key_us):.1f}", f"{total:.1f}",
            f"{2e6 / total:,.0f}", f"{imp:.0f} ({med(s.import_pg_us):.0f})",
            f"{imp / total:.2f}",
        ]  # fmt: skip
        if empties is not None:
            pairs = [a / b for a, b in zip(c.total_us(), empties[i].ceiling.total_us(),
                                           strict=True)]  # fmt: skip
            row.append(f"{med(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})")
        rows.append(row)
    head = ["events in table", "COPY ev/s", "spread", "µs/event: events", "keys", "both",
            "ev/s on 2 idle cores", "import µs/event (PostgreSQL)",
            "import / ceiling µs"]  # fmt: skip
    if empties is not None:
        head.append("ceiling µs vs empty")
    for line in table([head], rows, rule=True):
        print(line)
