"""Consumers of the outbox: every committed event handled exactly once by each consumer.

A consumer (milestones, health, automation, analytics, ...) reads the outbox in
(transaction id, event id) order, but only events of transactions below a horizon: the
oldest write transaction of this database that is still running (or, with none, the next
transaction id), and never past the consumer's own transaction. Every transaction below
that horizon has ended, so the set of events it can see never grows behind its checkpoint:
an event committed late by a long transaction is read when that transaction ends, never
skipped. Transactions of other databases on the same server do not hold it back; a long
write transaction in this database does (bulk jobs commit in chunks for that reason).

Each batch runs in one transaction that locks the consumer's checkpoint row
(`FOR UPDATE SKIP LOCKED`, so one worker at a time per consumer), calls the handler, and
advances the checkpoint; the handler's own database writes commit with it. A worker
killed mid-batch leaves nothing half done: the next one redoes the batch from the same
checkpoint. Within one customer, events of one transaction keep their sequence order;
across transactions they come in transaction-id order, which handlers must not rely on
beyond that (they read current state when order matters).

An event whose handler keeps failing (not a lost connection) is retried with backoff, then
handled alone, and after `MAX_ATTEMPTS` recorded in `consumer_failure` and skipped, so one
bad event never stops a consumer for good. A batch the database rolled back to break a
deadlock (or a serialization conflict) with another transaction is no fault of its events:
like a lost connection, it is tried again as it was, and never counts towards skipping.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from tortoise.connection import get_connection

from app.db import rolled_back, transaction
from app.events.channels import Published
from app.events.models import ConsumerFailure
from app.kit.clock import utcnow
from app.ops import metrics

log = logging.getLogger(__name__)

Handle = Callable[[Sequence[Published]], Awaitable[None]]

MAX_ATTEMPTS = 8
SINGLE_AFTER = 3
NO_LIMIT_TX = 2**63 - 1

HORIZON = """SELECT LEAST(
  pg_snapshot_xmax(q.s),{own}
  (SELECT min(x) FROM pg_snapshot_xip(q.s) AS x WHERE xid(x) IN (
     SELECT backend_xid FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL
       AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())))
)::text::bigint AS horizon
FROM (SELECT pg_current_snapshot() AS s) AS q"""
"""The horizon statement; `{own}` is `pg_current_xact_id(),` for a reader that writes (never
past its own transaction) or empty for one that must not take a transaction id."""
_HORIZON = HORIZON.format(own="\n  pg_current_xact_id(),")
_ENSURE = """INSERT INTO consumer_checkpoint (name, last_tx, last_id, updated_at)
VALUES ($1, $2, 0, now()) ON CONFLICT (name) DO NOTHING"""
_LOCK = """SELECT last_tx, last_id FROM consumer_checkpoint WHERE name = $1
FOR UPDATE SKIP LOCKED"""
_READ = """SELECT id, organization_id, customer_id, sequence, type, payload, actor, created_at, tx
FROM outbox_event
WHERE (tx, id) > ($1, $2) AND tx < $3 AND ($4::text[] IS NULL OR type LIKE ANY($4::text[]))
ORDER BY tx, id LIMIT $5"""
_ADVANCE = """UPDATE consumer_checkpoint SET last_tx = $2, last_id = $3, updated_at = now()
WHERE name = $1"""
_LAGS = """SELECT c.name, (SELECT e.created_at FROM outbox_event e
WHERE (e.tx, e.id) > (c.last_tx, c.last_id) ORDER BY e.tx, e.id LIMIT 1) AS oldest
FROM consumer_checkpoint c WHERE c.name = ANY($1::text[])"""


@dataclass(frozen=True)
class Consumer:
    """A named reader of the outbox with its handler.

    `types` are event-type prefixes (`"usage."`, `"task.completed"`); None takes every event.
    `start="now"` makes a new consumer skip the events already in the outbox.
    """

    name: str
    handle: Handle
    types: tuple[str, ...] | None = None
    batch_size: int = 200
    start: Literal["beginning", "now"] = "beginning"
    linger_seconds: float = 0.0
    """After a batch that was not full, wait this long before reading the next one, so the
    events committed meanwhile are handled together (a handler whose cost is per batch more
    than per event: many events of one customer become one refresh)."""

    def patterns(self) -> list[str] | None:
        """The SQL LIKE patterns of `types`."""
        if self.types is None:
            return None
        escaped = (
            t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for t in self.types
        )
        return [t + "%" for t in escaped]


class HandlerFailed(Exception):
    """The consumer's handler raised; the batch was rolled back."""

    def __init__(self, error: BaseException, first_event: Published) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.first_event = first_event


async def _horizon(conn: Any) -> int:
    rows = await conn.execute_query_dict(_HORIZON)
    return int(rows[0]["horizon"])


async def ensure_checkpoints(consumers: Sequence[Consumer]) -> None:
    """Create the checkpoint row of each consumer that has none yet."""
    async with transaction():
        conn = get_connection("default")
        horizon = await _horizon(conn)
        for consumer in consumers:
            start = horizon if consumer.start == "now" else 0
            await conn.execute_query(_ENSURE, [consumer.name, start])


async def consume_batch(consumer: Consumer, *, limit: int | None = None) -> int:
    """Handle the next batch in one transaction; return how many events it handled.

    Returns 0 when nothing is pending or another worker holds this consumer. Raises
    `HandlerFailed` (after rolling back) when the handler raises.
    """
    async with transaction():
        conn = get_connection("default")
        locked = await conn.execute_query_dict(_LOCK, [consumer.name])
        if not locked:
            return 0
        last_tx, last_id = int(locked[0]["last_tx"]), int(locked[0]["last_id"])
        horizon = await _horizon(conn)
        size = limit or consumer.batch_size
        rows = await conn.execute_query_dict(
            _READ, [last_tx, last_id, horizon, consumer.patterns(), size]
        )
        events = [Published.of_row(row) for row in rows]
        if events:
            try:
                await consumer.handle(events)
            except (asyncpg.PostgresConnectionError, ConnectionError, OSError):
                raise
            except Exception as exc:
                if rolled_back(exc):
                    raise  # a deadlock with another transaction: no fault of these events
                raise HandlerFailed(exc, events[0]) from exc
        # A short batch read everything below the horizon; a full one stops at its last row.
        full = len(rows) == size
        position = (int(rows[-1]["tx"]), int(rows[-1]["id"])) if full else (horizon, 0)
        if position != (last_tx, last_id):
            await conn.execute_query(_ADVANCE, [consumer.name, *position])
    if events:
        metrics.CONSUMER_EVENTS.labels(consumer.name).inc(len(events))
    return len(events)


async def skip_event(consumer: Consumer, event: Published, *, error: str, attempts: int) -> None:
    """Record `event` as failed for `consumer` and move its checkpoint past it."""
    async with transaction():
        conn = get_connection("default")
        locked = await conn.execute_query_dict(_LOCK, [consumer.name])
        if not locked:
            return
        rows = await conn.execute_query_dict(
            "SELECT tx FROM outbox_event WHERE id = $1", [event.id]
        )
        if not rows:
            return
        await ConsumerFailure.create(
            consumer=consumer.name,
            event_id=event.id,
            organization_id=event.organization_id,
            event_type=event.type,
            error=error[:4000],
            attempts=attempts,
        )
        await conn.execute_query(_ADVANCE, [consumer.name, int(rows[0]["tx"]), event.id])
    log.error(
        "consumer %s skipped event %d (%s) after %d attempts: %s",
        consumer.name,
        event.id,
        event.type,
        attempts,
        error,
    )


async def consumer_lags(names: Sequence[str]) -> dict[str, float]:
    """Seconds since the oldest event each consumer has not handled yet (0 when caught up)."""
    conn = get_connection("default")
    rows = await conn.execute_query_dict(_LAGS, [list(names)])
    now = utcnow()
    return {
        r["name"]: (now - r["oldest"]).total_seconds() if r["oldest"] is not None else 0.0
        for r in rows
    }


def prune_floor_sql(param: int) -> str:
    """SQL: the lowest transaction id the consumers named by parameter `param` still need."""
    return (
        f"(SELECT COALESCE(min(last_tx), {NO_LIMIT_TX}) FROM consumer_checkpoint "
        f"WHERE name = ANY(${param}::text[]))"
    )


async def run_consumer(
    consumer: Consumer,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    poll_seconds: float,
    backoff_seconds: float = 0.1,
) -> None:
    """Handle `consumer`'s events until `stop` is set; woken early by `wake`."""
    failures = 0
    while not stop.is_set():
        try:
            limit = 1 if failures >= SINGLE_AFTER else None
            handled = await consume_batch(consumer, limit=limit)
            failures = 0
        except HandlerFailed as exc:
            failures += 1
            metrics.CONSUMER_FAILURES.labels(consumer.name).inc()
            if failures >= MAX_ATTEMPTS:
                try:
                    await skip_event(consumer, exc.first_event, error=str(exc), attempts=failures)
                    failures = 0
                except Exception:
                    log.exception("consumer %s could not record a failed event", consumer.name)
                continue
            log.warning("consumer %s failed (%s), attempt %d", consumer.name, exc, failures)
            await _pause(stop, _backoff(failures, backoff_seconds))
            continue
        except Exception as exc:
            log.warning("consumer %s could not run (%s); retrying", consumer.name, exc)
            await _pause(stop, _backoff(3, backoff_seconds))
            continue
        if handled >= (limit or consumer.batch_size):
            continue
        if handled and consumer.linger_seconds > 0:
            await _pause(stop, consumer.linger_seconds)
            continue  # what was committed meanwhile is read as one batch
        wake.clear()
        await _pause(stop, poll_seconds, wake)


def _backoff(failures: int, base: float) -> float:
    return float(min(30.0, base * 2.0**failures)) * (0.5 + random.random() / 2)


async def _pause(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
