"""Abusive requests against a real `liftoff serve` (with Redis and a worker, as in production):
how long each takes to be refused, how fast `/healthz` answers meanwhile, and the api's
memory over rounds of websocket churn (sockets that open, subscribe and close).

    python -m bench.abuse [--rounds 5] [--sockets 400] [--subscriptions 5] [--repeat 5]
                          [--feed activity|progress]

Each refusal is measured `--repeat` times, alternating the kinds of request; the report gives
medians and spread (min-max), and the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.metrics import rss_kb
from bench.procs import (
    Child,
    Teardown,
    free_port,
    guarded_main,
    liftoff_argv,
    production_env,
    raise_fd_limit,
    run,
    serve_argv,
)
from bench.report import table
from bench.tenant import seed

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
MIB = 1024 * 1024
UNLIMITED = "1000000/minute"
ACTIVITY = "subscription { activity { id type } }"
PROGRESS = "subscription($c: ID) { workflowProgress(customerId: $c) { sequence type } }"


def fragment_bomb(levels: int) -> str:
    """`query { ...F<levels> }` where each fragment spreads the one below it twice."""
    parts = ["fragment F0 on Query { __typename }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return f"query {{ ...F{levels} }} " + " ".join(parts)


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = await work()
    return time.perf_counter() - started, out


_client: Any = None


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST on one kept-alive connection (so the figures are the server's, not the client's)."""
    import httpx

    global _client
    if _client is None:
        _client = httpx.AsyncClient(timeout=600, trust_env=False)
    response = await _client.post(
        f"{url}/graphql",
        content=body,
        headers={"content-type": "application/json", **(headers or {})},
    )
    return response.status_code, response.text


async def code_of(text: str) -> str:
    try:
        return str(json.loads(text)["errors"][0]["extensions"]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return text[:40]


async def streamed_body(host: str, port: int, size: int) -> int:
    """POST `size` bytes of chunked body in 1 MiB chunks; the HTTP status."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    status = asyncio.create_task(reader.readline())
    chunk = b"x" * MIB
    try:
        for _ in range(size // MIB):
            if status.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    line = await asyncio.wait_for(status, timeout=60)
    writer.close()
    return int(line.split()[1])


async def health_during(url: str, work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Run `work` while polling /healthz; (its result, the slowest health answer in seconds)."""
    import httpx

    slowest = 0.0
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal slowest
        async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
            while not done.is_set():
                started = time.perf_counter()
                await client.get(f"{url}/healthz")
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    try:
        result = await work()
    finally:
        done.set()
        await poller
    return result, slowest


async def refusals(
    api: Child, args: argparse.Namespace, ghost_token: str, csm_token: str
) -> list[list[str]]:
    """Each abusive request `args.repeat` times, kinds alternating; one row per kind."""
    url = api.url
    assert api.port is not None
    kinds: dict[str, Callable[[], Awaitable[tuple[str, float]]]] = {}
    bomb_seconds: list[float] = []  # the request alone, without the /healthz poller

    async def ordinary() -> tuple[str, float]:
        status, _ = await post(
            url, b'{"query": "{ viewer { subject } }"}', {"authorization": f"Bearer {csm_token}"}
        )
        return f"{status} ok", 0.0

    kinds["(baseline: a valid viewer query)"] = ordinary

    def bomb(levels: int) -> Callable[[], Awaitable[tuple[str, float]]]:
        body = json.dumps({"query": fragment_bomb(levels)}).encode()

        async def go() -> tuple[str, float]:
            (took, (status, text)), slowest = await health_during(
                url, lambda: timed(lambda: post(url, body))
            )
            bomb_seconds.append(took)
            return f"{status} {await code_of(text)}", slowest

        return go

    kinds["fragment bomb, 20 levels"] = bomb(20)
    kinds["fragment bomb, 24 levels"] = bomb(24)

    async def nested() -> tuple[str, float]:
        status, text = await post(url, b"[" * 10_000 + b"]" * 10_000)
        return f"{status} {await code_of(text)}", 0.0

    kinds["10,000 nested ["] = nested

    async def big_variable() -> tuple[str, float]:
        body = json.dumps({"query": "{ __typename }", "variables": {"v": "x" * (8 * MIB)}})
        status, text = await post(url, body.encode())
        return f"{status} {await code_of(text)}", 0.0

    kinds["8 MiB declared body"] = big_variable

    async def streamed() -> tuple[str, float]:
        before = rss_kb(api.pid)
        status = await streamed_body("127.0.0.1", api.port or 0, 200 * MIB)
        grown = (rss_kb(api.pid) - before) / 1024
        return f"{status} (+{grown:.0f} MiB)", 0.0

    kinds["200 MiB chunked body"] = streamed

    async def ghost() -> tuple[str, float]:
        status, text = await post(
            url,
            b'{"query": "{ viewer { subject } }"}',
            {"authorization": f"Bearer {ghost_token}"},
        )
        return f"{status} {await code_of(text)}", 0.0

    kinds["token of no operator"] = ghost

    async def over_http() -> tuple[str, float]:
        status, text = await post(url, json.dumps({"query": ACTIVITY}).encode())
        return f"{status} {await code_of(text)}", 0.0

    kinds["subscription over HTTP"] = over_http

    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    health: dict[str, list[float]] = {k: [] for k in kinds}
    answers: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, go in kinds.items():
            took, (answer, slowest) = await timed(go)
            if name.startswith("fragment bomb"):
                took = bomb_seconds.pop()
            seconds[name].append(took)
            health[name].append(slowest)
            answers[name] = answer
    rows = []
    for name in kinds:
        s = seconds[name]
        h = [v for v in health[name] if v]
        rows.append(
            [
                name,
                answers[name],
                f"{statistics.median(s) * 1000:.1f}",
                f"{min(s) * 1000:.1f}-{max(s) * 1000:.1f}",
                f"{max(h) * 1000:.1f}" if h else "",
            ]
        )
    return rows


async def churn_round(
    ws_url: str, token: str, sockets: int, subscriptions: int, customers: list[str] | None
) -> tuple[int, float]:
    """Open `sockets` websockets with `subscriptions` activity subscriptions each, all at once
    (100 handshakes in flight), then close them all; (sockets that started, seconds)."""
    from tests.support.gqlws import GqlWsClient

    gate = asyncio.Semaphore(100)
    opened: list[GqlWsClient] = []

    async def one() -> None:
        async with gate:
            client = await GqlWsClient.connect(ws_url, token=token, within=60)
            opened.append(client)
            for n in range(subscriptions):
                if customers:  # `workflowProgress` of the customers in turn
                    await client.subscribe(str(n), PROGRESS, {"c": customers[n % len(customers)]})
                else:
                    await client.subscribe(str(n), ACTIVITY)
            await client.ping(within=60)  # the subscriptions are running once this returns

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one() for _ in range(sockets)), return_exceptions=True)
    took = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in opened))
    return sum(1 for o in outcomes if o is None), took


async def settled_rss(pid: int | None, seconds: float = 3.0) -> float:
    """The api's resident memory in MiB once it stops moving (at most `seconds` more), after
    the quiet time the api waits before it trims its heap (`app.kit.heap.QuietTrim`)."""
    await asyncio.sleep(4.0)
    last = rss_kb(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = rss_kb(pid)
        if abs(now - last) < 256:
            break
        last = now
    return rss_kb(pid) / 1024


async def bench(args: argparse.Namespace, teardown: Teardown) -> None:
    from app.accounts.models import Role
    from app.accounts.tokens import token_for
    from app.settings import Settings

    secret = secrets.token_urlsafe(32)
    db_url, pg_version = await teardown.create_database()
    seeded = await seed(db_url, secret, 3, label="abuse")
    valkey, env = await production_env(
        teardown,
        db_url,
        secret,
        "abuse",
        LIFTOFF_RATE_WS_CONNECTS=UNLIMITED,
        LIFTOFF_RATE_SUBSCRIBES=UNLIMITED,
        LIFTOFF_RATE_PER_ADDRESS=UNLIMITED,
        LIFTOFF_RATE_PER_ORGANIZATION=UNLIMITED,
        LIFTOFF_RATE_READS=UNLIMITED,
        LIFTOFF_WS_MAX_PER_SUBJECT="100000",
        LIFTOFF_WS_MAX_PER_ORGANIZATION="100000",
    )
    worker = Child("worker", liftoff_argv("worker"), {**env, "LIFTOFF_WORKER_METRICS_PORT": "0"})
    teardown.add(worker.stop)
    worker.start()
    port = free_port()
    api = Child("api", serve_argv(port), env, port=port)
    teardown.add(api.stop)
    api.start()
    await api.wait_ready()
    org_id = uuid.UUID(json.loads(seeded_claims(seeded.csm_token))["org"])
    ghost = token_for(
        Settings(secret_key=secret),
        subject="ghost@nowhere.example",
        organization_id=org_id,
        role=Role.ADMIN,
    )
    print(f"PostgreSQL {pg_version}, database {teardown.db_name}; Valkey {valkey.url}; "
          f"api pid {api.pid}; {os.cpu_count()} CPUs; load {load()}")  # fmt: skip

    if args.repeat:
        rows = await refusals(api, args, ghost, seeded.csm_token)
        print(f"\nRefusals ({args.repeat} rounds, kinds alternating; load {load()})")
        heads = ["request", "answer", "median ms", "spread ms", "slowest /healthz ms"]
        print("\n".join(table([heads], rows, align="<<>>>", rule=True)))

    ws_url = api.url.replace("http", "ws") + "/graphql"
    memory = [["start", "", "", "", f"{await settled_rss(api.pid):.1f}"]]
    for n in range(1, args.rounds + 1):
        customers = [c for c, _ in seeded.customers] if args.feed == "progress" else None
        ok, took = await churn_round(
            ws_url, seeded.csm_token, args.sockets, args.subscriptions, customers
        )
        rss = await settled_rss(api.pid)
        per_start = took * 1000 / max(1, ok * args.subscriptions)
        memory.append(
            [str(n), f"{ok}/{args.sockets}", f"{took:.1f}", f"{per_start:.2f}", f"{rss:.1f}"]
        )
        print(f"round {n}: {ok} sockets in {took:.1f} s, api RSS {rss:.1f} MiB", flush=True)
    print(
        f"\nWebsocket churn: {args.sockets} sockets x {args.subscriptions} {args.feed} "
        f"subscriptions per round, all closed after; RSS after each round (load {load()})"
    )
    heads = ["round", "sockets", "seconds", "ms per subscription start", "api RSS MiB"]
    print("\n".join(table([heads], memory, rule=True)))
    first, last = float(memory[1][4]), float(memory[-1][4])
    print(f"growth from round 1 to round {args.rounds}: {last - first:+.1f} MiB "
          f"({(last - first) / max(1, args.rounds - 1):+.2f} MiB per round)")  # fmt: skip


def seeded_claims(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="websocket churn rounds")
    p.add_argument("--sockets", type=int, default=400, help="websockets per round")
    p.add_argument("--subscriptions", type=int, default=5, help="subscriptions per websocket")
    p.add_argument("--repeat", type=int, default=5, help="times each refusal is measured (0: none)")
    p.add_argument("--feed", choices=["activity", "progress"], default="activity",
                   help="what the churned sockets subscribe to (progress: workflowProgress of "
                   "the seeded customers in turn)")  # fmt: skip
    p.add_argument("--database-url", default=None, help="PostgreSQL server (default DATABASE_URL)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    server_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_SERVER

    def body(teardown: Teardown) -> int:
        run(bench(args, teardown))
        return 0

    return guarded_main(server_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
