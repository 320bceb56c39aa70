"""Usage events end to end: a real `liftoff serve` and a `liftoff worker` on the session's
PostgreSQL and Redis. Events sent with an API key through `ingestEvents` complete tasks by
themselves and achieve a milestone; the customer's websocket subscribers see the task
complete, the points, the stage celebration and the milestone celebration."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import mint_token
from app.kit.clock import utcnow
from app.milestones.models import MilestoneAchievement
from app.onboarding.states import TaskAction
from tests.support.factories import Tenant, make_tenant
from tests.support.gqlws import Closed, GqlWsClient
from tests.support.stack import ApiProcess, ServiceProcess, WorkerProcess, child_env, running

pytestmark = pytest.mark.e2e

SECRET = "liftoff-e2e-usage-secret-0123456789abcdefghijklmnopqrstuvwxyz01"
ISSUER, AUDIENCE = "liftoff-e2e", "liftoff-e2e-api"
WAIT = 20.0

PROGRESS = """subscription { workflowProgress { type taskKey stageKey status pointsAwarded
  points progress payload } }"""
CELEBRATIONS = "subscription { celebrations { kind title points badge { key } } }"
INGEST = """mutation($input: IngestEventsInput!) { ingestEvents(input: $input) {
  accepted rejected items { status code } } }"""


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
    processes: list[ServiceProcess] = [ApiProcess("api", env), WorkerProcess("worker", env)]
    with running(processes):
        yield processes[0]  # type: ignore[misc]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        yield client


def token(tenant: Tenant, role: Role, customer_id: uuid.UUID | None = None) -> str:
    return mint_token(
        secret=SECRET,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject=tenant.admin.subject if role is Role.ADMIN else f"c-{uuid.uuid4().hex[:6]}@e2e",
        organization_id=tenant.id,
        role=role,
        customer_id=customer_id,
    )


async def post(
    http: httpx.AsyncClient, api: ApiProcess, query: str, variables: dict[str, Any], **headers: str
) -> dict[str, Any]:
    response = await http.post(
        api.graphql_url, json={"query": query, "variables": variables}, headers=headers
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    return body["data"]


async def take_until(
    ws: GqlWsClient, op: str, field: str, done: Any, *, within: float = WAIT
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, seen
        seen.append((await ws.next_data(op, within=left))[field])
    return seen


async def test_ingested_events_complete_tasks_and_a_milestone_live(
    api: ApiProcess, http: httpx.AsyncClient, db: str
) -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    for key in ("verify_email", "complete_profile", "watch_intro"):
        await tenant.act(customer.id, key, TaskAction.COMPLETE)  # setup is unlocked now
    created = await post(
        http, api,
        "mutation { createApiKey(name: \"backend\") { secret } }", {},
        Authorization=f"Bearer {token(tenant, Role.ADMIN)}",
    )  # fmt: skip
    key = created["createApiKey"]["secret"]
    run, now = uuid.uuid4().hex, utcnow().isoformat()
    items = [
        {"customerId": str(customer.id), "name": name, "occurredAt": now,
         "idempotencyKey": f"{run}-{i}"}
        for i, name in enumerate(["data_source_connected", "teammate_invited", "project_created"])
    ]  # fmt: skip
    bearer = token(tenant, Role.CUSTOMER, customer.id)
    async with await GqlWsClient.connect(api.ws_url, token=bearer) as ws:
        await ws.subscribe("p", PROGRESS)
        await ws.subscribe("c", CELEBRATIONS)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        answer = await post(http, api, INGEST, {"input": {"events": items}}, **{"x-api-key": key})
        assert answer["ingestEvents"]["accepted"] == 3
        progress = await take_until(
            ws, "p", "workflowProgress",
            lambda seen: any(e["pointsAwarded"] == 100 for e in seen),  # setup's reward
        )  # fmt: skip
        took = time.monotonic() - started
        celebrations = await take_until(
            ws, "c", "celebrations",
            lambda seen: {"STAGE_COMPLETED", "MILESTONE_ACHIEVED"} <= {c["kind"] for c in seen},
        )  # fmt: skip
    completed = {e["taskKey"]: e for e in progress if e["type"] == "task.completed"}
    assert set(completed) == {"connect_data_source", "invite_team"}
    trigger = completed["connect_data_source"]["payload"]["trigger"]
    assert trigger["event"] == "data_source_connected" and trigger["count"] == 1
    assert completed["connect_data_source"]["payload"]["completedBy"] == "usage"
    awarded = [e["pointsAwarded"] for e in progress if e["type"] == "points.awarded"]
    assert awarded[:2] == [30, 20] and awarded[-1] == 100
    assert any(e["type"] == "stage.completed" and e["stageKey"] == "setup" for e in progress)
    stage = next(c for c in celebrations if c["kind"] == "STAGE_COMPLETED")
    assert stage["title"] == "Setup complete!"
    milestone = next(c for c in celebrations if c["kind"] == "MILESTONE_ACHIEVED")
    assert milestone == {
        "kind": "MILESTONE_ACHIEVED",
        "title": "Milestone reached: First project",
        "points": 25,
        "badge": None,
    }
    rows = await MilestoneAchievement.filter(customer_id=customer.id).values_list(
        "milestone_key", flat=True
    )
    assert list(rows) == ["first_project"]
    print(f"ingestEvents to task.completed on the websocket: {took:.2f}s")


async def test_an_api_key_is_refused_on_the_websocket(
    api: ApiProcess, http: httpx.AsyncClient, db: str
) -> None:
    tenant = await make_tenant()
    created = await post(
        http, api,
        "mutation { createApiKey(name: \"backend\") { secret } }", {},
        Authorization=f"Bearer {token(tenant, Role.ADMIN)}",
    )  # fmt: skip
    key = created["createApiKey"]["secret"]
    client = await GqlWsClient.open(api.ws_url)
    try:
        with pytest.raises(Closed) as refused:
            await client.init({"Authorization": f"Bearer {key}"})
    finally:
        await client.close()
    assert refused.value.code == 4403  # a key's only scope is ingesting, over HTTP
