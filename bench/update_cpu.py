"""updateTask CPU per request inside one process: the api's ASGI app called directly.

    python -m bench.update_cpu [--requests 3000] [--rounds 5] [--profile FILE] [--bare]

A throwaway database seeded as `bench.workflow` seeds it, a Valkey of the run (as production
deploys the api, with its rate limits in Redis and the outbox worker elsewhere), and the app
of `app.asgi.create_app` started in this process (its lifespan too). `--concurrency` clients
send `updateTask PROGRESS` requests straight to the ASGI callable (no sockets, no HTTP
parser, no load generator in another process); each round reports this process's CPU time
(`time.process_time`) per request, which is the app's own plus asyncpg's and the event
loop's. `--profile FILE` runs the last round under cProfile and writes its stats to FILE
(`python -m pstats FILE`); `--bare` measures `bench.bare_app` the same way. Deterministic
enough to compare two versions of the code: alternate them and compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from typing import Any

from app.kit import group_commit
from bench.db import DEFAULT_SERVER
from bench.procs import Teardown, guarded_main, production_env, run
from bench.tenant import Seeded, seed
from bench.workflow_load import MakeRequest, update_requests


def _scope(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    pairs = [(k.encode(), v.encode()) for k, v in headers.items()]
    pairs += [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": pairs,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(app: Any, body: bytes, headers: dict[str, str]) -> None:
    """One request; RuntimeError unless answered 200 without errors."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the answer is written
        raise AssertionError("unreachable")

    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await app(_scope(body, headers), receive, send)
    answer = b"".join(m.get("body", b"") for m in out[1:])
    if out[0]["status"] != 200 or b'"errors"' in answer:
        raise RuntimeError(f"HTTP {out[0]['status']}: {answer[:300]!r}")


async def _drive(app: Any, make: MakeRequest, requests: int, concurrency: int) -> None:
    issued = 0

    async def client(worker: int) -> None:
        nonlocal issued
        seq = 0
        while issued < requests:
            issued += 1
            body, headers = make(worker, seq)
            seq += 1
            await _call(app, body, headers)

    await asyncio.gather(*(client(w) for w in range(concurrency)))


def _batching(before: dict[int, int], after: dict[int, int]) -> str:
    """The statements per group commit during a round (`app.kit.group_commit.sizes`): the
    api's CPU per request falls as more of them share a round trip. In process, with no
    sockets, they batch far more than behind uvicorn (`bench.workflow`), so compare versions
    here at the same figure."""
    sent = {size: count - before.get(size, 0) for size, count in after.items()}
    batches = sum(sent.values())
    if not batches:
        return ""
    statements = sum(size * count for size, count in sent.items())
    alone = sent.get(1, 0)
    share = alone / batches
    return f", {statements / batches:.2f} statements per commit, {share:.0%} of commits alone"


async def _measure(args: argparse.Namespace, env: dict[str, str], seeded: Seeded) -> None:
    os.environ.update(env)
    from app.settings import get_settings

    get_settings.cache_clear()
    if args.bare:
        from bench.bare_app import create_app
    else:
        from app.asgi import create_app
    app = create_app()
    make = update_requests(seeded.customers, args.concurrency)
    async with app.router.lifespan_context(app):
        await _drive(app, make, args.warmup, args.concurrency)
        figures = []
        for n in range(args.rounds):
            profiled = args.profile is not None and n == args.rounds - 1
            profiler = None
            if profiled:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            batches = dict(group_commit.sizes)
            started = time.process_time()
            await _drive(app, make, args.requests, args.concurrency)
            ms = (time.process_time() - started) / args.requests * 1000
            grouped = _batching(batches, group_commit.sizes)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
                print(
                    f"round {n + 1} (profiled): {ms:.3f} ms CPU/request{grouped}", file=sys.stderr
                )
            else:
                figures.append(ms)
                print(f"round {n + 1}: {ms:.3f} ms CPU/request{grouped}", file=sys.stderr)
    if figures:
        rounds = ", ".join(f"{f:.3f}" for f in figures)
        print(
            f"{'bare' if args.bare else 'liftoff'} updateTask: median "
            f"{statistics.median(figures):.3f} ms CPU/request in-process ({rounds})"
        )


def _bench(args: argparse.Namespace, teardown: Teardown) -> int:
    db_url, _ = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    seeded = run(seed(db_url, secret, args.customers))
    _, env = run(production_env(teardown, db_url, secret, "update-cpu"))
    env["LIFTOFF_LOG_LEVEL"] = args.log_level.upper()
    run(_measure(args, env, seeded))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.update_cpu", description=__doc__)
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER,
        help=f"PostgreSQL server of the throwaway database (default: {DEFAULT_SERVER}).",
    )
    p.add_argument("--requests", type=int, default=3000, help="Requests per round (3000).")
    p.add_argument("--warmup", type=int, default=1000, help="Requests before the rounds (1000).")
    p.add_argument("--rounds", type=int, default=5, help="Measured rounds (5).")
    p.add_argument("--concurrency", type=int, default=16, help="Concurrent clients (16).")
    p.add_argument("--customers", type=int, default=64, help="Seeded customers (64).")
    p.add_argument("--log-level", default="warning", help="The app's log level (warning).")
    p.add_argument("--profile", help="Run the last round under cProfile; its stats to this file.")
    p.add_argument("--bare", action="store_true", help="Measure bench.bare_app instead.")
    args = p.parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: _bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
