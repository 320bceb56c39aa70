"""The models and `migrations/` agree, and migrating an empty database builds every table.

`pending_model_changes` and `migrate` call `Tortoise.init`/`close_connections`, which would
re-initialise (and close) the session's own Tortoise context if run in the test's task.
They run here in a fresh thread with its own event loop and an empty contextvars context,
so the session's connection pool is left alone.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from tortoise import Tortoise

from app.db import close_db, migrate, pending_model_changes, tortoise_config
from tests.conftest import create_database, drop_database

T = TypeVar("T")


def run_isolated(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work()` to completion in a new thread, event loop and Tortoise context."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(work())  # type: ignore[arg-type]
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="isolated-tortoise")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


async def _model_tables(url: str) -> dict[str, set[str]]:
    """Each table the models need, with the columns their fields map to."""
    await Tortoise.init(config=tortoise_config(url), init_connections=False)
    try:
        tables: dict[str, set[str]] = {}
        apps = Tortoise.apps
        assert apps is not None
        for model in apps.get_models_iterable():
            meta = model._meta
            if meta.abstract:
                continue
            tables[meta.db_table] = set(meta.fields_db_projection.values())
            for name in meta.m2m_fields:
                through = getattr(meta.fields_map[name], "through", name)
                tables.setdefault(through, set())
        return tables
    finally:
        await Tortoise.close_connections()


async def _database_tables(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    tables: dict[str, set[str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], set()).add(row["column_name"])
    return tables


def test_models_need_no_migration_beyond_the_committed_ones(database_url: str) -> None:
    pending = run_isolated(lambda: pending_model_changes(database_url))
    assert pending == [], (
        f"The models changed without a migration (would write {pending}); "
        "run `liftoff makemigrations --name <what-changed>` and commit the file."
    )


async def test_fresh_database_migrates_to_every_model_table(database_server_url: str) -> None:
    url = run_isolated(lambda: create_database(database_server_url))  # creates and migrates
    try:
        expected = run_isolated(lambda: _model_tables(url))
        actual = await _database_tables(url)
        missing_tables = sorted(set(expected) - set(actual))
        assert not missing_tables, f"tables not created by the migrations: {missing_tables}"
        missing_columns = {
            table: sorted(columns - actual[table])
            for table, columns in expected.items()
            if columns - actual[table]
        }
        assert not missing_columns, f"columns not created by the migrations: {missing_columns}"
        assert len(expected) >= 9, sorted(expected)

        # Migrating again is a no-op that leaves the same tables.
        async def again() -> None:
            await migrate(url)
            await close_db()

        run_isolated(again)
        assert await _database_tables(url) == actual
    finally:
        await drop_database(database_server_url, url)


# A foreign key whose referencing column leads no index makes every delete of a referenced
# row scan the whole referencing table (ON DELETE CASCADE looks the children up by that
# column): deleting one customer would read every workflow task, usage rollup and health
# snapshot of every organization. Only the organization is exempt: one is deleted at a time,
# rarely, and every tenant table leads its indexes with `organization_id` anyway.
UNINDEXED_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS referencing, a.attname AS column_name,
       c.confrelid::regclass::text AS referenced
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'f' AND c.confrelid <> 'organization'::regclass
  AND NOT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]
  )
ORDER BY 1, 2
"""


async def test_every_foreign_key_leads_an_index(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(UNINDEXED_FOREIGN_KEYS)
    finally:
        await conn.close()
    missing = [f"{r['referencing']}.{r['column_name']} -> {r['referenced']}" for r in rows]
    assert not missing, (
        "foreign keys no index leads with (each delete of the referenced row scans the "
        f"referencing table; add an index on the column to the model's Meta): {missing}"
    )


def test_migrations_form_one_numbered_chain() -> None:
    """Each migration follows the one numbered before it: two branches landing the same number
    (or depending on the same parent) are caught here, before a database sees them."""
    folder = Path(__file__).resolve().parents[1] / "migrations"
    names = sorted(p.stem for p in folder.glob("[0-9][0-9][0-9][0-9]_*.py"))
    numbers = [int(n[:4]) for n in names]
    assert numbers == list(range(1, len(names) + 1)), f"numbers repeat or skip: {names}"
    for previous, name in itertools.pairwise(names):
        source = (folder / f"{name}.py").read_text()
        assert f"('liftoff', '{previous}')" in source, f"{name} must depend on {previous}"
