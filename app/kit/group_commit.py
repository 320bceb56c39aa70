"""Group commit: single statements that commit on their own, sent together.

Concurrent calls of `commit_alone` with the same statement text go to PostgreSQL as one
pipelined round trip (asyncpg `fetchmany`: one Bind/Execute per call, one Sync), which
PostgreSQL runs as ONE implicit transaction: one commit and one WAL flush for all of them.
Each statement still decides for itself (e.g. by a version guard): a later statement of
the batch sees what an earlier one changed, as if they had run one after the other.

A call made while no batch of its statement is in flight goes out at once, alone; calls
made while one is in flight wait for it and go out together right after it. A batch holds
at most `LIMIT` calls.

When a batch fails, nothing of it was committed (PostgreSQL aborts the implicit
transaction; asyncpg rolls it back when an argument fails to encode): each call is run
again on its own, so each caller gets exactly its own result or error. Except when the
connection was lost, or when a batch that committed did not answer one row per call: then
the batch may have committed (or did), and running the calls again could apply them twice,
so each caller gets the error, as it would have for its own statement on that connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncpg import Record
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

from app.kit.connections import connection_lost, default_client

__all__ = ["LIMIT", "commit_alone", "sizes"]

LIMIT = 32
"""The most calls sent in one batch."""

sizes: dict[int, int] = {}
"""How many batches of each size this process sent (size -> count)."""


@dataclass
class _Queue:
    """The calls of one statement text on one client waiting for their batch."""

    waiting: list[tuple[list[Any], asyncio.Future[Record]]] = field(default_factory=list)
    in_flight: bool = False


_queues: dict[tuple[BaseDBAsyncClient, str], _Queue] = {}


class RowsMismatch(RuntimeError):
    """A batch committed but did not answer one row per call: which row is whose is
    unknown, and running the calls again could apply them twice."""


async def commit_alone(sql: str, args: list[Any]) -> Record:
    """The one row `sql` returns for `args`, the statement committed on its own (possibly in
    one transaction with concurrent calls of the same statement, see the module). Inside a
    transaction it simply runs in it."""
    client = default_client()
    if isinstance(client, TransactionalDBClient):
        return _one(await _fetch(client, sql, [args], many=False))
    queue = _queues.get((client, sql))
    if queue is None:
        queue = _queues[(client, sql)] = _Queue()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Record] = loop.create_future()
    queue.waiting.append((args, future))
    if not queue.in_flight:
        queue.in_flight = True
        _start(client, sql, queue)
    return await future


_sending: set[asyncio.Task[None]] = set()


def _start(client: BaseDBAsyncClient, sql: str, queue: _Queue) -> None:
    waiting = [call for call in queue.waiting if not call[1].done()]  # not cancelled meanwhile
    batch, queue.waiting = waiting[:LIMIT], waiting[LIMIT:]
    if not batch:
        _idle(client, sql, queue)
        return
    task = asyncio.get_running_loop().create_task(_send(client, sql, queue, batch))
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def _send(
    client: BaseDBAsyncClient,
    sql: str,
    queue: _Queue,
    batch: list[tuple[list[Any], asyncio.Future[Record]]],
) -> None:
    try:
        sizes[len(batch)] = sizes.get(len(batch), 0) + 1
        if len(batch) == 1:
            await _alone(client, sql, *batch[0])
            return
        try:
            rows = await _fetch(client, sql, [args for args, _ in batch])
        except Exception as exc:
            if connection_lost(exc) or isinstance(exc, RowsMismatch):
                # the batch may have committed (or did): running the calls again could
                # apply them twice, so each caller gets the error
                for _, future in batch:
                    _settle(future, error=exc)
                return
            await asyncio.gather(*(_alone(client, sql, args, f) for args, f in batch))
            return
        for (_, future), row in zip(batch, rows, strict=True):
            _settle(future, row=row)
    finally:
        if queue.waiting:
            _start(client, sql, queue)
        else:
            _idle(client, sql, queue)


def _idle(client: BaseDBAsyncClient, sql: str, queue: _Queue) -> None:
    queue.in_flight = False
    if _queues.get((client, sql)) is queue:
        del _queues[(client, sql)]


async def _fetch(
    client: BaseDBAsyncClient, sql: str, args: list[list[Any]], *, many: bool = True
) -> list[Record]:
    """The rows of `sql` run for each argument list: with `many`, all in one round trip and
    one transaction (one row each, or an error); otherwise the only one alone. Logged and
    with errors translated as Tortoise does for its own statements."""

    async def run(_client: Any) -> list[Record]:
        async with client.acquire_connection() as connection:
            for one in args:
                client.log.debug("%s: %s", sql, one)
            if not many:
                rows: list[Record] = await connection.fetch(sql, *args[0])
                return rows
            rows = await connection.fetchmany(sql, args)
        return rows

    translated: list[Record] = await client._translate_exceptions(run)  # type: ignore[attr-defined]
    if many and len(translated) != len(args):
        raise RowsMismatch(f"{len(translated)} rows for {len(args)} statements; want one each")
    return translated


async def _alone(
    client: BaseDBAsyncClient, sql: str, args: list[Any], future: asyncio.Future[Record]
) -> None:
    """Run one call on its own (Tortoise's own path) and hand its caller the outcome."""
    try:
        _settle(future, row=_one(await _fetch(client, sql, [args], many=False)))
    except Exception as exc:
        _settle(future, error=exc)


def _settle(
    future: asyncio.Future[Record], *, row: Record | None = None, error: BaseException | None = None
) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert row is not None
        future.set_result(row)


def _one(rows: Sequence[Any]) -> Record:
    if len(rows) != 1:
        raise RuntimeError(f"commit_alone: the statement returned {len(rows)} rows, not one")
    row: Record = rows[0]
    return row
