"""Customer list pages at several organization sizes, in one database and one run.

    python -m bench.customers [--sizes 1200,100000] [--requests 30] [--rounds 3]
                              [--reuse-database NAME] [--seed-only] [--only search,...]

One run: a throwaway database on the PostgreSQL server (DATABASE_URL, else the machine's),
migrated; one demo organization per size, seeded by `app.demo.seed_demo` (the engine, COPY,
ANALYZE), and a decoy organization (a tenth of the largest size) whose customers all have
DECOY_TERM in their names; one `liftoff serve`; then, round after round (the order of the
sizes alternating), each list query `--requests` times in a row as a CSM of each
organization. Prints p50/p99 per query and size, the ratio of each size's p50 to the smallest
size's (median of the per-round ratios, with their range), the server's RSS and the machine's
load. Figures, not verdicts.

With `--reuse-database NAME` the run uses (and keeps) database NAME, creating it if missing,
and seeds only the sizes whose organization (`size-<size>`) is not there yet: a 1,000,000-
customer organization takes 8-30 minutes to seed, once. `--seed-only` stops after seeding.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta

import httpx

from bench.db import DEFAULT_SERVER, create_database, with_database
from bench.metrics import percentile_ms, postgres_cpu, proc_cpu, rss_kb
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, run, serve_argv
from bench.report import table
from bench.workflow import spread, uptime

DECOY_TERM = "quokka"
"""In the name of every customer of the decoy organization, and of no other customer."""
FIGURES = (
    "edges { node { id name email workflow { status progress estimatedMinutesRemaining points } } }"
)
PAGE = "query($f: CustomerFilter) { customers(first: 100, filter: $f) { " + FIGURES + " } }"
PAGE20 = "query($f: CustomerFilter) { customers(first: 20, filter: $f) { " + FIGURES + " } }"
COUNT = "query($f: CustomerFilter) { customers(first: 1, filter: $f) { totalCount totalCountIsEstimate } }"  # noqa: E501
QUERIES: list[tuple[str, str, dict[str, object]]] = [
    ("page, no filter", PAGE, {}),
    ("page, userType", PAGE, {"userType": "smb"}),
    ("page, channel", PAGE, {"acquisitionChannel": "referral"}),
    ("page, ACTIVE", PAGE, {"workflowStatus": "ACTIVE"}),
    ("page, COMPLETED", PAGE, {"workflowStatus": "COMPLETED"}),
    ("page, search hit", PAGE, {"search": "garcia"}),
    # Like with like (see bench/README.md): `garcia` matches 2.2 % of the customers, 26 at
    # 1,200, so its page above is 26 rows there and 100 at the larger sizes; these two return
    # the same number of rows at every size.
    ("page 20, search hit =", PAGE20, {"search": "garcia"}),
    ("page, search common =", PAGE, {"search": "par"}),
    ("page, search miss", PAGE, {"search": "zqxj"}),
    # A term the table's statistics call common that the measured organizations lack: every
    # customer of the decoy organization (`_seed`) has it in its name. 0 rows at every size.
    ("page, search elsewhere =", PAGE, {"search": DECOY_TERM}),
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
    p.add_argument(
        "--reuse-database",
        metavar="NAME",
        help="Use (and keep) this database, created if missing; sizes whose organization "
        "`size-<size>` is already there are not seeded again.",
    )
    p.add_argument("--seed-only", action="store_true", help="Stop after seeding.")
    p.add_argument(
        "--only",
        metavar="WORDS",
        help="Measure only the queries whose name contains one of these comma-separated words "
        "(e.g. `search`); all of them by default.",
    )
    return p.parse_args(argv)


async def _reused(server_url: str, name: str) -> tuple[str, str]:
    """The URL and server version of database `name`, created if it is not there."""
    import asyncpg

    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        version = await conn.fetchval("SHOW server_version")
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    if not exists:
        return await create_database(server_url, name)
    return with_database(server_url, name), str(version)


async def _seed(url: str, secret: str, sizes: list[int], workers: int) -> dict[int, str]:
    """One demo organization per size; a CSM token for each."""
    from tortoise.connection import get_connection

    from app.accounts.models import Organization, Role
    from app.accounts.tokens import token_for
    from app.db import close_db, init_db, migrate
    from app.demo import seed_demo
    from app.settings import Settings

    await migrate(url)
    await close_db()
    await init_db(url)
    tokens = {}
    fresh = False
    try:
        for size in sizes:
            started = time.perf_counter()
            seeded = await Organization.get_or_none(slug=f"size-{size}")
            fresh = fresh or seeded is None
            result = await seed_demo(
                customers=size, slug=f"size-{size}", workers=workers, database_url=url
            )
            took = time.perf_counter() - started
            print(
                f"... found {result.customers:,} customers of size-{size}"
                if seeded is not None and result.customers == size
                else f"... seeded {size:,} customers in {took:.0f} s ({size / took:,.0f}/s)",
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
        # The decoy: a tenth of the largest size, each customer named with DECOY_TERM, so the
        # planner's statistics (the table's) call the term common in every organization.
        decoys = max(100, max(sizes) // 10)
        slug = f"decoy-{decoys}"
        seeded = await Organization.get_or_none(slug=slug)
        fresh = fresh or seeded is None
        decoy = await seed_demo(customers=decoys, slug=slug, workers=workers, database_url=url)
        if seeded is None:
            await get_connection("default").execute_query(
                "UPDATE customer SET name = name || $2 WHERE organization_id = $1",
                [decoy.organization.id, f" {DECOY_TERM.title()}"],
            )
        print(f"... decoy organization {slug} ready", file=sys.stderr, flush=True)
        if fresh:
            # What autovacuum does after a bulk load (this machine's server runs without it):
            # the visibility map that index-only counts read, GIN pending lists merged.
            print("... vacuuming customer and workflow", file=sys.stderr, flush=True)
            await get_connection("default").execute_script("VACUUM (ANALYZE) customer, workflow")
    finally:
        await close_db()
    return tokens


Rows = dict[tuple[str, int], int]
"""Per (query, size): the customers a page returned."""
Results = dict[tuple[str, int], list[list[float]]]
"""Per (query, size): latencies in seconds, one list per round."""
Cpu = dict[tuple[str, int], list[tuple[float, float]]]
"""Per (query, size): (server, PostgreSQL) CPU ms per request, one pair per round."""


async def _measure(
    server: Child, tokens: dict[int, str], args: argparse.Namespace, database: str
) -> tuple[Results, Cpu, Rows]:
    """Latencies and CPU per request per (query, size), one entry per round; rows per page."""
    out: Results = {}
    cpu: Cpu = {}
    rows: Rows = {}
    sizes = list(tokens)
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, trust_env=False) as client:
        for n in range(args.rounds):
            for size in sizes if n % 2 == 0 else sizes[::-1]:
                headers = {"authorization": f"Bearer {tokens[size]}"}
                for name, query, where in _queries(args):
                    body = json.dumps({"query": query, "variables": {"f": where}}).encode()
                    headers["content-type"] = "application/json"
                    times = []
                    for i in range(args.requests + 2):  # the first two warm up
                        if i == 2:
                            srv0, pg0 = proc_cpu(server.pid), postgres_cpu(database)
                        started = time.perf_counter()
                        response = await client.post("/graphql", content=body, headers=headers)
                        times.append(time.perf_counter() - started)
                        if response.status_code != 200 or b'"errors"' in response.content:
                            raise RuntimeError(f"{name} at {size}: {response.content[:300]!r}")
                        if i == 0 and "edges" in query:
                            listed = response.json()["data"]["customers"]["edges"]
                            rows[(name, size)] = len(listed)
                    srv1, pg1 = proc_cpu(server.pid), postgres_cpu(database)
                    out.setdefault((name, size), []).append(times[2:])
                    if srv0 is not None and srv1 is not None:
                        pg = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
                        per = 1000 / args.requests
                        cpu.setdefault((name, size), []).append(((srv1 - srv0) * per, pg * per))
            print(f"... round {n + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return out, cpu, rows


def _queries(args: argparse.Namespace) -> list[tuple[str, str, dict[str, object]]]:
    """The queries to measure (`--only`)."""
    if not args.only:
        return QUERIES
    words = [w.strip() for w in args.only.split(",") if w.strip()]
    return [q for q in QUERIES if any(w in q[0] for w in words)]


def _report(
    queries: list[tuple[str, str, dict[str, object]]],
    results: Results,
    cpu: Cpu,
    rows_of: Rows,
    sizes: list[int],
    header: list[str],
) -> None:
    print()
    print("\n".join(header))
    print()
    base = sizes[0]
    heads = [
        [
            "query",
            "rows",
            *[f"{s:,}: p50/p99 ms" for s in sizes],
            *[f"x{s:,} p50" for s in sizes[1:]],
            *[f"{s:,}: CPU api+pg ms" for s in sizes],
        ]
    ]
    rows = []
    for name, _, _ in queries:
        counts = [rows_of.get((name, size)) for size in sizes]
        cells = [name, "-" if None in counts else "/".join(str(c) for c in counts)]
        for size in sizes:
            flat = [t for r in results[(name, size)] for t in r]
            cells.append(f"{percentile_ms(flat, 0.5):.1f} / {percentile_ms(flat, 0.99):.1f}")
        for size in sizes[1:]:
            ratios = [
                percentile_ms(big, 0.5) / percentile_ms(small, 0.5)
                for big, small in zip(results[(name, size)], results[(name, base)], strict=True)
            ]
            cells.append(spread(ratios))
        for size in sizes:
            pairs = cpu.get((name, size), [])
            api = statistics.median(a for a, _ in pairs) if pairs else None
            pg = statistics.median(p for _, p in pairs) if pairs else None
            cells.append("-" if api is None else f"{api:.1f}+{pg:.1f}")
        rows.append(cells)
    for line in table(heads, rows, align="<" + ">" * (len(heads[0]) - 1), rule=True):
        print(line)
    print()
    print(f"Ratios: each size's p50 over the {base:,}-customer organization's, per round;")
    print("median (range, rounds). The organizations share one database and one server.")
    print("CPU: the server process's and the database's backends' CPU per request, median of")
    print("the rounds (wall time on a busy machine waits for a core; CPU does not).")
    print("Rows: the customers each size's page returned. A page's cost grows with its rows,")
    print("so a ratio compares like with like only where they are the same at every size: the")
    print("queries marked = are chosen so (`garcia` in pages of 20; `par`, which fills a page")
    print("of 100 at every size); `page, search hit` (`garcia`, first 100) is not, as its rows")
    print("column shows.")


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.reuse_database:
        teardown.db_name = args.reuse_database  # never created by the teardown: kept
        print(f"... using database {args.reuse_database}", file=sys.stderr, flush=True)
        db_url, pg_version = run(_reused(args.database_url, args.reuse_database))
    else:
        print(f"... creating database {teardown.db_name}", file=sys.stderr, flush=True)
        db_url, pg_version = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    load_before = uptime()
    tokens = run(_seed(db_url, secret, sizes, args.workers))
    if args.seed_only:
        return 0
    port = free_port()
    # No inline worker: the lists are read-only, and the worker's catch-up on the seeded
    # organizations' automation would share the server's event loop with the requests.
    server = Child(
        "liftoff", serve_argv(port), app_env(db_url, secret, LIFTOFF_INLINE_WORKER="false"), port
    )
    teardown.add(server.stop)
    server.start()
    run(server.wait_ready())
    idle = rss_kb(server.pid)
    start = uptime()
    results, cpu, rows = run(_measure(server, tokens, args, teardown.db_name))
    header = [
        f"Customer lists: {args.requests} sequential requests per query, size and round, "
        f"{args.rounds} rounds; PostgreSQL {pg_version}; one `liftoff serve` process "
        "(no inline worker).",
        "Page = customers(first: 100) with each customer's workflow status, progress, "
        "estimatedMinutesRemaining and points (the figures stored on the workflow row).",
        f"load before seeding: {load_before}",
        f"load at start:       {start}",
        f"load at end:         {uptime()}",
        f"server RSS MB: idle {idle / 1024:.0f}, after the runs {rss_kb(server.pid) / 1024:.0f}",
    ]
    _report(_queries(args), results, cpu, rows, sizes, header)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
