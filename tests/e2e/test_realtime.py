"""The event spine end to end: real uvicorn processes, a real worker, a Valkey of our own.

Two api processes (`liftoff serve`, no inline worker since REDIS_URL is set) and one
`liftoff worker` share the session's PostgreSQL database and a Valkey server this module
starts on its own port. Clients speak HTTP for mutations and graphql-transport-ws (through
tests/support/gqlws.py) for subscriptions. Every process is stopped when the module ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import mint_token
from app.events.models import OutboxEvent
from tests.support.factories import Tenant, last_sequence, make_tenant
from tests.support.gqlws import Closed, GqlWsClient
from tests.support.procs import free_port
from tests.support.stack import ApiProcess, ServiceProcess, WorkerProcess, child_env, running
from tests.support.valkey import ValkeyProcess

pytestmark = pytest.mark.e2e

SECRET = "liftoff-e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz"
ISSUER, AUDIENCE = "liftoff-e2e", "liftoff-e2e-api"
WAIT = 10.0

WORKFLOW_PROGRESS = """
subscription Progress($cid: ID, $after: Int) {
  workflowProgress(customerId: $cid, afterSequence: $after) {
    id sequence type customerId replayed taskKey status
    points progress estimatedMinutesRemaining currentStageKey workflowStatus payload
  }
}"""
ACTIVITY = "subscription { activity { id sequence type customerId summary } }"
UPDATE_TASK = """
mutation Move($input: UpdateTaskInput!) {
  updateTask(input: $input) {
    task { key status }
    workflow { points progress estimatedMinutesRemaining status currentStage { key } }
  }
}"""


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    valkey: ValkeyProcess
    a: ApiProcess
    b: ApiProcess
    limited: ApiProcess
    worker: WorkerProcess
    env: dict[str, str]
    processes: list[ServiceProcess] = field(default_factory=list)

    def new_worker(self) -> WorkerProcess:
        """Start another `liftoff worker` (stopped with the stack)."""
        worker = WorkerProcess(f"worker-{len(self.processes)}", self.env)
        self.processes.append(worker)
        worker.spawn().wait_ready()
        self.worker = worker
        return worker


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[Stack]:
    valkey = ValkeyProcess(port=free_port())  # a fixed port: restarts come back on it
    processes: list[ServiceProcess] = []
    try:
        valkey.start()
        env = child_env(
            database_url=database_url,
            redis_url=valkey.url,
            secret_key=SECRET,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            outbox_poll_seconds=0.2,
            graphiql="false",
        )
        a = ApiProcess("api-a", env)
        b = ApiProcess("api-b", env)
        limited = ApiProcess(
            "api-limited",
            {
                **env,
                "LIFTOFF_WS_CONNECTION_INIT_SECONDS": "0.5",
                "LIFTOFF_WS_MAX_SUBSCRIPTIONS": "2",
            },
        )
        worker = WorkerProcess("worker", env)
        processes.extend([a, b, limited, worker])
        with running(processes):
            yield Stack(valkey, a, b, limited, worker, env, processes)
    finally:
        valkey.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        yield client


@pytest.fixture
async def sockets() -> AsyncIterator[list[GqlWsClient]]:
    """Clients to close at the end of the test, whatever happens."""
    opened: list[GqlWsClient] = []
    yield opened
    for client in opened:
        await client.close()


# --- helpers -----------------------------------------------------------------------------------


def token(tenant: Tenant, role: Role, customer_id: uuid.UUID | None = None) -> str:
    return mint_token(
        secret=SECRET,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject={Role.ADMIN: tenant.admin.subject, Role.CSM: tenant.csm.subject}.get(
            role, f"customer-{uuid.uuid4().hex[:6]}@e2e.test"
        ),
        organization_id=tenant.id,
        role=role,
        customer_id=customer_id,
    )


async def move(
    http: httpx.AsyncClient,
    api: ApiProcess,
    bearer: str,
    customer_id: uuid.UUID,
    task: str,
    action: str,
    **extra: Any,
) -> dict[str, Any]:
    """updateTask over HTTP; returns the fresh workflow of the answer."""
    variables = {
        "input": {"customerId": str(customer_id), "taskKey": task, "action": action, **extra}
    }
    response = await http.post(
        api.graphql_url,
        json={"query": UPDATE_TASK, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    workflow: dict[str, Any] = body["data"]["updateTask"]["workflow"]
    return workflow


async def pending_count(organization_id: uuid.UUID) -> int:
    return await OutboxEvent.filter(
        organization_id=organization_id, published_at__isnull=True
    ).count()


class Watch:
    """One subscription of a client, with everything it received so far."""

    def __init__(self, client: GqlWsClient, op: str, field_name: str) -> None:
        self.client, self.op, self.field = client, op, field_name
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def progress(
        cls, client: GqlWsClient, op: str, *, customer: uuid.UUID | None, after: int | None
    ) -> Watch:
        watch = cls(client, op, "workflowProgress")
        variables: dict[str, Any] = {"after": after}
        if customer is not None:
            variables["cid"] = str(customer)
        await client.subscribe(op, WORKFLOW_PROGRESS, variables)
        return watch

    @classmethod
    async def activity(cls, client: GqlWsClient, op: str) -> Watch:
        await client.subscribe(op, ACTIVITY)
        return cls(client, op, "activity")

    async def next(self, *, within: float = WAIT) -> dict[str, Any]:
        event: dict[str, Any] = (await self.client.next_data(self.op, within=within))[self.field]
        self.events.append(event)
        return event

    async def take(self, n: int, *, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next(within=within) for _ in range(n)]

    async def until(self, predicate: Any, *, within: float = WAIT) -> list[dict[str, Any]]:
        """Read until an event satisfies `predicate`; return what was read."""
        deadline = time.monotonic() + within
        got: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"not received in {within}s; got {[summary(e) for e in got]}"
            got.append(await self.next(within=left))
            if predicate(got[-1]):
                return got

    async def up_to(self, sequence: int, *, within: float = WAIT) -> list[dict[str, Any]]:
        """Read until the event with `sequence` (or a later one) arrives."""
        if self.events and self.events[-1]["sequence"] >= sequence:
            return []
        return await self.until(lambda e: e["sequence"] >= sequence, within=within)

    async def silent(self, *, within: float = 0.5) -> None:
        await asyncio.sleep(within)
        assert self.client.pending(self.op) == 0, "unexpected message"

    def sequences(self) -> list[int]:
        return [e["sequence"] for e in self.events]


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("sequence"), event.get("type"), event.get("replayed"))


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


async def connect(sockets: list[GqlWsClient], api: ApiProcess, bearer: str) -> GqlWsClient:
    client = await GqlWsClient.connect(api.ws_url, token=bearer)
    sockets.append(client)
    assert client.subprotocol == "graphql-transport-ws"
    return client


async def poke(http: httpx.AsyncClient, api: ApiProcess, bearer: str, cid: uuid.UUID) -> None:
    """One harmless event for `cid` (its verify_email task must be started)."""
    await move(http, api, bearer, cid, "verify_email", "PROGRESS", progress=1)


async def listening(watch: Watch, poke: Any, *, attempts: int = 20) -> None:
    """Poke until a feed without replay hears a task event: from then on it is live."""
    for _ in range(attempts):
        await poke()
        with contextlib.suppress(TimeoutError, AssertionError):
            await watch.until(lambda e: e["type"] == "task.progressed", within=0.5)
            return
    raise AssertionError(f"{watch.op} never heard anything")


async def wait_until(predicate: Any, *, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# --- a: across processes, in commit order, tenant- and customer-scoped -----------------------


async def test_subscriber_on_a_sees_mutations_sent_to_b_in_commit_order(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    org, stranger_org = await make_tenant(), await make_tenant()
    x, y = await org.customer(), await org.customer()
    z = await stranger_org.customer()
    admin, csm = token(org, Role.ADMIN), token(org, Role.CSM)
    stranger_admin, stranger_csm = token(stranger_org, Role.ADMIN), token(stranger_org, Role.CSM)
    k = await last_sequence(x.id)

    operator = await connect(sockets, stack.a, csm)
    progress = await Watch.progress(operator, "progress", customer=x.id, after=k - 1)
    assert summary(await progress.next()) == (k, "workflow.started", True)  # listening now
    activity = await Watch.activity(operator, "activity")
    stranger = await connect(sockets, stack.a, stranger_csm)
    stranger_activity = await Watch.activity(stranger, "activity")

    customer = await connect(sockets, stack.a, token(org, Role.CUSTOMER, x.id))
    await customer.subscribe("not-mine", WORKFLOW_PROGRESS, {"cid": str(y.id), "after": 0})
    refused = await customer.receive("not-mine")
    errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
    assert refused["type"] in ("error", "next"), refused
    assert errors[0]["extensions"]["code"] == "FORBIDDEN", refused
    own = await Watch.progress(customer, "mine", customer=None, after=k - 1)
    assert summary(await own.next()) == (k, "workflow.started", True)

    # The activity feeds have no replay: an event of each organization shows they listen.
    await move(http, stack.b, stranger_admin, z.id, "verify_email", "START")
    await move(http, stack.b, admin, y.id, "verify_email", "START")
    await listening(stranger_activity, lambda: poke(http, stack.b, stranger_admin, z.id))
    await listening(activity, lambda: poke(http, stack.b, admin, y.id))

    steps = [
        ("verify_email", "START", {}),
        ("verify_email", "PROGRESS", {"progress": 50}),
        ("verify_email", "COMPLETE", {}),
        ("watch_intro", "SKIP", {}),
        ("complete_profile", "START", {}),
        ("complete_profile", "PROGRESS", {"progress": 30}),
    ]
    for task, action, extra in steps:
        workflow = await move(http, stack.b, admin, x.id, task, action, **extra)
        await move(http, stack.b, admin, y.id, "verify_email", "PROGRESS", progress=len(task))
        target = await last_sequence(x.id)
        fresh = await progress.up_to(target)
        assert fresh[-1]["sequence"] == target
        assert any(e["taskKey"] == task and e["type"] == f"task.{_past(action)}" for e in fresh)
        for event in fresh:  # every event of the step carries the figures it answered with
            assert event["replayed"] is False, summary(event)
            assert event["customerId"] == str(x.id)
            assert event["points"] == workflow["points"]
            assert event["progress"] == pytest.approx(workflow["progress"])
            assert event["estimatedMinutesRemaining"] == workflow["estimatedMinutesRemaining"]
            assert event["currentStageKey"] == workflow["currentStage"]["key"]
            assert event["workflowStatus"] == workflow["status"]

    # Concurrent mutations through both processes: delivered in commit order, one by one.
    values = [5, 15, 25, 35, 45, 55]
    await asyncio.gather(
        *(
            move(http, api, admin, x.id, "complete_profile", "PROGRESS", progress=v)
            for api, v in zip([stack.a, stack.b] * 3, values, strict=True)
        )
    )
    target = await last_sequence(x.id)
    await progress.up_to(target)
    seqs = progress.sequences()
    assert seqs == list(range(k, target + 1)), seqs
    committed = await OutboxEvent.filter(customer_id=x.id, sequence__gt=k).order_by("sequence")
    assert [(e["sequence"], e["type"], e["payload"]) for e in progress.events[1:]] == [
        (r.sequence, r.type, r.payload) for r in committed
    ]

    # The customer's own subscription saw the same stream, and nothing of Y.
    await own.up_to(target)
    assert own.sequences() == seqs
    assert {e["customerId"] for e in own.events} == {str(x.id)}
    assert customer.pending("not-mine") <= 1  # at most the `complete` after the error
    while customer.pending("not-mine"):
        assert (await customer.receive("not-mine"))["type"] == "complete"

    # A last event in the second organization: its feed saw only its own customer.
    await move(http, stack.b, stranger_admin, z.id, "verify_email", "PROGRESS", progress=99)
    await stranger_activity.until(lambda e: e["type"] == "task.progressed")
    assert {e["customerId"] for e in stranger_activity.events} == {str(z.id)}
    # ...while the first organization's feed saw X and Y.
    await activity.until(lambda e: e["customerId"] == str(x.id) and e["sequence"] == target)
    assert {e["customerId"] for e in activity.events} == {str(x.id), str(y.id)}


def _past(action: str) -> str:
    return {
        "START": "started",
        "PROGRESS": "progressed",
        "COMPLETE": "completed",
        "SKIP": "skipped",
        "FAIL": "failed",
        "RETRY": "retried",
    }[action]


async def test_workflow_progress_sequences_increase_by_one_across_a_stage_completion(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    org = await make_tenant()
    x = await org.customer()
    admin = token(org, Role.ADMIN)
    k = await last_sequence(x.id)
    client = await connect(sockets, stack.a, admin)
    progress = await Watch.progress(client, "p", customer=x.id, after=k - 1)
    await progress.next()
    await move(http, stack.b, admin, x.id, "verify_email", "COMPLETE")
    await move(http, stack.b, admin, x.id, "complete_profile", "COMPLETE")  # stage done
    await move(http, stack.b, admin, x.id, "connect_data_source", "START")
    await progress.until(lambda e: e["type"] == "task.started")
    seqs = progress.sequences()
    assert seqs == list(range(k, k + len(seqs))), seqs


# --- b: a Redis restart under connected subscribers ------------------------------------------


async def test_redis_restart_loses_nothing_and_needs_no_client_action(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    org = await make_tenant()
    x = await org.customer()
    admin = token(org, Role.ADMIN)
    k = await last_sequence(x.id)
    on_a = await Watch.progress(
        await connect(sockets, stack.a, admin), "p", customer=x.id, after=k - 1
    )
    on_b = await Watch.progress(
        await connect(sockets, stack.b, admin), "p", customer=x.id, after=k - 1
    )
    for watch in (on_a, on_b):
        await watch.next()
    await move(http, stack.b, admin, x.id, "verify_email", "START")
    target = await last_sequence(x.id)
    for watch in (on_a, on_b):
        await watch.up_to(target)

    await asyncio.to_thread(stack.valkey.stop)
    try:
        for value in (20, 40, 60):  # committed while Redis is down
            await move(http, stack.b, admin, x.id, "verify_email", "PROGRESS", progress=value)
        await asyncio.sleep(0.3)
        assert await pending_count(org.id) >= 3  # the worker cannot publish them now
        health = await http.get(f"{stack.a.http_url}/healthz")
        assert health.status_code == 200 and health.json()["broker"] == "reconnecting"
    finally:
        await asyncio.to_thread(stack.valkey.start)  # same port
    during = await last_sequence(x.id)
    for watch in (on_a, on_b):
        await watch.up_to(during, within=25)
    health = await http.get(f"{stack.a.http_url}/healthz")
    assert (health.json()["status"], health.json()["broker"]) == ("ok", "connected")

    await asyncio.to_thread(stack.valkey.restart)  # and a restart with no pause at all
    await move(http, stack.a, admin, x.id, "verify_email", "PROGRESS", progress=80)
    final = await last_sequence(x.id)
    for watch in (on_a, on_b):
        await watch.up_to(final, within=25)
        assert watch.sequences() == list(range(k, final + 1)), watch.sequences()
        assert not watch.client.closed
        await watch.client.ping()  # the very same socket still answers
    progressed = [e["payload"]["progress"] for e in on_a.events if e["type"] == "task.progressed"]
    assert progressed == [20, 40, 60, 80]
    await wait_until(lambda: _none_pending(org.id))


async def _none_pending(organization_id: uuid.UUID) -> bool:
    return await pending_count(organization_id) == 0


# --- c: afterSequence fills a gap exactly -----------------------------------------------------


async def test_after_sequence_replays_exactly_what_was_missed_then_goes_live(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    org = await make_tenant()
    x = await org.customer()
    admin = token(org, Role.ADMIN)
    k = await last_sequence(x.id)
    first = await connect(sockets, stack.a, admin)
    watch = await Watch.progress(first, "p", customer=x.id, after=k - 1)
    await watch.next()
    await move(http, stack.b, admin, x.id, "verify_email", "START")
    seen = await last_sequence(x.id)
    await watch.up_to(seen)
    await first.close()  # the client goes away

    for value in (10, 30, 50):
        await move(http, stack.b, admin, x.id, "verify_email", "PROGRESS", progress=value)
    missed = await last_sequence(x.id)
    await wait_until(lambda: _none_pending(org.id))  # published live, to nobody

    second = await connect(sockets, stack.b, admin)
    again = await Watch.progress(second, "p", customer=x.id, after=seen)
    replayed = await again.take(missed - seen)
    assert [summary(e) for e in replayed] == [
        (s, "task.progressed", True) for s in range(seen + 1, missed + 1)
    ]
    assert [e["payload"]["progress"] for e in replayed] == [10, 30, 50]

    await move(http, stack.a, admin, x.id, "verify_email", "PROGRESS", progress=70)
    assert summary(await again.next()) == (missed + 1, "task.progressed", False)
    await again.silent()  # no duplicate of anything


# --- d: SIGKILL the worker mid-stream ---------------------------------------------------------


async def test_killing_the_worker_mid_stream_loses_nothing(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    org = await make_tenant()
    customers = [(await org.customer()).id for _ in range(2)]
    admin = token(org, Role.ADMIN)
    client = await connect(sockets, stack.a, admin)
    watches: dict[uuid.UUID, Watch] = {}
    firsts: dict[uuid.UUID, int] = {}
    for i, cid in enumerate(customers):
        await move(http, stack.b, admin, cid, "verify_email", "START")
        firsts[cid] = await last_sequence(cid)
        watches[cid] = await Watch.progress(client, f"c{i}", customer=cid, after=firsts[cid] - 1)
        await watches[cid].next()

    async def burst(cid: uuid.UUID) -> None:
        for i in range(25):
            api = (stack.a, stack.b)[i % 2]
            await move(http, api, admin, cid, "verify_email", "PROGRESS", progress=i * 4)

    bursts = [asyncio.create_task(burst(cid)) for cid in customers]
    try:
        watch = watches[customers[0]]
        await watch.take(5)  # the worker is relaying the burst...
        old = stack.worker
        await asyncio.to_thread(old.kill)  # ...when it is SIGKILLed
        await asyncio.gather(*bursts)
    finally:
        for task in bursts:
            task.cancel()
    assert await pending_count(org.id) > 0  # left behind: no other relay is running
    await asyncio.to_thread(stack.new_worker)

    for cid, w in watches.items():
        last = await last_sequence(cid)
        await w.up_to(last, within=25)
        unique = sorted(set(w.sequences()))  # a client dedupes by sequence
        assert unique == list(range(firsts[cid], last + 1)), w.sequences()
        assert w.sequences() == unique  # the feed itself already delivered each once
    await wait_until(lambda: _none_pending(org.id))


# --- e: authentication and limits of the websocket --------------------------------------------


async def test_connection_init_authenticates(stack: Stack, db: str) -> None:
    org = await make_tenant()
    url = stack.limited.ws_url
    forged = mint_token(
        secret="not-the-secret-" * 4,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject="x@e2e.test",
        organization_id=org.id,
        role=Role.ADMIN,
    )
    for payload in (
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {forged}"},
        {},
    ):
        client = await GqlWsClient.open(url)
        try:
            with pytest.raises(Closed) as refused:
                await client.init(payload)
            assert refused.value.code == 4403, payload
        finally:
            await client.close()

    good = await GqlWsClient.connect(url, token=token(org, Role.CSM))
    try:
        await good.ping()
        assert good.pongs_received == 1
    finally:
        await good.close()


async def test_a_socket_without_connection_init_is_closed(stack: Stack) -> None:
    client = await GqlWsClient.open(stack.limited.ws_url)
    try:
        code, _ = await client.wait_closed(within=5)
        assert code == 4408
    finally:
        await client.close()


async def test_subscriptions_per_connection_are_capped(stack: Stack, db: str) -> None:
    org = await make_tenant()
    client = await GqlWsClient.connect(stack.limited.ws_url, token=token(org, Role.CSM))
    try:
        for op in ("1", "2", "3"):
            await client.subscribe(op, ACTIVITY)
        refused = await client.receive("3")
        assert refused["type"] == "error", refused
        assert "limit" in refused["payload"][0]["message"].lower()
        await asyncio.sleep(0.3)
        assert client.pending("1") == client.pending("2") == 0  # the first two still run
        assert not client.closed
    finally:
        await client.close()


async def test_only_graphql_transport_ws_is_spoken(stack: Stack) -> None:
    client = await GqlWsClient.open(stack.limited.ws_url, subprotocols=("graphql-ws",))
    try:
        code, _ = await client.wait_closed(within=5)
        assert code == 4406
    finally:
        await client.close()


CELEBRATIONS = "subscription { celebrations { sequence kind title message stageKey } }"


async def progress_and_celebrations(
    stack: Stack, http: httpx.AsyncClient, sockets: list[GqlWsClient], *, pause: float
) -> None:
    """A frontend's two subscriptions on one customer; both must hear the stage completion."""
    org = await make_tenant()
    x = await org.customer()
    admin = token(org, Role.ADMIN)
    await move(http, stack.b, admin, x.id, "verify_email", "COMPLETE")
    frontend = await connect(sockets, stack.a, token(org, Role.CUSTOMER, x.id))
    await frontend.subscribe("progress", WORKFLOW_PROGRESS, {})
    await asyncio.sleep(pause)
    await frontend.subscribe("celebrations", CELEBRATIONS)
    await asyncio.sleep(0.5)  # neither has a replay to show it listens: give them a moment

    await move(http, stack.b, admin, x.id, "complete_profile", "COMPLETE")  # finishes Welcome
    party = (await frontend.next_data("celebrations", within=5))["celebrations"]
    assert party["kind"] == "STAGE_COMPLETED" and party["stageKey"] == "welcome"
    progress = (await frontend.next_data("progress", within=5))["workflowProgress"]
    assert progress["type"] == "task.completed"


async def test_progress_and_celebrations_subscribed_one_after_the_other(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    await progress_and_celebrations(stack, http, sockets, pause=0.5)


async def test_progress_and_celebrations_subscribed_together(
    stack: Stack, db: str, http: httpx.AsyncClient, sockets: list[GqlWsClient]
) -> None:
    await progress_and_celebrations(stack, http, sockets, pause=0)
