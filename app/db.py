"""Tortoise configuration for every domain's models, and the transaction helper."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from app.settings import Settings

APP_LABEL = "liftoff"
MODEL_MODULES = [
    "app.accounts.models",
    "app.customers.models",
    "app.onboarding.models",
    "app.events.models",
    "app.usage.models",
    "app.accounts.credentials",
    "app.audit.models",
    "app.analytics.models",
]

__all__ = ["APP_LABEL", "close_db", "database_url", "init_db", "tortoise_config", "transaction"]

transaction = in_transaction
"""`async with transaction():` opens the one transaction of a unit of work."""


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
        raise ValueError(f"DATABASE_URL must be a postgres:// URL, got {parsed.scheme!r}")
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


async def migrate(url: str) -> None:
    """Apply every pending migration."""
    from tortoise.migrations.api import migrate as migrate_api

    await migrate_api(config=tortoise_config(url))


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
