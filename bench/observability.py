"""What metrics and operation logs cost: Liftoff with them against Liftoff without them.

    python -m bench.observability [--rounds 5] [--seconds 8] [--concurrency 16]

Two `liftoff serve` processes on one throwaway database with the same settings except:
"observed" has `/metrics`, per-operation metrics and one JSON log line per operation
(LIFTOFF_METRICS=true, LIFTOFF_LOG_LEVEL=INFO, LIFTOFF_LOG_FORMAT=json); "plain" has none of
them (LIFTOFF_METRICS=false, LIFTOFF_LOG_LEVEL=WARNING). Both get the same caches, pool and
GC settings. Rounds alternate which goes first; the report gives, per operation, the median
of the per-round throughput ratios (observed / plain) with their spread, server CPU per
request, and the machine's load. The load generator is bench.workflow's default (aiohttp,
`bench.load_clients`): one that spent more CPU per request than the servers would run both at
its own pace and show a ratio near 1.0 whatever the observing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys

from bench.db import DEFAULT_SERVER
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, run, serve_argv
from bench.tenant import Seeded, seed
from bench.workflow_load import MakeRequest, Run, measure, query_requests, update_requests


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--customers", type=int, default=64)
    return p.parse_args(argv)


async def _rounds(
    args: argparse.Namespace, servers: list[Child], seeded: Seeded, database: str
) -> dict[tuple[str, str], list[Run]]:
    await asyncio.gather(*(s.wait_ready() for s in servers))
    ops: list[tuple[str, MakeRequest]] = [
        ("workflow query", query_requests(seeded.customers, args.concurrency)),
        ("updateTask", update_requests(seeded.customers, args.concurrency)),
    ]
    runs: dict[tuple[str, str], list[Run]] = {}
    for n in range(args.rounds):
        for op, make in ops:
            for server in servers if n % 2 == 0 else servers[::-1]:
                print(f"... {op} on {server.name} (round {n + 1})", file=sys.stderr, flush=True)
                result = await measure(
                    server,
                    op,
                    make,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    requests=None,
                    warmup=args.warmup,
                    database=database,
                )
                runs.setdefault((op, server.name), []).append(result)
    return runs


def report(runs: dict[tuple[str, str], list[Run]], load_before: str, load_after: str) -> None:
    print()
    print(f"load average before: {load_before}; after: {load_after}; cpus: {os.cpu_count()}")
    for op in dict.fromkeys(op for op, _ in runs):
        observed, plain = runs[(op, "observed")], runs[(op, "plain")]
        ratios = [o.rps / p.rps for o, p in zip(observed, plain, strict=True) if p.rps]
        cpu = [
            (o.per_request_ms(o.server_cpu) or 0) / (p.per_request_ms(p.server_cpu) or 1)
            for o, p in zip(observed, plain, strict=True)
        ]
        median = statistics.median(ratios)
        print(
            f"{op:<16} observed/plain throughput: median {median:.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}; cost {100 * (1 - median):+.1f} %)"
        )
        print(
            f"{'':<16} server CPU per request observed/plain: median "
            f"{statistics.median(cpu):.3f} (min {min(cpu):.3f}, max {max(cpu):.3f})"
        )
        print(
            f"{'':<16} req/s per round: observed "
            + ", ".join(f"{r.rps:.0f}" for r in observed)
            + "; plain "
            + ", ".join(f"{r.rps:.0f}" for r in plain)
        )


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    db_url, _ = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    print(f"... seeding {args.customers} customers", file=sys.stderr, flush=True)
    seeded = run(seed(db_url, secret, args.customers))
    base = app_env(db_url, secret, "WARNING")
    observed_env = {
        **base,
        "LIFTOFF_METRICS": "true",
        "LIFTOFF_LOG_LEVEL": "INFO",
        "LIFTOFF_LOG_FORMAT": "json",
    }
    plain_env = {**base, "LIFTOFF_METRICS": "false", "LIFTOFF_LOG_LEVEL": "WARNING"}
    servers = []
    for name, env in (("observed", observed_env), ("plain", plain_env)):
        port = free_port()
        child = Child(name, serve_argv(port), env, port)
        teardown.add(child.stop)
        servers.append(child.start())
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    runs = run(_rounds(args, servers, seeded, teardown.db_name))
    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report(runs, load_before, load_after)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
