"""The `liftoff` command as a user runs it: each failure is one line on stderr, exit non-zero."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import create_database, drop_database, with_database
from tests.support.factories import Tenant
from tests.support.processes import liftoff_env, run_liftoff


def refused(*args: str, env: dict[str, str], timeout: float = 60) -> str:
    """Run `liftoff args`; assert it failed with one line on stderr; return that line."""
    done = run_liftoff(*args, env=env, check=False, timeout=timeout)
    assert done.returncode != 0, (args, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liftoff: "), (args, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return liftoff_env({"DATABASE_URL": database_url, "LIFTOFF_SECRET_KEY": "k" * 40})


def test_database_urls_that_cannot_work(env: dict[str, str], database_url: str) -> None:
    cases = {
        "mysql://user:secret@host/db": "must be a postgres:// URL",
        "postgres://postgres@127.0.0.1:1/liftoff": "Connect call failed",
        with_database(database_url, "no_such_database_here"): "does not exist",
    }
    for url, expected in cases.items():
        line = refused("migrate", env={**env, "DATABASE_URL": url})
        assert expected in line, (url, line)
        assert "secret" not in line, line  # passwords are not printed
    line = refused("token", "--org", "x", "--role", "CSM", env={**env, "DATABASE_URL": url})
    assert cases[url] in line, line


def test_a_database_without_tables_says_to_migrate(env: dict[str, str], database_url: str) -> None:
    line = refused(
        "token",
        "--org",
        "x",
        "--role",
        "CSM",
        env={**env, "DATABASE_URL": with_database(database_url, "postgres")},
    )
    assert "run `liftoff migrate` first" in line, line


def test_token_options_are_checked(env: dict[str, str], tenant: Tenant) -> None:
    slug = tenant.org.slug
    line = refused(
        "token", "--org", slug, "--role", "CUSTOMER", "--customer", "not-a-uuid", env=env
    )
    assert "NOT_FOUND" in line and "not-a-uuid" in line
    line = refused("token", "--org", slug, "--role", "CUSTOMER", env=env)
    assert "--customer" in line
    line = refused("token", "--org", slug, "--role", "CSM", "--ttl-hours", "0", env=env)
    assert "--ttl-hours" in line and "greater than or equal to 1" in line
    line = refused("token", "--org", slug, "--role", "boss", env=env)
    assert "ADMIN, CSM, CUSTOMER" in line and "admin" not in line
    assert "no organization 'nope'" in refused("token", "--org", "nope", "--role", "CSM", env=env)
    # any case is accepted
    assert run_liftoff("token", "--org", slug, "--role", "csm", env=env).stdout.count(".") == 2


def test_help_shows_roles_in_upper_case(env: dict[str, str]) -> None:
    text = run_liftoff("token", "--help", env={**env, "COLUMNS": "200"}).stdout
    assert "ADMIN, CSM or CUSTOMER" in text and "admin|csm" not in text


def test_messages_keep_their_brackets(env: dict[str, str], tenant: Tenant, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: tpl\nname: [a, b]: c\n")
    line = refused("install-template", "--org", tenant.org.slug, str(bad), env=env)
    assert "INVALID_TEMPLATE" in line and "name: [a, b]: c" in line, line


def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = liftoff_env({"LIFTOFF_DATA_DIR": str(tmp_path / "data")})
        line = refused("serve", "--demo", "--port", str(port), env=env, timeout=30)
    assert f"127.0.0.1:{port}" in line and "--port" in line
    assert not (tmp_path / "data" / "pgdata").exists()  # no database started, nothing seeded


@pytest.fixture
async def empty_database(database_server_url: str) -> AsyncIterator[str]:
    url = await create_database(database_server_url, migrated=False)
    yield url
    await drop_database(database_server_url, url)


def test_migrate_says_what_it_applied(empty_database: str) -> None:
    env = liftoff_env({"DATABASE_URL": empty_database})
    first = run_liftoff("migrate", env=env).stdout
    migrations = sorted(p.stem for p in Path("migrations").glob("0*.py"))
    assert f"Applied {len(migrations)} migration(s): {', '.join(migrations)}." in first, first
    again = run_liftoff("migrate", env=env).stdout
    assert "up to date: no migration to apply" in again, again


def test_uvicorn_writes_access_lines_only_where_the_log_level_lets_them_through() -> None:
    from app.cli import _level_number

    assert _level_number("info") == logging.INFO
    assert _level_number("DEBUG") < logging.INFO < _level_number("warning")
    assert _level_number("trace") == logging.INFO  # uvicorn's own level: lines kept
