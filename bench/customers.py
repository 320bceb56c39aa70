"""Customer list pages at several organization sizes, in one database and one run.

    python -m bench.customers [--sizes 1200,100000] [--requests 30] [--rounds 3]

One run: a throwaway database on the PostgreSQL server (DATABASE_URL, else the machine's),
migrated; one demo organization per size, seeded by `app.demo.seed_demo` (the engine, COPY,
ANALYZE); one `liftoff serve`; then, round after round (the order of the sizes alternating),
each list query `--requests` times in a row as a CSM of each organization. Prints p50/p99 per
query and size, the ratio of each size's p50 to the smallest size's (median of the per-round
ratios, with their range), the server's RSS and the machine's load. Figures, not verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from datetime import timedelta

import httpx

from bench.db import DEFAULT_SERVER
from bench.metrics import percentile_ms, rss_kb
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, run, serve_argv
from bench.report import table
from bench.workflow import spread, uptime

FIGURES = (
    "edges { node { id name email workflow { status progress estimatedMinutesRemaining points } } }"
)
PAGE = "query($f: CustomerFilter) { customers(first: 100, filter: $f) { " + FIGURES + " } }"
COUNT = "query($f: CustomerFilter) { customers(first: 1, filter: $f) { totalCount totalCountIsEstimate } }"  # noqa: E501
QUERIES: list[tuple[str, str, dict[str, object]]] = [
    ("page, no filter", PAGE, {}),
    ("page, userType", PAGE, {"userType": "smb"}),
    ("page, channel", PAGE, {"acquisitionChannel": "referral"}),
    ("page, ACTIVE", PAGE, {"workflowStatus": "ACTIVE"}),
    ("page, COMPLETED", PAGE, {"workflowStatus": "COMPLETED"}),
    ("page, search hit", PAGE, {"search": "garcia"}),
    ("page, search miss", PAGE, {"search": "zqxj"}),
    ("totalCount", COUNT, {}),
    ("totalCount ACTIVE", COUNT, {"workflowStatus": "ACTIVE"}),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.customers", description=__doc__)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER)
    p.add_argument("--sizes", default="1200,100000", help="Customers per organization.")
    p.add_argument("--requests", type=int, default=30, help="Requests per query, size, round.")
    p.add_argument("--rounds", type=int, default=3, help="Rounds, alternating the sizes' order.")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Seeding processes.")
    return p.parse_args(argv)


async def _seed(url: str, secret: str, sizes: list[int], workers: int) -> dict[int, str]:
    """One demo organization per size; a CSM token for each."""
    from app.accounts.models import Role
    from app.accounts.tokens import token_for
    from app.db import close_db, init_db, migrate
    from app.demo import seed_demo
    from app.settings import Settings

    await migrate(url)
    await close_db()
    await init_db(url)
    tokens = {}
    try:
        for size in sizes:
            started = time.perf_counter()
            result = await seed_demo(
                customers=size, slug=f"size-{size}", workers=workers, database_url=url
            )
            took = time.perf_counter() - started
            print(
                f"... seeded {size:,} customers in {took:.0f} s ({size / took:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
            tokens[size] = token_for(
                Settings(secret_key=secret),
                subject=result.csm.email,
                organization_id=result.organization.id,
                role=Role.CSM,
                ttl=timedelta(hours=6),
            )
    finally:
        await close_db()
    return tokens


async def _measure(
    server: Child, tokens: dict[int, str], args: argparse.Namespace
) -> dict[tuple[str, int], list[list[float]]]:
    """Latencies per (query, size), one list per round."""
    out: dict[tuple[str, int], list[list[float]]] = {}
    sizes = list(tokens)
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, trust_env=False) as client:
        for n in range(args.rounds):
            for size in sizes if n % 2 == 0 else sizes[::-1]:
                headers = {"authorization": f"Bearer {tokens[size]}"}
                for name, query, where in QUERIES:
                    body = json.dumps({"query": query, "variables": {"f": where}}).encode()
                    headers["content-type"] = "application/json"
                    times = []
                    for _ in range(args.requests + 2):  # the first two warm up
                        started = time.perf_counter()
                        response = await client.post("/graphql", content=body, headers=headers)
                        times.append(time.perf_counter() - started)
                        if response.status_code != 200 or b'"errors"' in response.content:
                            raise RuntimeError(f"{name} at {size}: {response.content[:300]!r}")
                    out.setdefault((name, size), []).append(times[2:])
            print(f"... round {n + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return out


def _report(
    results: dict[tuple[str, int], list[list[float]]], sizes: list[int], header: list[str]
) -> None:
    print()
    print("\n".join(header))
    print()
    base = sizes[0]
    heads = [["query", *[f"{s:,}: p50/p99 ms" for s in sizes], *[f"x{s:,} p50" for s in sizes[1:]]]]
    rows = []
    for name, _, _ in QUERIES:
        cells = [name]
        for size in sizes:
            flat = [t for r in results[(name, size)] for t in r]
            cells.append(f"{percentile_ms(flat, 0.5):.1f} / {percentile_ms(flat, 0.99):.1f}")
        for size in sizes[1:]:
            ratios = [
                percentile_ms(big, 0.5) / percentile_ms(small, 0.5)
                for big, small in zip(results[(name, size)], results[(name, base)], strict=True)
            ]
            cells.append(spread(ratios))
        rows.append(cells)
    for line in table(heads, rows, align="<" + ">" * (len(heads[0]) - 1), rule=True):
        print(line)
    print()
    print(f"Ratios: each size's p50 over the {base:,}-customer organization's, per round;")
    print("median (range, rounds). The organizations share one database and one server.")


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"... creating database {teardown.db_name}", file=sys.stderr, flush=True)
    db_url, pg_version = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    load_before = uptime()
    tokens = run(_seed(db_url, secret, sizes, args.workers))
    port = free_port()
    server = Child("liftoff", serve_argv(port), app_env(db_url, secret), port)
    teardown.add(server.stop)
    server.start()
    run(server.wait_ready())
    idle = rss_kb(server.pid)
    start = uptime()
    results = run(_measure(server, tokens, args))
    header = [
        f"Customer lists: {args.requests} sequential requests per query, size and round, "
        f"{args.rounds} rounds; PostgreSQL {pg_version}; one `liftoff serve` process.",
        "Page = customers(first: 100) with each customer's workflow status, progress, "
        "estimatedMinutesRemaining and points (the figures stored on the workflow row).",
        f"load before seeding: {load_before}",
        f"load at start:       {start}",
        f"load at end:         {uptime()}",
        f"server RSS MB: idle {idle / 1024:.0f}, after the runs {rss_kb(server.pid) / 1024:.0f}",
    ]
    _report(results, sizes, header)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
