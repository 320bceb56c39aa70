"""Health scores at 10k, 100k and 1M customers: full recompute throughput, how it grows with N,
and the latency of `Customer.health`, `healthDistribution` and the customers list by health.

    python -m bench.health [--sizes 10000,100000] [--days 90] [--rounds 3] [--requests 30]
                           [--database-url URL] [--keep-database NAME]

One run: a throwaway database (migrated) with one organization (default template and health
model); for each size, customers with workflows and `--days` days of usage rollups are
generated in bulk with SQL, then the organization is scored once (every score new) and
recomputed `--rounds` times each way, alternating: "next day" (as of one more day later:
recency and pace move, nearly every score is rewritten, as in the daily job) and "unchanged"
(the same inputs again: nothing to rewrite). `recompute_all` is what `liftoff health
recompute` and the daily job run. Each recompute reports wall time and the CPU seconds of
the bench process (Python) and of the database's PostgreSQL backends, which depend less on
the machine's load. Then one `liftoff serve` (no inline worker) answers the queries,
alternating their order each round. Figures, not verdicts.

`--keep-database NAME` uses (and keeps) database NAME instead of a throwaway one, adding only
the customers it lacks, so a 1M-customer database is generated once for several runs; drop
it yourself afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from bench.db import DEFAULT_SERVER
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, run, serve_argv
from bench.report import cell, table

QUERIES = {
    "health": "query($id: ID!) { customer(id: $id) { name health { score level confidence "
    "components { key value weight contribution explanation } riskFactors { message impact } "
    "delta7d } } }",
    "baseline": "query($id: ID!) { customer(id: $id) { name email userType signedUpAt } }",
    "distribution": "{ healthDistribution { overall { total average levels { level count } "
    "histogram { low count } } segments { segment total levels { level count } } } }",
    "page": "{ customers(first: 20) { edges { node { name health { score level "
    "riskFactors { message } } } } } }",
    "at-risk": "{ customers(first: 20, filter: {healthLevel: AT_RISK}, orderBy: HEALTH_ASC) "
    "{ edges { node { name health { score level } } } } }",
}


@dataclass
class Size:
    """Figures of one size."""

    customers: int
    rollups: int = 0
    generate_s: float = 0.0
    runs: dict[str, list[Run]] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)

    def walls(self, kind: str) -> list[float]:
        return [r.wall for r in self.runs.get(kind, [])]

    def us_per_customer(self, kind: str) -> float:
        return 1e6 * statistics.median(self.walls(kind)) / self.customers


@dataclass
class Run:
    """One recompute: wall seconds, CPU seconds of Python and of PostgreSQL, load before."""

    wall: float
    python_cpu: float
    postgres_cpu: float
    load: float


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="customer counts, ascending")
    p.add_argument("--days", type=int, default=90, help="days of usage rollups per customer")
    p.add_argument("--rounds", type=int, default=3, help="full recomputes per size (1 at 1M+)")
    p.add_argument("--requests", type=int, default=30, help="requests per query per round")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_SERVER))
    p.add_argument("--keep-database", default="", help="use and keep this database")
    return p.parse_args(argv)


async def prepare(url: str) -> tuple[uuid.UUID, uuid.UUID, object, str]:
    """Migrate; an organization with the default template and health model."""
    from app.accounts.models import Operator, Organization
    from app.db import close_db, init_db, migrate, transaction
    from app.onboarding.models import WorkflowTemplate
    from app.onboarding.templates import definition_of, open_organization

    await migrate(url)
    await close_db()
    await init_db(url, pool_max=4)
    found = await Organization.get_or_none(slug="bench-health")
    if found is not None:  # a kept database: its organization as an earlier run left it
        template = await WorkflowTemplate.get(organization_id=found.id, is_default=True)
        admin = await Operator.get(organization_id=found.id, email="admin@bench.test")
        return found.id, template.id, definition_of(template), admin.email
    async with transaction():
        new = await open_organization(
            name="Bench", slug="bench-health", admin_email="admin@bench.test",
            admin_name="Admin", created_by="bench",
        )  # fmt: skip
    assert new.template is not None
    return new.organization.id, new.template.id, definition_of(new.template), new.viewer.subject


async def grow(org: uuid.UUID, template_id: uuid.UUID, template: object, have: int, size: Size,
               days: int) -> None:  # fmt: skip
    from bench.health_data import add_customers, analyze, row_count

    started = time.perf_counter()
    await add_customers(org, template_id, template, start=have, stop=size.customers, days=days)
    await analyze()
    size.generate_s = time.perf_counter() - started
    size.rollups = await row_count("usage_daily")


async def recompute(org: uuid.UUID, size: Size, rounds: int, database: str) -> None:
    """Score once (`first`: the new customers' scores are inserted), then `rounds` of "next
    day" and "unchanged" recomputes, alternating."""
    from app.health.recompute import recompute_all
    from app.kit.clock import utcnow
    from bench.metrics import postgres_cpu

    start = utcnow()
    plan = [("first", start)]
    for r in range(1, rounds + 1):
        later = start + timedelta(days=r)
        plan += [("next day", later), ("unchanged", later)]
    for kind, now in plan:
        load_before = os.getloadavg()[0]
        pg_before, py_before = postgres_cpu(database), time.process_time()
        started = time.perf_counter()
        scored, _ = await recompute_all(org, now=now)
        wall = time.perf_counter() - started
        pg_after = postgres_cpu(database)
        pg = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items())
        run = Run(wall, time.process_time() - py_before, pg, load_before)
        size.runs.setdefault(kind, []).append(run)
        assert scored == size.customers, (scored, size.customers)
        print(f"   {kind}: {wall:.1f}s wall, PostgreSQL {pg:.1f} CPU-s, Python "
              f"{run.python_cpu:.1f} CPU-s (load {load_before:.2f})", flush=True)  # fmt: skip


async def customer_count(org: uuid.UUID) -> int:
    from tortoise.connection import get_connection

    rows = await get_connection("default").execute_query_dict(
        "SELECT count(*) AS n FROM customer WHERE organization_id = $1", [org]
    )
    return int(rows[0]["n"])


async def sample_ids(org: uuid.UUID, n: int) -> list[str]:
    from tortoise.connection import get_connection

    rows = await get_connection("default").execute_query_dict(
        "SELECT customer_id FROM health_score WHERE organization_id = $1 "
        "ORDER BY md5(customer_id::text) LIMIT $2",
        [org, n],
    )
    return [str(r["customer_id"]) for r in rows]


async def latencies(server: Child, token: str, ids: list[str], size: Size, rounds: int,
                    requests: int) -> None:  # fmt: skip
    import httpx

    names = list(QUERIES)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=120, trust_env=False) as client:
        for name in names:  # warm caches and connections once
            await _ask(client, headers, name, ids[0])
        for r in range(rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for name in order:
                for i in range(requests):
                    took = await _ask(client, headers, name, ids[(r * requests + i) % len(ids)])
                    size.latency_ms.setdefault(name, []).append(took)


async def _ask(client: object, headers: dict[str, str], name: str, cid: str) -> float:
    variables = {"id": cid} if "$id" in QUERIES[name] else {}
    started = time.perf_counter()
    response = await client.post(  # type: ignore[attr-defined]
        "/graphql", json={"query": QUERIES[name], "variables": variables}, headers=headers
    )
    took = 1000 * (time.perf_counter() - started)
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{name}: {response.status_code} {str(body)[:300]}")
    return took


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(sizes: list[Size]) -> None:
    print("\nFull recompute (recompute_all: one SQL statement per 5,000 customers that scores "
          "them and writes the scores that changed, two sweeps at once); medians, "
          "µs/customer of wall time, CPU seconds per 1,000 customers")  # fmt: skip
    rows = []
    for kind in ("first", "next day", "unchanged"):
        prev: Size | None = None
        for s in sizes:
            runs = s.runs.get(kind, [])
            if not runs:
                continue
            walls = [r.wall for r in runs]
            growth = (
                ""
                if prev is None
                else f"{s.us_per_customer(kind) / prev.us_per_customer(kind):.2f}"
            )
            k = s.customers / 1000
            rows.append([
                kind, f"{s.customers:,}", f"{s.rollups:,}", f"{s.generate_s:.0f}",
                str(len(runs)), f"{statistics.median(walls):.2f}",
                f"{min(walls):.2f}-{max(walls):.2f}",
                f"{s.customers / statistics.median(walls):,.0f}",
                f"{s.us_per_customer(kind):.1f}", growth,
                f"{statistics.median(r.postgres_cpu for r in runs) / k:.3f}",
                f"{statistics.median(r.python_cpu for r in runs) / k:.3f}",
                f"{min(r.load for r in runs):.1f}-{max(r.load for r in runs):.1f}",
            ])  # fmt: skip
            prev = s
    for line in table(
        [["recompute", "customers", "rollup rows", "gen s", "n", "median s", "spread s",
          "customers/s", "µs/customer", "ratio vs previous size", "PG CPU-s/1k",
          "Python CPU-s/1k", "load 1-min"]],
        rows, rule=True,
    ):  # fmt: skip
        print(line)
    print("\nLatency over HTTP, one `liftoff serve`, sequential requests (ms)")
    rows = []
    for s in sizes:
        base = statistics.median(s.latency_ms["baseline"])
        for name in QUERIES:
            ms = s.latency_ms[name]
            ratio = statistics.median(ms) / base
            rows.append([
                f"{s.customers:,}", name, cell(statistics.median(ms)), cell(_q(ms, 0.9)),
                f"{min(ms):.1f}-{max(ms):.1f}", f"{ratio:.2f}", str(len(ms)),
            ])  # fmt: skip
    for line in table(
        [["customers", "query", "median", "p90", "spread", "vs baseline", "n"]],
        rows, rule=True, align="><>>>>>",
    ):  # fmt: skip
        print(line)


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    sizes = [Size(int(n)) for n in args.sizes.split(",")]
    secret = secrets.token_hex(32)
    print(f"bench.health: sizes {[s.customers for s in sizes]}, {args.days} days; {load()}")

    async def body() -> None:
        from app.accounts.models import Role
        from app.accounts.tokens import token_for
        from app.db import close_db
        from app.settings import Settings

        if args.keep_database:
            from bench.db import create_database, with_database

            teardown.db_name = args.keep_database
            url = with_database(args.database_url, args.keep_database)
            with contextlib.suppress(Exception):  # exists already: reuse it
                await create_database(args.database_url, args.keep_database)
            version = "(kept database)"
        else:
            url, version = await teardown.create_database()
        print(f"PostgreSQL {version}, database {teardown.db_name}")
        org, template_id, template, admin = await prepare(url)
        port = free_port()
        server = Child(
            "serve", serve_argv(port), app_env(url, secret, LIFTOFF_INLINE_WORKER="false"), port
        )
        teardown.add(server.stop)
        server.start()
        await server.wait_ready()
        token = token_for(
            Settings(secret_key=secret), subject=admin, organization_id=org,
            role=Role.ADMIN,
        )  # fmt: skip
        have = await customer_count(org)
        try:
            for size in sizes:
                print(f"-- {size.customers:,} customers: generating ({load()})", flush=True)
                if size.customers > have:
                    await grow(org, template_id, template, have, size, args.days)
                else:
                    from bench.health_data import row_count

                    size.rollups = await row_count("usage_daily")
                have = max(have, size.customers)
                rounds = args.rounds if size.customers < 1_000_000 else max(1, args.rounds - 1)
                print(f"   {size.rollups:,} rollup rows in {size.generate_s:.0f}s; recomputing "
                      f"({load()})", flush=True)  # fmt: skip
                await recompute(org, size, rounds, teardown.db_name)
                print(f"   querying ({load()})", flush=True)
                ids = await sample_ids(org, 200)
                random.Random(size.customers).shuffle(ids)
                await latencies(server, token, ids, size, args.rounds, args.requests)
        finally:
            await close_db()
        report(sizes)
        print(f"\n{load()} at the end")

    run(body())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    raise SystemExit(main())
