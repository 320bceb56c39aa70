"""Database connections killed under a running api and worker (`pg_terminate_backend`, again
and again): the worker keeps relaying, requests in flight are never internal errors, and a
request that reported success was committed while one that reported failure was not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from tests.conftest import drop_database, with_database
from tests.support.processes import liftoff_env, run_liftoff
from tests.support.stack import ApiProcess, WorkerProcess, child_env

pytestmark = pytest.mark.e2e

SECRET = "e2e-connection-kills-secret-key-long-enough-for-hs256"
CREATE = """mutation($e: String!) { createCustomer(input: {email: $e, name: "K"}) {
  id workflow { status } } }"""
ROUNDS = 8


@dataclass
class Deployment:
    database_url: str
    api: ApiProcess
    worker: WorkerProcess
    admin: str


@pytest.fixture(scope="module")
async def own_database(database_server_url: str) -> AsyncIterator[str]:
    """A database of its own (its connections get killed), migrated by `liftoff migrate` in
    a child process: this process's database connections are left alone."""
    name = f"liftoff_kills_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(with_database(database_server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(database_server_url, name)
    run_liftoff("migrate", env=liftoff_env({"DATABASE_URL": url}))
    yield url
    await drop_database(database_server_url, url)


@pytest.fixture(scope="module")
def deployment(own_database: str, redis_url: str) -> Iterator[Deployment]:
    env = child_env(
        database_url=own_database, redis_url=redis_url, secret_key=SECRET, inline_worker="false"
    )
    slug = f"kill-{uuid.uuid4().hex[:8]}"
    done = run_liftoff(
        "create-org",
        "--name",
        "K",
        "--slug",
        slug,
        "--admin-email",
        f"a@{slug}.test",
        env=liftoff_env({"DATABASE_URL": own_database, "LIFTOFF_SECRET_KEY": SECRET}),
    )
    admin = done.stdout.strip().splitlines()[-1].strip()
    api = ApiProcess("kills-api", env).spawn().wait_ready(60)
    worker = WorkerProcess("kills-worker", env).spawn().wait_ready(60)
    try:
        yield Deployment(own_database, api, worker, admin)
    finally:
        api.stop()
        worker.stop()


async def kill_connections(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(killed)
    finally:
        await conn.close()


async def pending_events(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
        )
    finally:
        await conn.close()


async def customer_exists(url: str, email: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM customer WHERE email = $1", email))
    finally:
        await conn.close()


async def test_relay_and_requests_survive_repeated_connection_kills(
    deployment: Deployment,
) -> None:
    url = deployment.database_url
    answers: list[tuple[str, dict[str, object]]] = []
    killed = 0
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {deployment.admin}"}
    ) as client:

        async def create(email: str) -> None:
            response = await client.post(
                deployment.api.graphql_url, json={"query": CREATE, "variables": {"e": email}}
            )
            assert response.status_code < 500, response.text
            answers.append((email, response.json()))

        for _ in range(ROUNDS):
            emails = [f"k-{uuid.uuid4().hex[:10]}@example.com" for _ in range(6)]
            requests = [asyncio.create_task(create(e)) for e in emails]
            await asyncio.sleep(0.05)
            killed += await kill_connections(url)
            await asyncio.gather(*requests)
            await asyncio.sleep(0.3)
    assert killed >= ROUNDS
    codes = [
        (e.get("extensions") or {}).get("code")
        for _, body in answers
        for e in body.get("errors") or []  # type: ignore[attr-defined]
    ]
    assert "INTERNAL_SERVER_ERROR" not in codes, codes

    def reported_created(body: dict[str, object]) -> bool:
        """The answer carries the new customer's id: the mutation committed, even when a
        nested field read back afterwards lost its connection (SERVICE_UNAVAILABLE there)."""
        data = body.get("data") or {}
        created = data.get("createCustomer") if isinstance(data, dict) else None
        return isinstance(created, dict) and bool(created.get("id"))

    for email, body in answers:
        assert await customer_exists(url, email) == reported_created(body), (email, body)
    assert sum(1 for _, b in answers if reported_created(b)) > 0
    for _ in range(100):  # delivery resumes within seconds of the last kill
        if await pending_events(url) == 0:
            break
        await asyncio.sleep(0.1)
    assert await pending_events(url) == 0, deployment.worker.log()
    assert deployment.worker.running and deployment.api.running
