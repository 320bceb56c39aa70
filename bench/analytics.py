"""Analytics at 1,200 / 100,000 / 1,000,000 customers, and what keeping the rollups costs.

    python -m bench.analytics [--customers 1200,100000,1000000] [--rounds 3] [--requests 20]

One run, on a throwaway database (DATABASE_URL, else the machine's PostgreSQL):
1. one organization per size, its customers generated inside PostgreSQL (bench.analytics_data),
   then its rollups built by `liftoff analytics rebuild`'s code (the consumer's contribution
   function); times and rollup row counts are printed;
2. `liftoff serve`; the full `analytics` query (every field, as a CSM) sent by one client,
   `--requests` times per organization per round, organizations in alternating order per
   round: p50 / p99 / max per size, and the p50 of each round (spread);
3. what keeping the rollups costs `updateTask` (bench.analytics_update): closed-loop clients
   on 64 customers, short windows with the `analytics-rollups` consumer (alone in a process
   of its own) running and paused, alternating, in one run under one continuous load;
   throughput and CPU per request of both, and the upkeep's share of the CPU per request;
   with --upkeep-base, a third window per round runs another checkout's upkeep;
4. the CUSTOMERS CSV export of the largest organization streamed over HTTP: rows, bytes,
   seconds and the server's resident memory before and at its peak.
Figures, not verdicts; the machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.analytics_update import measure_upkeep
from bench.analytics_update import report as report_upkeep
from bench.db import DEFAULT_SERVER, with_database
from bench.metrics import percentile_ms, rss_kb
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, run, serve_argv
from bench.report import table
from bench.tenant import seed

QUERY = """query Full { analytics {
  generatedAt filter { from to userType acquisitionChannel signupCohort templateVersion }
  overview { label customers started completed completionRate inFlight activeLast7Days
    medianHoursToComplete p90HoursToComplete pointsAwarded badgesAwarded
    drillDown { signedUpFrom signedUpTo } }
  funnel { stages { stageKey taskKey name reached completed skipped failed activeHere dropped
      conversion completionRate dropOffRate medianHours p90Hours
      drillDown(outcome: DROPPED) { stageKey outcome }
      tasks { stageKey taskKey name reached completed skipped failed activeHere dropped
        conversion completionRate dropOffRate medianHours p90Hours drillDown { taskKey } } }
    stallTasks { taskKey dropped dropOffRate } }
  cohorts { byUserType { label customers completed completionRate medianHoursToComplete }
    byAcquisitionChannel { label customers completed completionRate p90HoursToComplete }
    bySignupWeek { week customers completedByWeek completedByWeekRate } }
  daily: trends(granularity: DAY) { points { start signups completions completionRate
      medianHoursToComplete } changes { metric current previous absoluteChange relativeChange } }
  weekly: trends(granularity: WEEK) { points { start signups completions } }
  forecast { inFlight probabilityWithin30Days expectedCompletionsWithin30Days expectedDate
    completedSample censoredSample method curve { days stillOnboarding atRisk }
    stages { stageKey inFlight completedSample medianDaysInStage probabilityStageWithin30Days
      probabilityWithin30Days expectedCompletionsWithin30Days
      curve { days stillOnboarding atRisk completed censored } drillDown { stageKey outcome } } }
  recommendations { kind message evidence { label value } effectSize sampleSize
    drillDown { acquisitionChannel userType stageKey taskKey outcome } }
  automationPerformance { runs } healthDistribution { segment } milestoneAchievements { key }
} }"""
EXPORT = """mutation($from: Date) { exportAnalytics(input: {format: CSV, sections: [CUSTOMERS],
  filter: {from: $from}}) { id rowCount downloadUrl } }"""


@dataclass
class Org:
    size: int
    id: uuid.UUID
    slug: str
    csm: str
    admin: str
    seconds_generate: float = 0.0
    seconds_rebuild: float = 0.0
    rollup_rows: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[list[float]]] = field(default_factory=dict)
    """Per server mode, each round's query times (seconds)."""
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """Per server mode, each round's server + PostgreSQL CPU ms per query."""


def log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


async def _prepare(db_url: str, secret: str, sizes: list[int]) -> list[Org]:
    import asyncpg

    from app.accounts.models import Role
    from app.accounts.tokens import token_for
    from app.analytics.maintain import rebuild
    from app.db import close_db, init_db, migrate, transaction
    from app.kit.clock import utcnow
    from app.onboarding.templates import open_organization
    from app.settings import Settings
    from bench.analytics_data import generate

    await migrate(db_url)
    await close_db()
    settings = Settings(secret_key=secret)
    orgs: list[Org] = []
    await init_db(db_url)
    conn = await asyncpg.connect(db_url)
    try:
        for size in sizes:
            slug = f"analytics-{size}"
            existing = await conn.fetchval("SELECT id FROM organization WHERE slug = $1", slug)
            if existing is None:
                async with transaction():
                    new = await open_organization(
                        name=f"Bench {size:,}",
                        slug=slug,
                        admin_email=f"admin@{slug}.test",
                        admin_name="Admin",
                        created_by="bench",
                    )
                org_id = new.organization.id
            else:
                org_id = existing

            def token(role: Role, org_id: uuid.UUID = org_id, slug: str = slug) -> str:
                return token_for(
                    settings,
                    subject=f"{role.value.lower()}@{slug}.test",
                    organization_id=org_id,
                    role=role,
                    ttl=timedelta(hours=6),
                )

            from app.accounts.models import Operator

            csm_email = f"csm@{slug}.test"
            if not await Operator.filter(organization_id=org_id, email=csm_email).exists():
                await Operator.create(
                    organization_id=org_id, email=csm_email, name="CSM", role=Role.CSM
                )
            org = Org(size, org_id, slug, token(Role.CSM), token(Role.ADMIN))
            if existing is None:
                log(f"generating {size:,} customers")
                started = time.perf_counter()
                await generate(conn, org_id, slug, size, lambda n: log(f"  {n:,} customers"))
                org.seconds_generate = time.perf_counter() - started
                await conn.execute("ANALYZE")  # as autovacuum would before a rebuild
                log(f"rebuilding the rollups of {size:,} customers")
                started = time.perf_counter()
                await rebuild(org_id, now=utcnow())
                org.seconds_rebuild = time.perf_counter() - started
            else:
                log(f"reusing the {size:,} customers of {slug}")
            for table_name in ("analytics_cohort", "analytics_step", "analytics_completion"):
                org.rollup_rows[table_name] = await conn.fetchval(
                    f"SELECT count(*) FROM {table_name} WHERE organization_id = $1", org_id
                )
            await conn.execute("ANALYZE")
            orgs.append(org)
    finally:
        await conn.close()
        await close_db()
    return orgs


MODES = ("fresh", "kept")
"""The two api servers of the query rounds: `fresh` computes every report
(LIFTOFF_ANALYTICS_CACHE_SECONDS=0: what a busy organization, whose rollups change between
two requests, costs), `kept` answers from the report it kept while the rollups stand still."""


async def _query_rounds(
    servers: dict[str, Child], orgs: list[Org], rounds: int, requests: int, database: str
) -> None:
    import httpx

    from bench.metrics import postgres_cpu, proc_cpu

    body = json.dumps({"query": QUERY}).encode()
    clients = {
        mode: httpx.AsyncClient(base_url=server.url, timeout=120.0)
        for mode, server in servers.items()
    }
    try:
        for mode, client in clients.items():  # warm-up: one of each
            for org in orgs:
                response = await client.post("/graphql", content=body, headers=_headers(org.csm))
                data = response.json()
                if "errors" in data:
                    raise RuntimeError(f"analytics query failed: {data['errors'][:1]}")
                overview = data["data"]["analytics"]["overview"]
                log(f"  {mode} {org.size:,}: {overview['customers']:,} customers in the period")
        for n in range(rounds):
            for mode in MODES if n % 2 == 0 else MODES[::-1]:
                server, client = servers[mode], clients[mode]
                for org in orgs if n % 2 == 0 else orgs[::-1]:
                    times = []
                    srv0, pg0 = proc_cpu(server.pid), postgres_cpu(database)
                    for _ in range(requests):
                        started = time.perf_counter()
                        response = await client.post(
                            "/graphql", content=body, headers=_headers(org.csm)
                        )
                        times.append(time.perf_counter() - started)
                        if response.status_code != 200 or b'"errors"' in response.content:
                            raise RuntimeError(response.text[:300])
                    srv1, pg1 = proc_cpu(server.pid), postgres_cpu(database)
                    org.latencies.setdefault(mode, []).append(times)
                    if srv0 is not None and srv1 is not None and pg1:
                        pg = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
                        org.cpu.setdefault(mode, []).append(1000 * (srv1 - srv0 + pg) / requests)
    finally:
        for client in clients.values():
            await client.aclose()


def _headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


async def _stream(server: Child, org: Org) -> tuple[int, int, float, int, int]:
    import httpx

    async with httpx.AsyncClient(base_url=server.url, timeout=600.0) as client:
        year_ago = (datetime.now(UTC) - timedelta(days=370)).date().isoformat()
        payload = {"query": EXPORT, "variables": {"from": year_ago}}
        response = await client.post(
            "/graphql", content=json.dumps(payload).encode(), headers=_headers(org.admin)
        )
        body = response.json()
        if "errors" in body:
            raise RuntimeError(f"export failed: {body['errors'][:1]}")
        job = body["data"]["exportAnalytics"]
        before = peak = rss_kb(server.pid)
        rows = size = 0
        started = time.perf_counter()
        async with client.stream("GET", job["downloadUrl"].replace(server.url, "")) as download:
            async for chunk in download.aiter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
                peak = max(peak, rss_kb(server.pid))
        seconds = time.perf_counter() - started
    return rows - 1, size, seconds, before, peak


def _queries(
    args: argparse.Namespace, orgs: list[Org], db_url: str, secret: str, teardown: Teardown
) -> tuple[int, int, float, int, int] | None:
    """The query rounds on two servers, then the CSV stream (when not skipped)."""
    servers = {}
    for mode in MODES:
        port = free_port()
        # no inline worker: an api process as production runs it, so the figures are the
        # query's, not those of the health and milestone jobs scoring the new customers
        extra = {"LIFTOFF_INLINE_WORKER": "false"}
        if mode == "fresh":
            extra["LIFTOFF_ANALYTICS_CACHE_SECONDS"] = "0"
        servers[mode] = Child(
            f"serve-{mode}", serve_argv(port), app_env(db_url, secret, **extra), port
        )
        teardown.add(servers[mode].stop)
        servers[mode].start()
    for server in servers.values():
        run(server.wait_ready(within=120))
    log("analytics query rounds")
    run(_query_rounds(servers, orgs, args.rounds, args.requests, teardown.db_name))
    stream = None
    if not args.skip_stream:
        log(f"streaming the customer CSV of {orgs[-1].size:,} customers")
        stream = run(_stream(servers["fresh"], orgs[-1]))
    for server in servers.values():
        server.stop()
    return stream


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    sizes = [int(s) for s in args.customers.split(",")]
    load0 = os.getloadavg()
    if args.reuse_database:
        teardown.db_name = args.reuse_database
        db_url = with_database(args.database_url, args.reuse_database)
        pg_version = "(reused database)"
    else:
        log(f"creating database {teardown.db_name}")
        db_url, pg_version = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    orgs: list[Org] = []
    stream = None
    if not args.skip_queries:
        orgs = run(_prepare(db_url, secret, sizes))
        stream = _queries(args, orgs, db_url, secret, teardown)
    load1 = os.getloadavg()
    updates = None
    if not args.skip_update:
        seeded = run(seed(db_url, secret, args.update_customers, label="update"))
        updates = run(
            measure_upkeep(
                db_url=db_url,
                database=teardown.db_name,
                secret=secret,
                teardown=teardown,
                customers=seeded.customers,
                concurrency=args.concurrency,
                rounds=args.update_rounds,
                seconds=args.update_seconds,
                base=args.upkeep_base,
            )
        )
    load2 = os.getloadavg()

    print()
    print(
        f"Liftoff analytics benchmark: PostgreSQL {pg_version}, {os.cpu_count()} CPUs,"
        f" {args.rounds} round(s) of {args.requests} sequential queries per size (one client)"
    )
    print(
        "Load average (1/5/15 min) at start / after the queries / at the end: "
        + " / ".join(", ".join(f"{x:.1f}" for x in load) for load in (load0, load1, load2))
    )
    if orgs:
        print()
        heads = [["customers", "generate", "rebuild", "cohort", "step", "completion"],
                 ["", "s", "s", "rows", "rows", "rows"]]  # fmt: skip
        rows = []
        for org in orgs:
            rows.append(
                [
                    f"{org.size:,}",
                    f"{org.seconds_generate:.0f}",
                    f"{org.seconds_rebuild:.0f}",
                    f"{org.rollup_rows['analytics_cohort']:,}",
                    f"{org.rollup_rows['analytics_step']:,}",
                    f"{org.rollup_rows['analytics_completion']:,}",
                ]
            )
        for line in table(heads, rows, rule=True):
            print(line)
        print()
        heads = [["customers", "server", "p50", "p99", "max", "p50 per round", "CPU/query",
                  "CPU per round"],
                 ["", "", "ms", "ms", "ms", "ms", "ms", "ms"]]  # fmt: skip
        rows = []
        for org in orgs:
            for mode in MODES:
                rounds_ = org.latencies.get(mode, [])
                every = [t for r in rounds_ for t in r]
                cpu = org.cpu.get(mode, [])
                rows.append(
                    [
                        f"{org.size:,}",
                        mode,
                        f"{percentile_ms(every, 0.5):.1f}",
                        f"{percentile_ms(every, 0.99):.1f}",
                        f"{max(every) * 1000:.1f}",
                        " ".join(f"{percentile_ms(r, 0.5):.0f}" for r in rounds_),
                        f"{statistics.median(cpu):.1f}" if cpu else "-",
                        " ".join(f"{c:.0f}" for c in cpu),
                    ]
                )
        for line in table(heads, rows, rule=True):
            print(line)
        print("The query: every field of `analytics` (both trend granularities), default period")
        print("(the last 90 days of signups), over HTTP, one client, to two `liftoff serve`")
        print("processes: `fresh` computes every report (LIFTOFF_ANALYTICS_CACHE_SECONDS=0, what")
        print("an organization whose rollups change between requests costs), `kept` answers from")
        print("the report kept since the organization's rollups last changed. CPU/query: server +")
        print("PostgreSQL backends of the bench database, median of rounds (both servers' idle")
        print("loops included).")
    if updates is not None:
        print()
        report_upkeep(updates)
    if stream:
        rows_, size, seconds, before, peak = stream
        print()
        print(
            f"CUSTOMERS CSV of {orgs[-1].size:,} customers streamed: {rows_:,} rows,"
            f" {size / 1e6:.1f} MB in {seconds:.1f} s; server RSS {before / 1024:.0f} MiB before,"
            f" {peak / 1024:.0f} MiB at peak"
        )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER,
        help="PostgreSQL server for the throwaway database "
        f"(default $DATABASE_URL, else {DEFAULT_SERVER}).",
    )
    p.add_argument("--customers", default="1200,100000,1000000", help="Sizes, comma-separated.")
    p.add_argument("--rounds", type=int, default=3, help="Rounds (3).")
    p.add_argument("--requests", type=int, default=20, help="Queries per size per round (20).")
    p.add_argument("--concurrency", type=int, default=16, help="updateTask clients (16).")
    p.add_argument("--update-seconds", type=float, default=4.0, help="Per updateTask window (4).")
    p.add_argument("--update-rounds", type=int, default=12, help="updateTask rounds (12).")
    p.add_argument("--update-customers", type=int, default=64, help="updateTask customers (64).")
    p.add_argument(
        "--upkeep-base",
        metavar="CHECKOUT",
        help="Also run the rollup upkeep of another checkout (with its own .venv, e.g. a "
        "worktree of main) in `base` windows of the same rounds.",
    )
    p.add_argument(
        "--skip-queries", action="store_true", help="No analytics query rounds (nor stream)."
    )
    p.add_argument("--skip-update", action="store_true", help="No updateTask ratio.")
    p.add_argument("--skip-stream", action="store_true", help="No customer CSV stream.")
    p.add_argument(
        "--reuse-database",
        metavar="NAME",
        help="Use (and keep) this database; sizes whose organization `analytics-<size>` "
        "exists there are not generated again. Makes repeated runs at 1,000,000 affordable.",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
