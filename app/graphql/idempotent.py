"""`Idempotency-Key` on HTTP mutations: a retry gets the first answer back instead of applying
the change again; a concurrent duplicate waits for that answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.responses import JSONResponse
from strawberry.types import ExecutionResult

from app.accounts.viewer import Viewer
from app.db import transaction_hook
from app.errors import DomainError, Unavailable, ValidationFailed
from app.graphql.errors import plain
from app.idempotency import service as keys
from app.kit.connections import connection_lost

HEADER = keys.HEADER
HEADER_NAME = HEADER.encode("latin-1")
"""`HEADER` as ASGI names a request's header."""
TRANSIENT = frozenset({"RATE_LIMITED", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"})
"""Answers that are not kept for a key: the retry runs the mutation again (unless a
transaction had committed, see `keys.release`)."""
WAIT_SECONDS = 10.0
"""How long a duplicate waits for the first request's answer before IDEMPOTENCY_IN_PROGRESS."""
STATUS = {
    keys.KeyReused.code: 422,
    keys.InProgress.code: 409,
    keys.AnswerLost.code: 409,
    ValidationFailed.code: 400,
    Unavailable.code: 503,
}


class Answered(Exception):
    """The answer to send without running the operation (a replay or a refusal)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def refused(error: DomainError) -> Answered:
    extensions = {"code": error.code, **plain(error.details)}
    body = {"data": None, "errors": [{"message": error.message, "extensions": extensions}]}
    headers = {}
    if "retryAfter" in error.details:
        headers["Retry-After"] = str(int(error.details["retryAfter"]))
    return Answered(STATUS.get(error.code, 400), body, headers)


def is_mutation(query: str | None, operation_name: str | None, max_tokens: int) -> bool:
    """Whether the operation to run is a mutation (a bad document is not: it fails anyway)."""
    if not query or "mutation" not in query:
        return False
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens), operation_name)
    except GraphQLError:
        return False
    return operation is not None and operation.operation is OperationType.MUTATION


def codes(result: ExecutionResult) -> set[str]:
    return {str((e.extensions or {}).get("code")) for e in result.errors or []}


async def run_once(
    *,
    viewer: Viewer,
    raw_key: str,
    query: str | None,
    variables: Any,
    operation_name: str | None,
    execute: Callable[[], Awaitable[ExecutionResult]],
    answer: Callable[[ExecutionResult], Awaitable[tuple[int, Any]]],
) -> ExecutionResult:
    """Run the mutation once for `raw_key`; raises Answered with the first answer (or a
    refusal) when this request must not run it."""
    try:
        key = keys.check_key(raw_key)
        got = await keys.wait_for_answer(
            viewer, key, keys.fingerprint(query, variables, operation_name), seconds=WAIT_SECONDS
        )
    except DomainError as exc:
        raise refused(exc) from None
    except Exception as exc:
        if not connection_lost(exc):
            raise
        raise refused(Unavailable("The database is unreachable; retry in a moment.")) from None
    if isinstance(got, keys.Replay):
        stored = got.stored
        raise Answered(stored.status_code, stored.response, {"Idempotent-Replayed": "true"})
    hook = transaction_hook.set(partial(keys.mark_applied, got))
    try:
        result = await execute()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(keys.release(got))
        raise
    finally:
        transaction_hook.reset(hook)
    status, body = await answer(result)
    if codes(result) & TRANSIENT or status >= 500 or status == 429:
        await keys.release(got)
    else:
        await keys.finish(got, status_code=status, response=body)
    return result
