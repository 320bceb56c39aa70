"""The throwaway database: its URL, creation and removal."""

from __future__ import annotations

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps any ?host= socket parameter)."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def create_database(server_url: str, name: str) -> tuple[str, str]:
    """Create database `name` on the server; return its URL and the server version."""
    import asyncpg  # here, not at import: fan-out client processes import this module too

    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        version = await conn.fetchval("SHOW server_version")
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name), str(version)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, ending any session still connected to it."""
    import asyncpg

    conn = await asyncpg.connect(with_database(server_url, "postgres"), timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()
