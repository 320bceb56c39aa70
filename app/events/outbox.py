"""Recording domain events in the outbox, inside the caller's transaction."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import structlog
from tortoise.connection import get_connection

from app.kit.clock import utcnow
from app.kit.context import request_id
from app.ops import tracing

NOTIFY_CHANNEL = "liftoff_outbox"
NOTIFY_INTERVAL = 0.05
"""Seconds between two NOTIFYs of `wake_relay` in one process at least: how much later than
its commit a step of a steady stream may reach the relay (a step alone: at once)."""

log = structlog.get_logger(__name__)

_RECORDING = """seq AS (
  INSERT INTO event_stream (id, organization_id, last_sequence) VALUES ($1, $2, $3)
  ON CONFLICT (id) DO UPDATE SET last_sequence = event_stream.last_sequence + EXCLUDED.last_sequence
  WHERE event_stream.organization_id = EXCLUDED.organization_id
  RETURNING last_sequence
), ins AS (
  INSERT INTO outbox_event (organization_id, customer_id, stream, sequence, type, payload, actor,
                            created_at, trace)
  SELECT $2, $4, $1, seq.last_sequence - $3 + e.n, e.type, e.payload::jsonb, $5, $6, $9::jsonb
  FROM seq, unnest($7::text[], $8::text[]) WITH ORDINALITY AS e(type, payload, n)
)"""
_RECORDED = "SELECT seq.last_sequence, pg_notify($10, $11) FROM seq"
_RECORDED_QUIET = "SELECT seq.last_sequence, true FROM seq"
"""Without the NOTIFY, for a statement committed on its own: the caller wakes the relay after
it with `wake_relay` (see there why)."""
_PARAMETER = re.compile(r"\$(\d+)")
compact_json = json.JSONEncoder(separators=(",", ":")).encode
"""`json.dumps(value, separators=(",", ":"))` with one encoder made once (json.dumps makes a
new one per call when given any option)."""


@dataclass(frozen=True)
class Recording:
    """The SQL of recording events, to run alone (`record`) or after other common table
    expressions in the same statement (`statement`): `ctes` and `select` with their
    parameters numbered from `first`, and `parameters` in that order."""

    ctes: str
    select: str
    parameters: list[Any]
    count: int

    def sequences(self, rows: Sequence[Any]) -> list[int]:
        """The sequences given, from the rows of the statement."""
        if not rows:
            raise RuntimeError(f"event stream {self.parameters[0]} belongs to another organization")
        last = int(rows[0][0])
        return list(range(last - self.count + 1, last + 1))


@lru_cache(maxsize=32)
def _numbered(first: int, guard: str | None, notify: bool = True) -> tuple[str, str]:
    def shifted(sql: str) -> str:
        return _PARAMETER.sub(lambda m: f"${int(m.group(1)) + first - 1}", sql)

    ctes = _RECORDING
    if guard is not None:
        ctes = ctes.replace(
            "VALUES ($1, $2, $3)", f"SELECT $1::uuid, $2::uuid, $3::bigint FROM {guard}"
        )
    return shifted(ctes), shifted(_RECORDED if notify else _RECORDED_QUIET)


def recording(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    events: Sequence[tuple[str, dict[str, Any]]],
    actor: str | None = None,
    first: int = 1,
    guard: str | None = None,
    notify: bool = True,
) -> Recording:
    """What `record` runs, with parameters numbered from `first` (for a combined statement);
    with `guard`, the name of an earlier CTE, nothing is recorded when it has no row. Without
    `notify` the statement sends no NOTIFY: only for a statement that commits on its own,
    whose caller then calls `wake_relay`."""

    trace = current_trace()
    ctes, select = _numbered(first, guard, notify)
    parameters = [
        customer_id or organization_id,
        organization_id,
        len(events),
        customer_id,
        actor,
        utcnow(),
        [kind for kind, _ in events],
        [compact_json(payload) for _, payload in events],
        None if trace is None else compact_json(trace),
    ]
    if notify:
        parameters += [NOTIFY_CHANNEL, str(organization_id)]
    return Recording(ctes=ctes, select=select, parameters=parameters, count=len(events))


class _Waker:
    """This process's NOTIFYs for events committed without one: one in flight at a time, and
    one more after it when events were committed meanwhile.

    A NOTIFY inside a transaction takes, at commit, a lock every notifying transaction of the
    server waits for, held until the commit is flushed: one per `updateTask` serialized
    the commits of all of them (measured: twice the statements per second without it, and
    less CPU per call in PostgreSQL and in the api). Sent after the commit instead, as its own
    statement, one NOTIFY covers every event committed before it was sent; under load most
    calls add none. If the process dies between the commit and the NOTIFY, the relay's poll
    (`LIFTOFF_OUTBOX_POLL_SECONDS`, 1 s) finds the events.

    NOTIFYs are also at least `interval` apart: a step alone is announced at once, a steady
    stream of steps once per interval (each NOTIFY is a statement, a write on the socket and a
    transaction in PostgreSQL; without the interval a quiet server under a steady load sent
    one for nearly every step, as the one in flight was done before the next commit).
    """

    def __init__(self, interval: float = NOTIFY_INTERVAL) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._payload = ""
        self._last = -interval

    def wake(self, payload: str) -> None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            self._again = True  # the NOTIFY in flight may predate the commit: one more after
            return
        self._payload = payload
        self._task = loop.create_task(self._run(), name="outbox-wake")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # steps committed meanwhile ride on the next NOTIFY
            self._again = False
            self._last = loop.time()
            try:
                client = get_connection("default")
                async with client.acquire_connection() as conn:
                    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, self._payload)
            except Exception as exc:  # the relay's poll finds the events
                log.warning("outbox NOTIFY failed (%s); the relay's poll will find the events", exc)
                return
            if not self._again:
                return


_waker = _Waker()


def wake_relay(organization_id: uuid.UUID) -> None:
    """Wake the relay (NOTIFY) for events recorded without `notify` by a statement that has
    committed; coalesced per process, sent from a task of its own."""
    _waker.wake(str(organization_id))


async def record(
    *,
    organization_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    events: Sequence[tuple[str, dict[str, Any]]],
    actor: str | None = None,
) -> list[int]:
    """Append events to the customer's (or organization's) stream with gap-free sequences, and
    wake the relay; one statement. Returns the sequences given.

    The stream row stays locked until the caller's transaction ends, so sequence
    order is commit order for each stream.
    """
    if not events:
        return []
    how = recording(
        organization_id=organization_id, customer_id=customer_id, events=events, actor=actor
    )
    _, rows = await get_connection("default").execute_query(
        f"WITH {how.ctes}\n{how.select}", how.parameters
    )
    return how.sequences(rows)


def current_trace() -> dict[str, str] | None:
    """The request id and traceparent to keep with events recorded now (None outside requests)."""
    trace = {"request_id": request_id.get(), "traceparent": tracing.traceparent()}
    kept = {k: v for k, v in trace.items() if v}
    return kept or None


_RECORDING_MANY = """WITH seq AS (
  INSERT INTO event_stream (id, organization_id, last_sequence)
  SELECT s.stream, $1, s.n FROM unnest($2::uuid[], $3::bigint[]) AS s(stream, n) ORDER BY s.stream
  ON CONFLICT (id) DO UPDATE SET last_sequence = event_stream.last_sequence + EXCLUDED.last_sequence
  WHERE event_stream.organization_id = EXCLUDED.organization_id
  RETURNING id, last_sequence
), ins AS (
  INSERT INTO outbox_event (organization_id, customer_id, stream, sequence, type, payload, actor,
                            created_at, trace)
  SELECT $1, e.stream, e.stream, seq.last_sequence - e.n + e.k, e.type, e.payload::jsonb, $4, $5,
         $6::jsonb
  FROM unnest($7::uuid[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])
       AS e(stream, n, k, type, payload)
  JOIN seq ON seq.id = e.stream
  ORDER BY e.stream, e.k
)
SELECT count(*) AS streams, pg_notify($12, $13) FROM seq"""


async def record_many(
    *,
    organization_id: uuid.UUID,
    events: Mapping[uuid.UUID, Sequence[tuple[str, dict[str, Any]]]],
    actor: str | None = None,
) -> int:
    """`record` for many customers' streams (set-based jobs) in one statement: each stream's
    events get its next sequences, in order; the stream rows are taken in id order and stay
    locked until the caller's transaction ends, as with `record`. Returns how many events."""
    streams = sorted(cid for cid, evs in events.items() if evs)
    if not streams:
        return 0
    counts = [len(events[s]) for s in streams]
    cols: tuple[list[Any], ...] = ([], [], [], [], [])
    for stream, n in zip(streams, counts, strict=True):
        for k, (kind, payload) in enumerate(events[stream], start=1):
            values = (stream, n, k, kind, compact_json(payload))
            for col, value in zip(cols, values, strict=True):
                col.append(value)
    trace = current_trace()
    rows = await get_connection("default").execute_query_dict(
        _RECORDING_MANY,
        [
            organization_id, streams, counts, actor, utcnow(),
            None if trace is None else compact_json(trace),
            *cols, NOTIFY_CHANNEL, str(organization_id),
        ],
    )  # fmt: skip
    if int(rows[0]["streams"]) != len(streams):
        raise RuntimeError("an event stream belongs to another organization")
    return sum(counts)
