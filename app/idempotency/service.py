"""Idempotency keys for mutations (Stripe's model): the first request with a key of a subject
applies and its answer is kept for a day; a retry with the same key and body gets that answer
back; a concurrent duplicate waits for it; the same key with another body is refused.

A key is claimed in its own short transaction before the mutation runs (`claim`). Every
transaction the mutation then opens marks the claim `applied` (`mark_applied`, run by the
transaction helper), so when the answer is lost (a killed connection, a crash) the row
still says whether the change was committed, and a retry never applies it twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from app.accounts.viewer import Viewer
from app.errors import Conflict, DomainError, ValidationFailed
from app.idempotency.models import IdempotencyKey, KeyState
from app.kit.clock import utcnow

RETENTION = timedelta(hours=24)
"""How long a key and its answer are kept."""
LEASE = timedelta(seconds=60)
"""How long an unanswered claim belongs to its request (longer than any request may run)."""
HEADER = "idempotency-key"
MAX_KEY_CHARS = 255


class KeyReused(DomainError):
    """The key was used before for a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class InProgress(DomainError):
    """The first request with this key has not answered yet."""

    code = "IDEMPOTENCY_IN_PROGRESS"


class AnswerLost(DomainError):
    """The first request with this key was applied but its answer was lost."""

    code = "IDEMPOTENCY_ANSWER_LOST"


@dataclass(frozen=True)
class Claim:
    """This request owns the key: it runs the mutation and records the answer."""

    id: int
    owner: uuid.UUID


@dataclass(frozen=True)
class Stored:
    """The answer of the first request with this key."""

    status_code: int
    response: Any


def check_key(raw: str) -> str:
    """A key of 1-255 printable ASCII characters, or VALIDATION_FAILED."""
    key = raw.strip()
    if not key or len(key) > MAX_KEY_CHARS or not all(" " <= c <= "~" for c in key):
        raise ValidationFailed(
            f"The Idempotency-Key header must be 1-{MAX_KEY_CHARS} printable ASCII characters "
            "(a UUID is a good choice).",
            field="Idempotency-Key",
        )
    return key


def fingerprint(query: str | None, variables: Any, operation_name: str | None) -> str:
    """What makes two requests the same request: the document, variables and operation."""
    canonical = json.dumps(
        [query or "", variables or {}, operation_name or ""],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


_INSERT = """INSERT INTO idempotency_key
  (organization_id, subject, key, fingerprint, state, applied, owner, created_at, locked_until,
   expires_at)
VALUES ($1, $2, $3, $4, 'IN_PROGRESS', false, $5, $6, $7, $8)
ON CONFLICT (organization_id, subject, key) DO NOTHING
RETURNING id"""
_TAKE_OVER = """UPDATE idempotency_key SET
  fingerprint = $2, state = 'IN_PROGRESS', applied = false, owner = $3, created_at = $4,
  locked_until = $5, expires_at = $6, status_code = NULL, response = NULL
WHERE id = $1 AND (expires_at <= $4
   OR (state = 'IN_PROGRESS' AND NOT applied AND locked_until <= $4))
RETURNING id"""


async def claim(viewer: Viewer, key: str, print_: str, *, now: datetime | None = None) -> Claim:
    """Take `key` for this request, or raise: the stored answer (`Replay`), the first request
    still running (`InProgress`), or another request under the same key (`KeyReused`).

    An expired key, or an unanswered claim whose lease passed without applying anything,
    is taken over.
    """
    at = now or utcnow()
    owner = uuid.uuid4()
    connection = get_connection("default")
    for _ in range(3):
        rows = await connection.execute_query_dict(
            _INSERT,
            [
                viewer.organization_id,
                viewer.subject,
                key,
                print_,
                owner,
                at,
                at + LEASE,
                at + RETENTION,
            ],
        )
        if rows:
            return Claim(id=rows[0]["id"], owner=owner)
        row = await IdempotencyKey.get_or_none(
            organization_id=viewer.organization_id, subject=viewer.subject, key=key
        )
        if row is None:  # pruned in between: insert again
            continue
        stale = row.expires_at <= at or (
            row.state is KeyState.IN_PROGRESS and not row.applied and row.locked_until <= at
        )
        if stale:
            taken = await connection.execute_query_dict(
                _TAKE_OVER, [row.id, print_, owner, at, at + LEASE, at + RETENTION]
            )
            if taken:
                return Claim(id=taken[0]["id"], owner=owner)
            continue
        raise _existing(row, print_)
    raise InProgress("This Idempotency-Key is busy; retry in a moment.", retryAfter=1)


class Replay(Exception):
    """The stored answer of the first request with this key."""

    def __init__(self, stored: Stored) -> None:
        super().__init__("replay")
        self.stored = stored


def _existing(row: IdempotencyKey, print_: str) -> Exception:
    if row.fingerprint != print_:
        return KeyReused(
            "This Idempotency-Key was used for a different request in the last 24 hours; "
            "use a new key for a new request.",
        )
    if row.state is KeyState.DONE:
        return Replay(Stored(status_code=row.status_code or 200, response=row.response))
    if row.applied and row.locked_until <= utcnow():
        return AnswerLost(
            "The first request with this Idempotency-Key was applied but its answer was "
            "lost; read the current state instead of retrying."
        )
    return InProgress(
        "The first request with this Idempotency-Key is still running; retry in a moment.",
        retryAfter=1,
    )


async def wait_for_answer(
    viewer: Viewer, key: str, print_: str, *, seconds: float
) -> Claim | Replay:
    """Claim `key`, waiting up to `seconds` while a first request with it is running; the
    claim, or the stored answer. Raises KeyReused, AnswerLost, or InProgress after the wait."""
    deadline = time.monotonic() + seconds
    pause = 0.02
    while True:
        try:
            return await claim(viewer, key, print_)
        except Replay as replay:
            return replay
        except InProgress:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 0.25)


async def mark_applied(claim_: Claim, connection: BaseDBAsyncClient) -> None:
    """Inside a transaction of the mutation: the change about to commit belongs to this key.
    A claim taken over meanwhile makes the transaction fail, so the change never lands twice."""
    count, _ = await connection.execute_query(
        "UPDATE idempotency_key SET applied = true WHERE id = $1 AND owner = $2",
        [claim_.id, claim_.owner],
    )
    if not count:
        raise Conflict(
            "This request's Idempotency-Key was taken over by a retry; nothing was changed."
        )


async def finish(claim_: Claim, *, status_code: int, response: Any) -> None:
    """Keep the answer of the claimed key for retries."""
    await get_connection("default").execute_query(
        "UPDATE idempotency_key SET state = 'DONE', status_code = $3, response = $4, "
        "locked_until = created_at WHERE id = $1 AND owner = $2",
        [claim_.id, claim_.owner, status_code, json.dumps(response)],
    )


async def release(claim_: Claim) -> bool:
    """Give the key back after an answer that must not be kept (a transient failure); a
    retry then runs the mutation again. When a transaction of the request had committed, the
    key keeps an IDEMPOTENCY_ANSWER_LOST answer instead. True when the key was given back."""
    count, _ = await get_connection("default").execute_query(
        "DELETE FROM idempotency_key WHERE id = $1 AND owner = $2 AND NOT applied",
        [claim_.id, claim_.owner],
    )
    if count:
        return True
    lost = AnswerLost(
        "The first request with this Idempotency-Key was applied but its answer was lost; "
        "read the current state instead of retrying."
    )
    body = {"data": None, "errors": [{"message": lost.message, "extensions": {"code": lost.code}}]}
    await finish(claim_, status_code=409, response=body)
    return False


async def prune(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete expired keys, `batch` at a time; how many were deleted."""
    at = now or utcnow()
    removed = 0
    while True:
        count, _ = await get_connection("default").execute_query(
            "DELETE FROM idempotency_key WHERE id IN (SELECT id FROM idempotency_key "
            "WHERE expires_at <= $1 LIMIT $2)",
            [at, batch],
        )
        removed += count
        if count < batch:
            return removed
