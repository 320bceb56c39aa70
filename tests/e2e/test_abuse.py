"""Abusive requests against a real `liftoff serve`: each refused quickly, without the
process growing or other requests waiting behind it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import Org, env, org, server
from tests.graphql.test_budget import fragment_bomb
from tests.support.gqlws import GqlWsClient
from tests.support.processes import LiftoffServer

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024

__all__ = ["env", "org", "server"]  # the fixtures of a served database and an organization


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_fragment_bomb_is_refused_while_health_answers(server: LiftoffServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def bomb() -> tuple[float, httpx.Response]:
            started = time.monotonic()
            response = await client.post("/graphql", json={"query": fragment_bomb(24)})
            return time.monotonic() - started, response

        async def health() -> float:
            started = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            return time.monotonic() - started

        results = await asyncio.gather(*(bomb() for _ in range(4)), *(health() for _ in range(4)))
    for seconds, response in results[:4]:  # type: ignore[misc]
        assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert seconds < 5, seconds  # it took minutes of CPU before the budget
    assert max(results[4:]) < 5  # type: ignore[type-var]


async def test_a_fragment_bomb_subscription_is_refused(server: LiftoffServer, org: Org) -> None:
    bomb = (
        fragment_bomb(24)
        .replace("query {", "subscription { activity { type } ")
        .replace("on Query", "on Subscription")
    )
    url = server.graphql_url.replace("http", "ws")
    async with await GqlWsClient.connect(url, token=org.admin_token) as ws:
        await ws.subscribe("1", bomb)
        message = await ws.receive("1", within=10)
    assert message["type"] == "error", message
    assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_huge_declared_body_is_refused_before_it_is_read(server: LiftoffServer) -> None:
    status, _ = await send_body(server, size=200 * MIB, declared=True)
    assert status == 413


async def test_a_huge_streamed_body_is_refused_without_growing(server: LiftoffServer) -> None:
    assert server.pid is not None
    before = rss_bytes(server.pid)
    status, _ = await send_body(server, size=200 * MIB, declared=False)
    after = rss_bytes(server.pid)
    assert status == 413
    assert after - before < 32 * MIB, (before, after)


async def send_body(server: LiftoffServer, *, size: int, declared: bool) -> tuple[int, float]:
    """POST `size` bytes of a JSON string in 1 MiB chunks; the status and seconds to it."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    framing = f"Content-Length: {size}" if declared else "Transfer-Encoding: chunked"
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    started = time.monotonic()
    writer.write(head.encode())
    status_line = asyncio.create_task(reader.readline())
    chunk = b"x" * MIB
    try:
        for _ in range(size // MIB):
            if status_line.done():
                break
            writer.write(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    line = await asyncio.wait_for(status_line, timeout=30)
    seconds = time.monotonic() - started
    writer.close()
    return int(line.split()[1]), seconds
