"""Lost database connections: recognised wherever they surface, and reads retried on a
fresh connection (a killed connection fails the statement in flight, not the next one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import asyncpg
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import require_context

P = ParamSpec("P")
T = TypeVar("T")

LOST = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    TimeoutError,
)


def default_client() -> BaseDBAsyncClient:
    """The "default" client of the current Tortoise context: what `get_connection("default")`
    answers (a transaction's client inside one; a new client when the one stored was made on
    another event loop), without the import that function runs on every call (about half of
    its cost; the hot paths ask for it on every request)."""
    return require_context().connections.get("default")


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, is a lost or unusable database connection."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, LOST):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def read_retrying(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Retry a read-only coroutine up to three times when its connection is lost."""
    return retry(
        retry=retry_if_exception(connection_lost),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.05, max=0.5),
        reraise=True,
    )(func)
