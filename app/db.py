"""Tortoise configuration for every domain's models, and the transaction helper."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import tortoise.connection
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.settings import Settings

log = logging.getLogger(__name__)

APP_LABEL = "liftoff"
MODEL_MODULES = [
    "app.accounts.models",
    "app.customers.models",
    "app.onboarding.models",
    "app.events.models",
    "app.usage.models",
    "app.accounts.credentials",
    "app.audit.models",
    "app.idempotency.models",
    "app.analytics.models",
    "app.automation.models",
    "app.deliveries.models",
    "app.notifications.models",
    "app.health.models",
    "app.milestones.models",
]

__all__ = [
    "APP_LABEL",
    "DatabaseUnavailable",
    "close_db",
    "database_url",
    "init_db",
    "may_commit_alone",
    "retried_or_skipped",
    "retried_transaction",
    "rolled_back",
    "tortoise_config",
    "transaction",
    "transaction_hook",
]

TransactionHook = Callable[[BaseDBAsyncClient], Awaitable[None]]
transaction_hook: ContextVar[TransactionHook | None] = ContextVar(
    "liftoff_transaction_hook", default=None
)
"""Run at the start of every `transaction()` of the current task (e.g. to tie the change to
the request's idempotency key in the same transaction)."""


def may_commit_alone() -> bool:
    """Whether a unit of work of the current task may be a single statement committed on its
    own, without `transaction()`: not when a transaction hook must run in its transaction."""
    return transaction_hook.get() is None


@asynccontextmanager
async def transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """`async with transaction():` opens the one transaction of a unit of work.

    Tortoise puts the transaction's connection in a context variable and takes it out
    only if returning it to the pool succeeds; when the server killed that connection,
    the release fails and every later transaction of the task would reuse the dead,
    released connection. The task's connections are put back as they were, whatever
    happened.
    """
    handler = tortoise.connection.connections
    before = handler._get_storage()
    hook = transaction_hook.get()
    try:
        async with in_transaction() as connection:
            if hook is not None:
                await hook(connection)
            yield connection
    finally:
        if handler._get_storage() is not before:
            handler._storage_var.set(before)


class DatabaseUnavailable(Exception):
    """The configured database cannot be reached or used; the message says why in one line."""


_CONNECTION_SQLSTATES = ("08", "28", "3D", "53", "57P03")  # connection, auth, database, resources


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, outermost first."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and all(seen is not c for c in chain):
        chain.append(seen)
        seen = seen.__cause__ if seen.__cause__ is not None else seen.__context__
    return chain


_CONFLICT_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure


def rolled_back(exc: BaseException) -> bool:
    """Whether the database aborted a statement of `exc`'s transaction to settle a conflict
    with another transaction (a deadlock, a serialization failure): nothing is wrong with
    the work itself, and the whole transaction done again from its start can pass."""
    return any(getattr(c, "sqlstate", None) in _CONFLICT_SQLSTATES for c in _causes(exc))


CONFLICT_ATTEMPTS = 3
"""How many times in all `retried_transaction` runs a unit the database keeps rolling back."""
CONFLICT_PAUSE = wait_exponential(multiplier=0.05, max=0.8)
"""Before attempt n + 1 of a unit rolled back n times: 0.05 s, then 0.1 s, doubling up to 0.8 s.
The other transaction usually ends within it, and the unit then waits for its locks anyway."""
T = TypeVar("T")


def _log_retry(what: str, attempts: int) -> Callable[[RetryCallState], None]:
    def logged(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s rolled back by the database (%s); attempt %d of %d",
            what,
            sqlstate_of(exc) if exc is not None else None,
            state.attempt_number + 1,
            attempts,
        )

    return logged


async def retried_transaction(
    unit: Callable[[], Awaitable[T]], *, what: str, attempts: int = CONFLICT_ATTEMPTS
) -> T:
    """`unit()` in a transaction of its own; when the database rolls that transaction back to
    settle a conflict with another one (`rolled_back`: a deadlock, a serialization failure),
    `unit()` runs again from its start in a new one, up to `attempts` times in all, each retry
    logged with `what`. The last conflict, or any other error, is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(rolled_back),
        stop=stop_after_attempt(attempts),
        wait=CONFLICT_PAUSE,
        before_sleep=_log_retry(what, attempts),
        reraise=True,
    ):
        with attempt:
            async with transaction():
                return await unit()
    raise AssertionError("unreachable")  # the last attempt returns or raises


async def retried_or_skipped(
    unit: Callable[[], Awaitable[T]], *, what: str, attempts: int = CONFLICT_ATTEMPTS
) -> T | None:
    """`retried_transaction`, except that a unit still rolled back after every attempt is
    logged and skipped (None), so the caller goes on with its other units and the skipped one
    is done by its next run; any other error is raised."""
    try:
        return await retried_transaction(unit, what=what, attempts=attempts)
    except Exception as exc:
        if not rolled_back(exc):
            raise
        log.error("%s rolled back %d times (%s); skipped until the next run", what, attempts, exc)
        return None


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of `exc` or of what caused it, when one says."""
    for cause in _causes(exc):
        code = getattr(cause, "sqlstate", None)
        if code:
            return str(code)
    return None


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot be used, when `exc` (or what caused it) says so; None otherwise."""
    from tortoise.exceptions import DBConnectionError

    chain = _causes(exc)
    for cause in chain:  # tortoise's DBConnectionError is an OSError: look behind it first
        sqlstate = str(getattr(cause, "sqlstate", "") or "")
        plain_os_error = isinstance(cause, OSError) and not isinstance(cause, DBConnectionError)
        if plain_os_error or sqlstate.startswith(_CONNECTION_SQLSTATES):
            return str(cause) or type(cause).__name__
        if sqlstate == "42P01":  # undefined table
            return f"{cause}; run `liftoff migrate` first"
    wrapped = [c for c in chain if isinstance(c, DBConnectionError)]
    return str(wrapped[0]) if wrapped else None


def redacted(url: str) -> str:
    """`url` without its password, for messages."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def database_url(settings: Settings) -> str:
    """The configured PostgreSQL URL, starting the embedded server when none is set."""
    if settings.database_url:
        return settings.database_url
    from app.embedded import embedded_postgres_url

    return embedded_postgres_url(settings.data_dir)


async def _light_reset(connection: Any) -> None:
    """What a pooled connection needs on release beyond asyncpg's own rollback: nothing.

    asyncpg's default reset runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release. The app takes only transaction-scoped advisory locks, LISTENs on a
    dedicated connection, never SETs session settings and opens cursors only inside
    transactions, so that round trip buys nothing; an open transaction is still rolled back.
    """


def _credentials(url: str, *, pool_min: int, pool_max: int) -> dict[str, Any]:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "asyncpg"}:
        raise DatabaseUnavailable(f"DATABASE_URL must be a postgres:// URL, got {redacted(url)!r}")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or parsed.hostname or "127.0.0.1"
    return {
        "host": unquote(host),
        "port": parsed.port or int(query.pop("port", 5432)),
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
        "database": (parsed.path or "/postgres").lstrip("/") or "postgres",
        "minsize": pool_min,
        "maxsize": pool_max,
        "server_settings": {"application_name": "liftoff"},
        "reset": _light_reset,
    }


def tortoise_config(url: str, *, pool_min: int = 1, pool_max: int = 10) -> dict[str, Any]:
    """The Tortoise config dict: one app holding every domain's models."""
    return {
        "connections": {
            "default": {
                "engine": "tortoise.backends.asyncpg",
                "credentials": _credentials(url, pool_min=pool_min, pool_max=pool_max),
            }
        },
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(url: str, *, pool_min: int = 1, pool_max: int = 10) -> None:
    """Initialise Tortoise for this process (usable from any task)."""
    await Tortoise.init(
        config=tortoise_config(url, pool_min=pool_min, pool_max=pool_max),
        _enable_global_fallback=True,
    )


async def close_db() -> None:
    """Close every connection opened by init_db."""
    await Tortoise.close_connections()


async def migrate(url: str) -> list[str]:
    """Apply every pending migration; return the names of those applied, in order."""
    from tortoise.migrations.api import migrate as migrate_api

    applied: list[str] = []

    def progress(event: str, _app: str, name: str) -> None:
        if event == "apply_done":
            applied.append(name)

    await migrate_api(config=tortoise_config(url), progress=progress)
    return applied


async def pending_model_changes(url: str) -> list[str]:
    """Migrations the models need beyond those in `migrations/` (empty when in sync)."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config(url)
    ctx = await Tortoise.init(config=config, init_connections=False)
    try:
        assert ctx.apps is not None
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
        return [w.name for w in writers]
    finally:
        await Tortoise.close_connections()


async def make_migrations(url: str, *, name: str | None = None) -> list[str]:
    """Write migration files for model changes; return their paths."""
    from tortoise.migrations.autodetector import MigrationAutodetector
    from tortoise.migrations.writer import format_migration_name

    config = tortoise_config(url)
    ctx = await Tortoise.init(config=config, init_connections=False)
    try:
        assert ctx.apps is not None
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
        paths = []
        for writer in writers:
            if name:
                writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), name)
            paths.append(str(writer.write()))
        return paths
    finally:
        await Tortoise.close_connections()


def connect_kwargs(url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments for a dedicated connection (e.g. LISTEN)."""
    creds = _credentials(url, pool_min=1, pool_max=1)
    return {k: creds[k] for k in ("host", "port", "user", "password", "database")}
