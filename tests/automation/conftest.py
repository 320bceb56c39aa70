"""The automation tests run on a database of their own. The worker's sweeps they call (time
triggers, due deliveries, waiting runs) span every organization, as they do in production, so
on the session database they would also sweep what other packages' tests left there: a seeded
demo's enabled rules fire for its customers, and their emails are sent first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import create_database, drop_database, tortoise_on


@pytest.fixture(scope="package")
async def database_url(database_server_url: str) -> AsyncIterator[str]:
    """A migrated database for the automation tests, dropped after them."""
    url = await create_database(database_server_url)
    yield url
    await drop_database(database_server_url, url)


@pytest.fixture(scope="package")
async def db(database_url: str) -> AsyncIterator[str]:
    """Tortoise on the automation tests' database; on the session database again after them."""
    async with tortoise_on(database_url):
        yield database_url
