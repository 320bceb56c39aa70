"""Operability against real processes: Prometheus metrics summed over two api processes and a
worker, request ids from the proxy header to the worker's log, traces through the outbox,
and a bounded shutdown with a request stuck on a lock."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import mint_token
from tests.automation.support import add_rule, definition
from tests.support.factories import Tenant, make_tenant
from tests.support.gqlws import GqlWsClient
from tests.support.procs import free_port
from tests.support.stack import ApiProcess, ServiceProcess, WorkerProcess, child_env

pytestmark = pytest.mark.e2e

SECRET = "ops-test-secret-" + "x" * 40
ISSUER, AUDIENCE = "liftoff", "liftoff-api"
UPDATE_TASK = """mutation Move($input: UpdateTaskInput!) {
  updateTask(input: $input) { task { key status } }
}"""
ACTIVITY = "subscription Feed { activity { id type } }"


@dataclass
class Ops:
    api: ApiProcess
    worker: WorkerProcess
    worker_metrics: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def ops(database_url: str, redis_url: str) -> Iterator[Ops]:
    env = child_env(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=SECRET,
        outbox_poll_seconds=0.2,
        log_format="json",
    )
    env["LIFTOFF_WS_MAX_PER_SUBJECT"] = "5"
    port = free_port()
    api = ApiProcess("ops-api", env)
    api.args += ["--workers", "2"]
    worker = WorkerProcess("ops-worker", {**env, "LIFTOFF_WORKER_METRICS_PORT": str(port)})
    processes: list[ServiceProcess] = [api, worker]
    try:
        api.spawn()
        worker.spawn()
        api.wait_ready(timeout=60)
        worker.wait_ready()
        yield Ops(api, worker, f"http://127.0.0.1:{port}/metrics", env)
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # One connection per request, so the two api processes share the work.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        yield client


def token(tenant: Tenant, role: Role, customer_id: uuid.UUID | None = None) -> str:
    return mint_token(
        secret=SECRET,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject=tenant.admin.subject if role is Role.ADMIN else f"c-{uuid.uuid4().hex[:6]}",
        organization_id=tenant.id,
        role=role,
        customer_id=customer_id,
    )


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? ([-+\deE.infNa]+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


async def scrape(http: httpx.AsyncClient, url: str) -> str:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.text


async def move(
    http: httpx.AsyncClient, api: ApiProcess, bearer: str, customer: uuid.UUID, **headers: str
) -> httpx.Response:
    variables = {
        "input": {"customerId": str(customer), "taskKey": "verify_email", "action": "COMPLETE"}
    }
    return await http.post(
        api.graphql_url,
        json={"query": UPDATE_TASK, "variables": variables, "operationName": "Move"},
        headers={"Authorization": f"Bearer {bearer}", **headers},
    )


# The two tests below run before the module's `ops` processes start: its worker would
# otherwise relay their events too (one database for the whole module).


async def test_sigterm_with_a_stuck_request_exits_within_the_timeout(
    db: str, database_url: str, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    env = child_env(
        database_url=database_url,
        redis_url=None,
        secret_key=SECRET,
        shutdown_seconds=4,
        inline_worker="false",
    )
    api = ApiProcess("ops-stuck", env)
    holder = await asyncpg.connect(database_url)
    try:
        api.spawn().wait_ready(timeout=60)
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "SELECT 1 FROM workflow WHERE customer_id = $1 FOR UPDATE", customer.id
        )
        stuck = asyncio.ensure_future(move(http, api, token(tenant, Role.ADMIN), customer.id))
        await asyncio.sleep(1.0)
        assert not stuck.done(), "the request waits for the lock"
        assert api.pid is not None
        started = time.monotonic()
        os.kill(api.pid, signal.SIGTERM)
        process = api._process
        assert process is not None
        while process.poll() is None and time.monotonic() - started < 30:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        took = time.monotonic() - started
        assert process.poll() is not None, "still running"
        assert took < 4 + 3, f"exit took {took:.1f}s"
        stuck.cancel()
        await tx.rollback()
    finally:
        await holder.close()
        api.stop()


async def test_traces_follow_an_event_from_the_request_to_the_relay(
    db: str, database_url: str, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    env = child_env(
        database_url=database_url, redis_url=None, secret_key=SECRET, outbox_poll_seconds=0.2
    )
    env["OTEL_TRACES_EXPORTER"] = "console"
    api = ApiProcess("ops-trace", env)
    try:
        api.spawn().wait_ready(timeout=60)
        response = await move(http, api, token(tenant, Role.ADMIN), customer.id)
        assert response.status_code == 200 and not response.json().get("errors")

        def spans() -> list[dict[str, object]]:
            found, buffer, depth = [], [], 0
            for line in api.log(tail=20_000_000).splitlines():
                if line == "{":
                    buffer, depth = [line], 1
                    continue
                if depth:
                    buffer.append(line)
                    if line == "}":
                        depth = 0
                        found.append(json.loads("\n".join(buffer)))
            return found

        def joined() -> bool:
            found = spans()
            trace_ids = {
                s["context"]["trace_id"] for s in found if s.get("name") == "graphql.operation"
            }  # type: ignore[index]
            return any(
                s["context"]["trace_id"] in trace_ids  # type: ignore[index]
                for s in found
                if s.get("name") == "relay.publish"
            )

        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not joined():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        names = {str(s.get("name")) for s in spans()}
        assert "graphql.operation" in names and "relay.publish" in names, (names, api.log())
        assert names & {"SELECT", "INSERT", "UPDATE"}, names
        assert joined(), "the relay's span belongs to the request's trace"
    finally:
        api.stop()


async def test_metrics_sum_over_both_api_processes(
    db: str, ops: Ops, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    admin = token(tenant, Role.ADMIN)
    name = f"Count{uuid.uuid4().hex[:8]}"
    pid_pattern = r'liftoff_process_resident_memory_bytes\{pid="(\d+)"\}'
    deadline = time.monotonic() + 60  # the second process may still be starting
    while time.monotonic() < deadline:
        before = await scrape(http, f"{ops.api.http_url}/metrics")
        if len(set(re.findall(pid_pattern, before))) >= 2:
            break
        await asyncio.sleep(0.5)
    for _ in range(12):
        response = await http.post(
            ops.api.graphql_url,
            json={"query": f"query {name} {{ viewer {{ role }} }}", "operationName": name},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200, response.text
    refused = await http.post(
        ops.api.graphql_url, json={"query": f"query {name} {{ viewer {{ role }} }}"}
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    after = await scrape(http, f"{ops.api.http_url}/metrics")
    assert samples(after, "liftoff_graphql_operations_total", operation=name, outcome="ok") == 12
    assert samples(after, "liftoff_graphql_operations_total", operation=name, outcome="error") == 1
    assert samples(after, "liftoff_graphql_errors_total", code="UNAUTHENTICATED") >= 1 + samples(
        before, "liftoff_graphql_errors_total", code="UNAUTHENTICATED"
    )
    assert samples(after, "liftoff_graphql_operation_seconds_count", operation=name) == 13
    # Both processes report their own memory.
    assert len(set(re.findall(pid_pattern, after))) >= 2, after[-2000:]


async def test_metrics_are_refused_to_other_networks(ops: Ops) -> None:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport, timeout=10) as other:
        response = await other.get(f"{ops.api.http_url}/metrics")
    assert response.status_code == 404


async def test_a_mutation_and_its_delivery_move_the_metrics_and_carry_the_request_id(
    db: str, ops: Ops, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    rid = f"req-{uuid.uuid4().hex[:12]}"
    api_metrics = f"{ops.api.http_url}/metrics"
    before_api = await scrape(http, api_metrics)
    before_worker = await scrape(http, ops.worker_metrics)
    client = await GqlWsClient.connect(ops.api.ws_url, token=token(tenant, Role.ADMIN))
    try:
        await client.subscribe("feed", ACTIVITY)
        running = await scrape(http, api_metrics)
        assert samples(running, "liftoff_subscriptions", field="activity") >= 1
        assert samples(running, "liftoff_websocket_connections") >= 1
        response = await move(
            http, ops.api, token(tenant, Role.ADMIN), customer.id, **{"X-Request-ID": rid}
        )
        assert response.status_code == 200 and not response.json().get("errors"), response.text
        assert response.headers["x-request-id"] == rid
        event = await client.receive("feed", within=10)
        assert event["payload"]["data"]["activity"]["type"]
    finally:
        await client.close()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after_api = await scrape(http, api_metrics)
        if (
            samples(after_api, "liftoff_subscription_deliveries_total", channel="activity")
            > (samples(before_api, "liftoff_subscription_deliveries_total", channel="activity"))
            and samples(after_api, "liftoff_subscriptions", field="activity")
            == samples(before_api, "liftoff_subscriptions", field="activity")
            and samples(after_api, "liftoff_group_commit_batches_total")
            > samples(before_api, "liftoff_group_commit_batches_total")
        ):  # the step's write went through group commit, counted by its api process
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(after_api[-3000:])
    assert samples(after_api, "liftoff_delivery_latency_seconds_count", channel="activity") > 0
    assert (
        samples(
            after_api,
            "liftoff_graphql_operations_total",
            operation="Move",
            type="mutation",
            outcome="ok",
        )
        >= 1
    )
    after_worker = await scrape(http, ops.worker_metrics)
    assert samples(after_worker, "liftoff_relay_events_total") > samples(
        before_worker, "liftoff_relay_events_total"
    )
    assert "liftoff_outbox_oldest_pending_seconds" in after_worker

    def lines(process: ServiceProcess) -> list[dict[str, object]]:
        found = []
        for line in process.log(tail=5_000_000).splitlines():
            if rid in line and line.startswith("{"):
                found.append(json.loads(line))
        return found

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lines(ops.worker):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    api_lines = [line for line in lines(ops.api) if line.get("event") == "graphql"]
    assert api_lines and api_lines[0]["operation"] == "Move" and api_lines[0]["outcome"] == "ok"
    assert api_lines[0]["org"] == str(tenant.id) and api_lines[0]["role"] == "ADMIN"
    worker_lines = [line for line in lines(ops.worker) if line.get("event") == "relay.published"]
    assert worker_lines and worker_lines[0]["request_id"] == rid
    assert "Bearer" not in ops.api.log(tail=5_000_000)


async def test_an_automation_email_counts_as_an_external_delivery_on_the_workers_metrics(
    db: str, ops: Ops, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    await add_rule(
        tenant,
        definition("customer.created", {"type": "send_email", "subject": "Hi", "text": "Hello"}),
    )
    before = await scrape(http, ops.worker_metrics)
    await tenant.customer()  # its customer.created event fires the rule in the worker
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = await scrape(http, ops.worker_metrics)
        sent = samples(after, "liftoff_external_deliveries_total", kind="email", outcome="sent")
        if sent > samples(
            before, "liftoff_external_deliveries_total", kind="email", outcome="sent"
        ):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(after[-3000:])
    assert samples(after, "liftoff_external_delivery_seconds_count", kind="email") > samples(
        before, "liftoff_external_delivery_seconds_count", kind="email"
    )


async def test_a_websocket_over_its_cap_counts_as_rate_limited_on_the_metrics(
    db: str, ops: Ops, http: httpx.AsyncClient
) -> None:
    tenant = await make_tenant()
    bearer = token(tenant, Role.ADMIN)
    before = await scrape(http, f"{ops.api.http_url}/metrics")
    clients = []
    try:
        refused = None
        for _ in range(12):  # LIFTOFF_WS_MAX_PER_SUBJECT is 5 per api process (two here)
            try:
                clients.append(await GqlWsClient.connect(ops.api.ws_url, token=bearer))
            except Exception as exc:
                refused = exc
                break
        assert refused is not None, "no websocket was refused"
    finally:
        for client in clients:
            await client.close()
    after = await scrape(http, f"{ops.api.http_url}/metrics")
    assert samples(after, "liftoff_rate_limited_total", budget="websockets:subject") > samples(
        before, "liftoff_rate_limited_total", budget="websockets:subject"
    )
