"""Fixtures: a real PostgreSQL database and a real Redis-compatible server for the suite.

`LIFTOFF_TEST_DATABASE_URL` / `LIFTOFF_TEST_REDIS_URL` point at existing servers (CI uses the
machine's); without them the embedded PostgreSQL and an embedded Valkey are started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from tortoise.context import TortoiseContext

from app.db import close_db, init_db, migrate
from tests.support.factories import Tenant, make_tenant


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give each run a temporary folder of its own, so that test runs on one machine at the
    same time never prune each other's (pytest's shared numbered folders do)."""
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="liftoff-pytest-")
        config._liftoff_basetemp = config.option.basetemp  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's own temporary folder (set LIFTOFF_KEEP_TMP=1 to keep it)."""
    made = getattr(config, "_liftoff_basetemp", None)
    if made and not os.environ.get("LIFTOFF_KEEP_TMP"):
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def database_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server URL (its `postgres` database)."""
    url = os.environ.get("LIFTOFF_TEST_DATABASE_URL")
    if url:
        return url
    from app.embedded import embedded_postgres_url

    return embedded_postgres_url(Path(tmp_path_factory.mktemp("embedded")))


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps any ?host= socket parameter)."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def create_database(server_url: str, *, migrated: bool = True) -> str:
    """A new database on the server, migrated unless told otherwise; returns its URL."""
    name = f"liftoff_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    if migrated:
        # In a Tortoise context of its own: migrating initialises Tortoise on `url`, which in
        # the current context would replace (and closing would close) the session's.
        async with TortoiseContext():
            await migrate(url)
    return url


async def drop_database(server_url: str, url: str) -> None:
    """Drop a database made by create_database."""
    name = url.partition("?")[0].rsplit("/", 1)[1]
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(database_server_url: str) -> AsyncIterator[str]:
    """A migrated database for this test session, dropped at the end."""
    url = await create_database(database_server_url)
    yield url
    await drop_database(database_server_url, url)


_tortoise_on: list[str] = []
"""The databases Tortoise was initialised on by `tortoise_on`, the current one last."""


@asynccontextmanager
async def tortoise_on(url: str) -> AsyncIterator[str]:
    """Tortoise initialised on database `url` for the block; the database it was on before
    (if any) again after it."""
    if _tortoise_on:
        await close_db()
    await init_db(url, pool_max=20)
    _tortoise_on.append(url)
    try:
        yield url
    finally:
        _tortoise_on.pop()
        await close_db()
        if _tortoise_on:
            await init_db(_tortoise_on[-1], pool_max=20)


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[str]:
    """Tortoise initialised on the session database."""
    async with tortoise_on(database_url):
        yield database_url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL: the configured server, or an embedded Valkey on its own port."""
    url = os.environ.get("LIFTOFF_TEST_REDIS_URL")
    if url:
        yield url
        return
    from tests.support.valkey import ValkeyProcess

    with ValkeyProcess() as server:
        yield server.url


@pytest.fixture
async def tenant(db: str) -> Tenant:
    """A fresh organization with its admin, a CSM and the default template installed."""
    return await make_tenant()


@pytest.fixture
async def other_tenant(db: str) -> Tenant:
    """A second, unrelated organization."""
    return await make_tenant()
