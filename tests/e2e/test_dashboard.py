"""`dashboardMetrics` over a real websocket to a real `liftoff serve` (inline worker)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.gqlws import GqlWsClient
from tests.support.processes import LiftoffServer, liftoff_env, run_liftoff

pytestmark = pytest.mark.e2e

SECRET = "e2e-dashboard-secret-key-that-is-long-enough-for-hs256"
REQUIRED = [
    "verify_email",
    "complete_profile",
    "connect_data_source",
    "invite_team",
    "create_first_project",
    "add_client",
    "build_report",
    "set_up_integration",
    "schedule_review",
]
DASHBOARD = """subscription { dashboardMetrics { generatedAt
  overview { customers completed completionRate }
  funnel { stageKey reached completed tasks { taskKey completed } } } }"""


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiftoffServer, str]]:
    env = liftoff_env({"DATABASE_URL": database_url, "LIFTOFF_SECRET_KEY": SECRET})
    slug = f"dash-{uuid.uuid4().hex[:8]}"
    done = run_liftoff(
        "create-org", "--name", "Dash", "--slug", slug, "--admin-email", f"a@{slug}.test", env=env
    )
    token = done.stdout.strip().splitlines()[-1].strip()
    log = tmp_path_factory.mktemp("dashboard") / "serve.log"
    with LiftoffServer(env=env, log_path=log, args=["--no-migrate"]) as running:
        yield running, token
    assert running.stopped_gracefully, running.output()[-4000:]


async def _post(server: LiftoffServer, token: str, query: str, variables: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


SEEN: list[dict[str, Any]] = []


async def _until(ws: GqlWsClient, check: Any, *, within: float = 30.0) -> dict[str, Any]:
    """The first message whose metrics satisfy `check` (every message kept in SEEN)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = deadline - asyncio.get_running_loop().time()
        metrics: dict[str, Any] = (await ws.next_data("dash", within=max(left, 0.1)))[
            "dashboardMetrics"
        ]
        SEEN.append(metrics)
        if check(metrics):
            return metrics


def _task(metrics: dict[str, Any], key: str) -> int:
    return next(
        t["completed"] for s in metrics["funnel"] for t in s["tasks"] if t["taskKey"] == key
    )


async def test_a_subscriber_sees_completions_change(server: tuple[LiftoffServer, str]) -> None:
    running, token = server
    signed_up = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    created = await _post(
        running,
        token,
        "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { id } }",
        {"i": {"email": "dash@example.com", "name": "Dash", "signedUpAt": signed_up}},
    )
    cid = created["createCustomer"]["id"]
    ws_url = running.graphql_url.replace("http://", "ws://")
    async with await GqlWsClient.connect(ws_url, token=token) as ws:
        await ws.subscribe("dash", DASHBOARD)
        first = await _until(ws, lambda m: m["overview"]["customers"] == 1)
        assert first["overview"]["completed"] == 0 and _task(first, "verify_email") == 0
        move = """mutation($c: ID, $k: String) { updateTask(input:
          {customerId: $c, taskKey: $k, action: COMPLETE}) { task { status } } }"""
        await _post(running, token, move, {"c": cid, "k": "verify_email"})
        step = await _until(ws, lambda m: _task(m, "verify_email") == 1)
        assert step["overview"]["completed"] == 0
        for key in REQUIRED[1:]:
            await _post(running, token, move, {"c": cid, "k": key})
        done = await _until(ws, lambda m: m["overview"]["completed"] == 1)
        assert done["overview"]["completionRate"] == 100.0
        assert [s["completed"] for s in done["funnel"]] == [1, 1, 1, 1]
    times = [datetime.fromisoformat(m["generatedAt"]) for m in SEEN]
    assert len(times) >= 3
    assert all(b - a >= timedelta(seconds=0.95) for a, b in itertools.pairwise(times))
