"""Health end to end: a real `liftoff serve` and two `liftoff worker` processes on the
session's PostgreSQL and Redis. An ingested event moves a score within seconds and a
`healthChanged` subscriber receives it; jobs report progress; overrides lapse; the daily
snapshot is taken once although both workers run it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import mint_token
from app.db import transaction
from app.health import recompute
from app.health.models import HealthDailyRun, HealthScore, HealthSnapshot
from app.kit.clock import utcnow
from app.usage.rules import EventIn
from app.usage.service import ingest_events
from tests.support.factories import Tenant, make_tenant
from tests.support.gqlws import GqlWsClient
from tests.support.stack import ApiProcess, ServiceProcess, WorkerProcess, child_env, running

pytestmark = pytest.mark.e2e

SECRET = "liftoff-e2e-health-secret-0123456789abcdefghijklmnopqrstuvwxyz"
ISSUER, AUDIENCE = "liftoff-e2e", "liftoff-e2e-api"
WAIT = 15.0

HEALTH_CHANGED = """subscription($cid: ID) { healthChanged(customerId: $cid) {
  type customerId score previousScore delta level previousLevel topReason } }"""
JOB_PROGRESS = """subscription($id: ID!) { healthJobProgress(id: $id) {
  status done total progress } }"""


@pytest.fixture(scope="module")
def api(database_url: str, redis_url: str) -> Iterator[ApiProcess]:
    env = child_env(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        outbox_poll_seconds=0.2,
        graphiql="false",
    )
    processes: list[ServiceProcess] = [
        ApiProcess("api", env), WorkerProcess("worker-1", env), WorkerProcess("worker-2", env)
    ]  # fmt: skip
    with running(processes):
        yield processes[0]  # type: ignore[misc]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        yield client


def token(tenant: Tenant, role: Role) -> str:
    return mint_token(
        secret=SECRET,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject=tenant.admin.subject if role is Role.ADMIN else tenant.csm.subject,
        organization_id=tenant.id,
        role=role,
    )


async def gql(
    http: httpx.AsyncClient, api: ApiProcess, bearer: str, query: str, **variables: Any
) -> dict[str, Any]:
    response = await http.post(
        api.graphql_url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    return body["data"]


def logins(customer_id: uuid.UUID, days: range, per_day: int) -> list[EventIn]:
    now = utcnow()
    return [
        EventIn(
            name="login",
            occurred_at=now - timedelta(days=d, minutes=5 * i + 1),
            idempotency_key=f"e2e-{customer_id}-{d}-{i}-{uuid.uuid4().hex[:6]}",
            customer_id=str(customer_id),
        )
        for d in days
        for i in range(per_day)
    ]


async def ingest(tenant: Tenant, events: list[EventIn]) -> None:
    async with transaction():
        await ingest_events(tenant.admin, events=events, actor="e2e", retention_days=400)


async def until(check: Any, *, within: float = WAIT) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_an_ingested_event_moves_the_score_live(
    api: ApiProcess, http: httpx.AsyncClient, db: str
) -> None:
    tenant = await make_tenant()
    regular, fading = await tenant.customer(), await tenant.customer()
    await ingest(tenant, logins(regular.id, range(0, 20), 3))
    await ingest(tenant, logins(fading.id, range(12, 20), 3))
    await recompute.recompute_all(tenant.id)
    before = await HealthScore.get(customer_id=fading.id)
    async with await GqlWsClient.connect(api.ws_url, token=token(tenant, Role.CSM)) as ws:
        await ws.subscribe("h", HEALTH_CHANGED, {"cid": str(fading.id)})
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await ingest(tenant, logins(fading.id, range(0, 3), 10))
        pushed = (await ws.next_data("h", within=WAIT))["healthChanged"]
        took = time.monotonic() - started
    after = await HealthScore.get(customer_id=fading.id)
    assert pushed["customerId"] == str(fading.id) and pushed["type"] == "health.changed"
    assert pushed["previousScore"] == round(before.score, 1)
    assert pushed["score"] == round(after.score, 1) and after.score >= before.score + 5
    assert took < WAIT
    print(f"event to healthChanged: {took:.2f}s")


async def test_a_job_reports_progress_to_a_subscriber(
    api: ApiProcess, http: httpx.AsyncClient, db: str
) -> None:
    tenant = await make_tenant()
    for _ in range(6):
        await tenant.customer()
    admin = token(tenant, Role.ADMIN)
    job = (await gql(http, api, admin, "mutation { recalculateHealthScores { id total } }"))[
        "recalculateHealthScores"
    ]
    assert job["total"] == 6
    seen: list[dict[str, Any]] = []
    async with await GqlWsClient.connect(api.ws_url, token=admin) as ws:
        await ws.subscribe("j", JOB_PROGRESS, {"id": job["id"]})
        while not seen or seen[-1]["status"] not in ("SUCCEEDED", "FAILED"):
            seen.append((await ws.next_data("j", within=WAIT))["healthJobProgress"])
    assert seen[-1] == {"status": "SUCCEEDED", "done": 6, "total": 6, "progress": 100.0}
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
    assert await HealthScore.filter(organization_id=tenant.id).count() == 6


async def test_an_override_lapses_by_itself(
    api: ApiProcess, http: httpx.AsyncClient, db: str
) -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    await recompute.recompute_all(tenant.id)
    computed = await HealthScore.get(customer_id=customer.id)
    expires = (utcnow() + timedelta(seconds=2)).isoformat()
    data = await gql(
        http, api, token(tenant, Role.CSM),
        "mutation($cid: ID!, $at: DateTime!) { overrideHealthScore(input: {customerId: $cid, "
        'level: CRITICAL, score: 10, reason: "Renewal at risk", expiresAt: $at}) '
        "{ score level override { reason createdBy } } }",
        cid=str(customer.id), at=expires,
    )  # fmt: skip
    shown = data["overrideHealthScore"]
    assert shown == {
        "score": 10.0,
        "level": "CRITICAL",
        "override": {"reason": "Renewal at risk", "createdBy": f"csm:{tenant.csm.subject}"},
    }

    async def restored() -> bool:
        row = await HealthScore.get(customer_id=customer.id)
        return row.override_id is None and row.score == computed.score

    assert await until(restored, within=WAIT + 10)


async def test_two_workers_take_the_daily_snapshot_once(api: ApiProcess, db: str) -> None:
    tenant = await make_tenant()
    customers = [await tenant.customer() for _ in range(3)]
    # both workers try every organization each period; the day is claimed by one of them
    await HealthDailyRun.filter(organization_id=tenant.id).delete()

    async def snapshotted() -> bool:
        return await HealthDailyRun.filter(
            organization_id=tenant.id, finished_at__not_isnull=True
        ).exists()

    await _trigger_daily()
    assert await until(snapshotted, within=60)
    snaps = await HealthSnapshot.filter(organization_id=tenant.id, kind="DAILY")
    assert sorted(str(s.customer_id) for s in snaps) == sorted(str(c.id) for c in customers)  # type: ignore[attr-defined]
    assert await HealthDailyRun.filter(organization_id=tenant.id).count() == 1


async def _trigger_daily() -> None:
    """Make the daily schedule due again now, so the running workers race for it."""
    from tortoise.connection import get_connection

    await get_connection("default").execute_query(
        "UPDATE schedule_run SET last_started_at = now() - interval '1 day' "
        "WHERE name = 'health.daily_snapshot'"
    )
