"""`/healthz` reports the relay lag; `/readyz` fails while the relay is behind, migrations are
missing or the database is away."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from app import probes
from app.liveness import pending_migrations, relay_lag_seconds, shipped_migrations
from app.runtime import Runtime
from tests.graphql.client import SETTINGS
from tests.support.factories import Tenant


async def get(path: str, *, max_lag: float) -> tuple[int, dict[str, Any]]:
    runtime = Runtime(SETTINGS, run_worker=False)
    app = Starlette(
        routes=[
            Route("/healthz", probes.health(runtime)),
            Route("/readyz", probes.ready(runtime, max_lag=max_lag)),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe.test") as client:
        response = await client.get(path)
    return response.status_code, response.json()


async def test_lag_is_reported_and_fails_readiness_past_the_limit(tenant: Tenant) -> None:
    await tenant.customer()  # its events wait in the outbox: no relay runs in this test
    await asyncio.sleep(0.05)
    lag = await relay_lag_seconds()
    assert lag > 0
    status, body = await get("/healthz", max_lag=0)
    assert status == 200 and body["relay_lag_seconds"] >= lag
    status, body = await get("/readyz", max_lag=lag / 2)
    assert status == 503
    assert any("relay is" in p for p in body["problems"]), body
    status, body = await get("/readyz", max_lag=10**9)
    assert (status, body["problems"], body["pending_migrations"]) == (200, [], []), body


async def test_every_shipped_migration_is_applied(db: str) -> None:
    assert "0001_initial" in shipped_migrations()
    assert await pending_migrations() == []
