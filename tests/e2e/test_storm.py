"""A reconnect storm against a real `liftoff serve`: sockets open and subscribe to `activity`
all at once while mutations run, half of them drop and come back with their last `cursor`;
every subscription then holds exactly the organization's events from its first one on, in
order, none twice, none missing (checked against the outbox in PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.test_serve import CREATE_CUSTOMER, SECRET, Org, org
from tests.support.gqlws import GqlWsClient
from tests.support.processes import LiftoffServer, liftoff_env

pytestmark = pytest.mark.e2e

__all__ = ["org"]

SOCKETS, PER_SOCKET, MUTATIONS = 40, 5, 30
ACTIVITY = "subscription($after: String) { activity(after: $after) { id cursor replayed } }"
PROGRESS = """mutation($c: ID, $p: Int) { updateTask(input: {customerId: $c,
  taskKey: "verify_email", action: PROGRESS, progress: $p}) { task { progress } } }"""


@pytest.fixture(scope="module")
def env(database_url: str) -> dict[str, str]:
    return liftoff_env(
        {
            "DATABASE_URL": database_url,
            "LIFTOFF_SECRET_KEY": SECRET,
            "LIFTOFF_RATE_SUBSCRIBES": "100000/minute",
            "LIFTOFF_RATE_WS_CONNECTS": "100000/minute",
            "LIFTOFF_RATE_PER_ORGANIZATION": "100000/minute",
            "LIFTOFF_RATE_PER_ADDRESS": "100000/minute",
            "LIFTOFF_WS_MAX_PER_SUBJECT": "1000",
        }
    )


@pytest.fixture(scope="module")
def server(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiftoffServer]:
    log = tmp_path_factory.mktemp("storm") / "liftoff-serve.log"
    with LiftoffServer(env=env, log_path=log, args=["--no-migrate"]) as running:
        yield running


@dataclass
class Chain:
    """One subscription as a client sees it across reconnects: the ids it received."""

    ids: list[int] = field(default_factory=list)
    cursor: str | None = None
    replayed: int = 0


async def follow(client: GqlWsClient, op: str, chain: Chain, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            message = await client.receive(op, within=0.5)
        except TimeoutError:
            continue
        assert message["type"] == "next" and not message["payload"].get("errors"), message
        event = message["payload"]["data"]["activity"]
        chain.ids.append(int(event["id"]))
        chain.cursor = event["cursor"]
        chain.replayed += bool(event["replayed"])


async def session(
    server: LiftoffServer, token: str, chains: list[Chain], stop: asyncio.Event
) -> tuple[GqlWsClient, list[asyncio.Task[None]]]:
    client = await GqlWsClient.connect(server.url.replace("http", "ws") + "/graphql", token=token)
    readers = []
    for n, chain in enumerate(chains):
        variables = {"after": chain.cursor} if chain.cursor else {}
        await client.subscribe(str(n), ACTIVITY, variables)
        readers.append(asyncio.create_task(follow(client, str(n), chain, stop)))
    return client, readers


async def test_a_reconnect_storm_loses_and_repeats_nothing(
    server: LiftoffServer, org: Org, database_url: str
) -> None:
    token = org.admin_token
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:

        async def gql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            body: dict[str, Any] = (
                await http.post("/graphql", json={"query": query, "variables": variables})
            ).json()
            assert "errors" not in body, body
            return body["data"]  # type: ignore[no-any-return]

        email = f"storm-{uuid.uuid4().hex[:8]}@example.com"
        created = await gql(CREATE_CUSTOMER, {"input": {"email": email, "name": "Storm"}})
        customer = created["createCustomer"]["id"]
        org_id = (await gql("{ viewer { organization { id } } }", {}))["viewer"]["organization"]

        async def mutate(first: int, last: int) -> None:
            for p in range(first, last + 1):
                await gql(PROGRESS, {"c": customer, "p": p})
                await asyncio.sleep(0.05)

        third = MUTATIONS // 3
        stop = asyncio.Event()
        chains = [[Chain() for _ in range(PER_SOCKET)] for _ in range(SOCKETS)]
        driver = asyncio.create_task(mutate(1, third))
        sessions = await asyncio.gather(*(session(server, token, c, stop) for c in chains))
        await driver
        # half of the sockets drop, miss a third of the mutations, and come back with their
        # cursors while the last third runs
        for client, readers in sessions[: SOCKETS // 2]:
            for reader in readers:
                reader.cancel()
            await client.close()
        await mutate(third + 1, 2 * third)
        driver = asyncio.create_task(mutate(2 * third + 1, MUTATIONS))
        back = await asyncio.gather(
            *(session(server, token, c, stop) for c in chains[: SOCKETS // 2])
        )
        sessions = back + sessions[SOCKETS // 2 :]
        await driver

        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT id FROM outbox_event WHERE organization_id = $1 ORDER BY tx, id",
                uuid.UUID(org_id["id"]),
            )
        finally:
            await connection.close()
        truth = [int(r["id"]) for r in rows]
        everyone = [chain for group in chains for chain in group]
        deadline = asyncio.get_running_loop().time() + 60
        while any(not c.ids or c.ids[-1] != truth[-1] for c in everyone):
            assert asyncio.get_running_loop().time() < deadline, "events still missing"
            await asyncio.sleep(0.2)
        stop.set()
        for client, readers in sessions:
            for reader in readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await client.close()

    for chain in everyone:
        start = truth.index(chain.ids[0])
        assert chain.ids == truth[start:], (chain.ids, truth)
    assert sum(c.replayed for c in everyone) > 0  # the resumed ones caught up from the outbox
    # every subscription was live before the first third of the mutations was over
    assert max(truth.index(c.ids[0]) for c in everyone) <= len(truth) - 2 * (MUTATIONS // 3)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def churn(server: LiftoffServer, token: str, sockets: int) -> None:
    """`sockets` websockets with PER_SOCKET activity subscriptions each, all at once, then
    all closed."""
    gate = asyncio.Semaphore(50)
    opened: list[GqlWsClient] = []

    async def one() -> None:
        async with gate:
            client = await GqlWsClient.connect(
                server.url.replace("http", "ws") + "/graphql", token=token, within=30
            )
            opened.append(client)
            for n in range(PER_SOCKET):
                await client.subscribe(str(n), ACTIVITY)
            await client.ping(within=30)  # every subscription has started

    try:
        await asyncio.gather(*(one() for _ in range(sockets)))
    finally:
        await asyncio.gather(*(c.close() for c in opened))


async def test_websocket_churn_leaves_the_servers_memory_flat(
    server: LiftoffServer, org: Org
) -> None:
    """Rounds of sockets that open, subscribe and close: after the first round (caches and
    pools filled) the api's memory stays where it was."""
    assert server.pid is not None
    after = []
    for _ in range(4):
        await churn(server, org.admin_token, 150)
        await asyncio.sleep(2)  # closed sockets are cleaned up
        after.append(rss_mib(server.pid))
    assert after[-1] - after[0] < 5, after
