"""Usage ingestion: events/s through `ingestEvents` (1,000-event calls from several concurrent
clients to one `liftoff serve`) and through `liftoff import-events`, the latency of an ingest
call, and how both hold as the event table grows.

    python -m bench.ingest [--rows 0,1000000] [--clients 4] [--calls 15] [--lines 200000]
                           [--rounds 3] [--customers 2000] [--python-reader-too]
                           [--beside-empty] [--no-ceiling] [--database-url URL]

One run: a throwaway database (migrated), one organization with `--customers` customers known
by external ids and an API key. For each table size of `--rows` (ascending), the table is
first filled to that many events (set-based SQL: events, their keys and rollups, spread over
the last 90 days), then `--rounds` rounds alternate the API measurement and the import
measurement (which goes first alternates too). API: `--clients` closed-loop clients, each
sending `--calls` calls of 1,000 new events (bodies built before the clock starts). Import: a
CSV of `--lines` new events through the real command. Ceiling (unless `--no-ceiling`), right
after the import: the same number of rows of the same shapes `COPY`d by PostgreSQL alone
into the event table and the key table (`bench/ingest_ceiling.py`), the least the issue
requires, to say how far the import is from what this server can take at all. Figures, not
verdicts.

With `--beside-empty`, a second database set up the same way, with its own `liftoff serve`,
has its event tables emptied before every round and takes the same steps in the same round
(which database goes first alternates): each size is then compared with an empty table
measured in the same minutes, round by round, so a machine whose load changes while the
table fills does not pass for the table's growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.db import DEFAULT_SERVER
from bench.health import load
from bench.ingest_ceiling import Ceiling, ceiling_round, report_ceiling
from bench.metrics import cpu_or_zero, postgres_cpu
from bench.procs import (
    Child,
    Teardown,
    app_env,
    free_port,
    guarded_main,
    liftoff_argv,
    run,
    serve_argv,
)
from bench.report import table

INGEST = (
    "mutation($input: IngestEventsInput!) { ingestEvents(input: $input) "
    "{ accepted duplicates rejected items(only: [DUPLICATE, REJECTED]) { index status code } } }"
)
NAMES = ("project_created", "report_shared", "teammate_invited", "dashboard_viewed", "export_run")
BATCH = 1000


@dataclass
class Size:
    """Figures at one table size."""

    rows: int
    fill_s: float = 0.0
    api_rate: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    import_rate: list[float] = field(default_factory=list)
    api_cpu_us: list[float] = field(default_factory=list)  # api process + PostgreSQL, per event
    import_cpu_us: list[float] = field(default_factory=list)  # command + PostgreSQL, per event
    api_pg_us: list[float] = field(default_factory=list)  # PostgreSQL's share of api_cpu_us
    import_pg_us: list[float] = field(default_factory=list)  # PostgreSQL's share of import_cpu_us
    # the same figures for `import-events --python-reader` (with --python-reader-too)
    py_rate: list[float] = field(default_factory=list)
    py_cpu_us: list[float] = field(default_factory=list)
    py_pg_us: list[float] = field(default_factory=list)
    ceiling: Ceiling = field(default_factory=Ceiling)  # bare COPY of the same rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", default="0,1000000", help="event table sizes, ascending")
    p.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    p.add_argument("--calls", type=int, default=15, help="1,000-event calls per client per round")
    p.add_argument("--lines", type=int, default=200_000, help="lines per import round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--python-reader-too",
        action="store_true",
        help="each round also imports a file with --python-reader (order alternating)",
    )
    p.add_argument(
        "--beside-empty",
        action="store_true",
        help="each round also runs against a database whose event tables are emptied first",
    )
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the bare COPY of the same rows into the event and key tables",
    )
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_SERVER))
    return p.parse_args(argv)


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def prepare(url: str, customers: int) -> tuple[uuid.UUID, str, list[str]]:
    """Migrate; an organization, its customers (by external id) and an ingest API key."""
    from tortoise.connection import get_connection

    from app.accounts import apikeys
    from app.db import close_db, init_db, migrate, transaction
    from app.onboarding.templates import open_organization

    await migrate(url)
    await close_db()
    await init_db(url, pool_max=4)
    async with transaction():
        new = await open_organization(
            name="Bench", slug="bench-ingest", admin_email="admin@bench.test",
            admin_name="Admin", created_by="bench",
        )  # fmt: skip
        _, secret = await apikeys.create_key(new.viewer, name="bench")
    externals = [f"acct-{i:06d}" for i in range(customers)]
    await get_connection("default").execute_query(
        "INSERT INTO customer (id, organization_id, external_id, email, name, user_type, "
        "acquisition_channel, tags, signed_up_at, created_at) SELECT gen_random_uuid(), $1, x, "
        "x || '@bench.test', x, 'standard', 'direct', '[]'::jsonb, now(), now() "
        "FROM unnest($2::varchar[]) AS x",
        [new.organization.id, externals],
    )
    return new.organization.id, secret, externals


async def customer_ids(org: uuid.UUID) -> list[uuid.UUID]:
    from tortoise.connection import get_connection

    rows = await get_connection("default").execute_query_dict(
        "SELECT id FROM customer WHERE organization_id = $1 ORDER BY id", [org]
    )
    return [r["id"] for r in rows]


async def fill(org: uuid.UUID, have: int, want: int) -> None:
    """Grow the event table to `want` rows with keys and rollups, a million per statement."""
    from tortoise.connection import get_connection

    from app.db import transaction

    conn = get_connection("default")
    while have < want:
        n = min(1_000_000, want - have)
        async with transaction():
            await conn.execute_query(
                """WITH c AS (SELECT array_agg(id ORDER BY id) AS ids FROM customer
                           WHERE organization_id = $1),
                g AS (
                    SELECT 'fill-' || i AS k, c.ids[1 + i % cardinality(c.ids)] AS cid,
                           now() - (i % 7776000) * interval '1 s' AS at,
                           (ARRAY['project_created','report_shared','teammate_invited',
                           'dashboard_viewed','export_run'])[1 + i % 5] AS name
                    FROM generate_series($2::bigint, $3::bigint - 1) AS i, c
                ), k AS (INSERT INTO usage_event_key (organization_id, idempotency_key)
                         SELECT $1, k FROM g)
                , e AS (INSERT INTO usage_event
                         (organization_id, customer_id, name, occurred_at, idempotency_key)
                         SELECT $1, cid, name, at, k FROM g)
                INSERT INTO usage_daily (organization_id, customer_id, day, name, count,
                                         first_at, last_at)
                SELECT $1, cid, (at AT TIME ZONE 'UTC')::date, name, count(*), min(at), max(at)
                FROM g GROUP BY 2, 3, 4
                ON CONFLICT (organization_id, customer_id, day, name) DO UPDATE SET
                    count = usage_daily.count + EXCLUDED.count""",
                [org, have, have + n],
            )
        have += n
    await conn.execute_script("ANALYZE usage_event; ANALYZE usage_event_key; ANALYZE usage_daily")


def bodies(externals: list[str], n: int, tag: str) -> list[bytes]:
    """`n` request bodies of 1,000 new events each (JSON, encoded before timing)."""
    rng = random.Random(tag)
    now = datetime.now(UTC)
    out = []
    for b in range(n):
        events = [
            {
                "externalId": rng.choice(externals),
                "name": rng.choice(NAMES),
                "occurredAt": (now - timedelta(seconds=rng.randint(60, 30 * 86400))).isoformat(),
                "idempotencyKey": f"{tag}-{b}-{i}",
                "properties": {"plan": "pro", "n": i} if i % 4 == 0 else None,
            }
            for i in range(BATCH)
        ]
        out.append(
            json.dumps({"query": INGEST, "variables": {"input": {"events": events}}}).encode()
        )
    return out


class Cpu:
    """CPU seconds of a process (and its children) and of PostgreSQL's backends for a
    database, sampled while `follow` runs (backends that exit keep their last reading)."""

    def __init__(self, database: str, pid: int | None = None) -> None:
        self.database, self.pid = database, pid
        self.start = self._read()
        self.last = dict(self.start)
        self.running = True

    def _read(self) -> dict[str, float]:
        out = postgres_cpu(self.database)
        if self.pid is not None:
            out["self"] = cpu_or_zero(self.pid)
        return out

    async def follow(self) -> int:
        while self.running:
            self.last.update(self._read())
            await asyncio.sleep(0.25)
        return 0

    def stop(self) -> None:
        self.last.update(self._read())
        self.running = False

    def used(self, extra: float = 0.0) -> float:
        self.stop()
        return extra + sum(v - self.start.get(k, 0.0) for k, v in self.last.items())

    def postgres(self) -> float:
        """The CPU seconds of PostgreSQL's backends alone."""
        return sum(v - self.start.get(k, 0.0) for k, v in self.last.items() if k != "self")


async def api_round(server: Child, secret: str, externals: list[str], size: Size, tag: str,
                    clients: int, calls: int, database: str) -> None:  # fmt: skip
    import httpx

    work = [bodies(externals, calls, f"{tag}-c{c}") for c in range(clients)]
    headers = {"x-api-key": secret, "content-type": "application/json"}

    async def client(mine: list[bytes], http: httpx.AsyncClient) -> int:
        accepted = 0
        await asyncio.sleep(0)
        for body in mine:
            started = time.perf_counter()
            response = await http.post("/graphql", content=body, headers=headers)
            size.latency_ms.append(1000 * (time.perf_counter() - started))
            answer = response.json()
            if response.status_code != 200 or answer.get("errors"):
                raise RuntimeError(f"ingestEvents: {response.status_code} {str(answer)[:300]}")
            accepted += answer["data"]["ingestEvents"]["accepted"]
        return accepted

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits,
                                 trust_env=False) as http:  # fmt: skip
        await http.post("/graphql", content=bodies(externals, 1, f"{tag}-warm")[0], headers=headers)
        cpu = Cpu(database, server.pid)
        started = time.perf_counter()
        follower = asyncio.create_task(cpu.follow())
        done = await asyncio.gather(*(client(w, http) for w in work))
        cpu.stop()
        await follower
        seconds = time.perf_counter() - started
    accepted = sum(done)
    assert accepted == clients * calls * BATCH, done
    size.api_rate.append(accepted / seconds)
    size.api_cpu_us.append(1e6 * cpu.used() / accepted)
    size.api_pg_us.append(1e6 * cpu.postgres() / accepted)


def write_file(path: Path, externals: list[str], lines: int, tag: str) -> None:
    rng = random.Random(tag)
    now = datetime.now(UTC)
    with path.open("w") as f:
        f.write("external_id,name,occurred_at,idempotency_key,properties\n")
        for i in range(lines):
            at = (now - timedelta(seconds=rng.randint(60, 60 * 86400))).isoformat()
            props = '"{""plan"":""pro""}"' if i % 4 == 0 else ""
            f.write(f"{rng.choice(externals)},{rng.choice(NAMES)},{at},{tag}-{i},{props}\n")


async def import_round(url: str, secret_key: str, externals: list[str], size: Size, tag: str,
                       lines: int, database: str, python: bool = False) -> None:  # fmt: skip
    reader = ["--python-reader"] if python else []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        path = Path(folder) / "events.csv"
        await asyncio.to_thread(write_file, path, externals, lines, tag)
        cpu = Cpu(database)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        follower = asyncio.create_task(cpu.follow())
        started = time.perf_counter()
        done = await asyncio.to_thread(
            subprocess.run,
            liftoff_argv("import-events", str(path), "--org", "bench-ingest", *reader),
            env=app_env(url, secret_key, COLUMNS="100"),
            capture_output=True,
            text=True,
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        cpu.stop()
        await follower
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    if done.returncode != 0 or f"{lines:,} accepted" not in done.stdout:
        raise RuntimeError(f"import-events: {done.returncode} {done.stdout[-300:]} {done.stderr}")
    rate, cpu_us, pg_us = (
        (size.py_rate, size.py_cpu_us, size.py_pg_us)
        if python
        else (size.import_rate, size.import_cpu_us, size.import_pg_us)
    )
    rate.append(lines / seconds)
    cpu_us.append(1e6 * cpu.used(command) / lines)
    pg_us.append(1e6 * cpu.postgres() / lines)


def report(sizes: list[Size], args: argparse.Namespace) -> None:
    print(f"\ningestEvents: {args.clients} clients x {args.calls} calls of {BATCH} events per "
          f"round, one `liftoff serve`; import-events: {args.lines:,} lines per round "
          "(process start included)")  # fmt: skip
    first = sizes[0]
    rows = []
    for s in sizes:
        api, imp = statistics.median(s.api_rate), statistics.median(s.import_rate)
        rows.append([
            f"{s.rows:,}", f"{api:,.0f}", f"{min(s.api_rate):,.0f}-{max(s.api_rate):,.0f}",
            f"{api / statistics.median(first.api_rate):.2f}",
            f"{_q(s.latency_ms, 0.5):.0f}", f"{_q(s.latency_ms, 0.99):.0f}",
            f"{imp:,.0f}", f"{min(s.import_rate):,.0f}-{max(s.import_rate):,.0f}",
            f"{imp / statistics.median(first.import_rate):.2f}",
        ])  # fmt: skip
    for line in table(
        [["events in table", "API ev/s", "spread", "vs first", "p50 ms", "p99 ms",
          "import ev/s", "spread", "vs first"]],
        rows, rule=True,
    ):  # fmt: skip
        print(line)
    print("\nCPU per event (the api process or the import command, plus PostgreSQL's backends "
          "for the database), and the rate two idle cores would give at that cost")  # fmt: skip
    rows = []
    for s in sizes:
        api, imp = statistics.median(s.api_cpu_us), statistics.median(s.import_cpu_us)
        api_pg, imp_pg = statistics.median(s.api_pg_us), statistics.median(s.import_pg_us)
        rows.append([f"{s.rows:,}", f"{api:.0f}", f"{api_pg:.0f}",
                     f"{min(s.api_cpu_us):.0f}-{max(s.api_cpu_us):.0f}", f"{2e6 / api:,.0f}",
                     f"{imp:.0f}", f"{imp_pg:.0f}",
                     f"{min(s.import_cpu_us):.0f}-{max(s.import_cpu_us):.0f}",
                     f"{2e6 / imp:,.0f}"])  # fmt: skip
    for line in table(
        [["events in table", "API µs/event", "of it PostgreSQL", "spread",
          "API ev/s on 2 idle cores", "import µs/event", "of it PostgreSQL", "spread",
          "import ev/s on 2 idle cores"]],
        rows, rule=True,
    ):  # fmt: skip
        print(line)
    if any(s.py_rate for s in sizes):
        print("\nimport-events --python-reader (every line read and checked by Python), "
              "in the same rounds")  # fmt: skip
        rows = []
        for s in sizes:
            imp, cpu = statistics.median(s.py_rate), statistics.median(s.py_cpu_us)
            spread = f"{min(s.py_rate):,.0f}-{max(s.py_rate):,.0f}"
            rows.append([f"{s.rows:,}", f"{imp:,.0f}", spread,
                         f"{cpu:.0f}", f"{statistics.median(s.py_pg_us):.0f}",
                         f"{min(s.py_cpu_us):.0f}-{max(s.py_cpu_us):.0f}", f"{2e6 / cpu:,.0f}",
                         f"{cpu / statistics.median(s.import_cpu_us):.2f}"])  # fmt: skip
        for line in table(
            [["events in table", "ev/s", "spread", "µs/event", "of it PostgreSQL", "spread",
              "ev/s on 2 idle cores", "µs/event vs PostgreSQL reader"]],
            rows, rule=True,
        ):  # fmt: skip
            print(line)


@dataclass
class Target:
    """A database under measurement: its URL and name, its server and API key."""

    url: str
    database: str
    server: Child
    key: str
    org: uuid.UUID
    customers: list[uuid.UUID]


EMPTY = (
    "TRUNCATE usage_event, usage_event_key, usage_daily; "
    "ANALYZE usage_event; ANALYZE usage_event_key; ANALYZE usage_daily"
)


async def serve(url: str, secret_key: str, teardown: Teardown) -> Child:
    port = free_port()
    env = app_env(url, secret_key, LIFTOFF_INLINE_WORKER="false",
                  LIFTOFF_RATE_INGEST="1000000/minute")  # fmt: skip
    server = Child("serve", serve_argv(port), env, port)
    teardown.add(server.stop)
    server.start()
    await server.wait_ready()
    return server


async def empty(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(EMPTY)
    finally:
        await conn.close()


async def steps(target: Target, size: Size, tag: str, order: list[str], externals: list[str],
                secret_key: str, args: argparse.Namespace) -> None:  # fmt: skip
    for step in order:
        if step == "api":
            await api_round(target.server, target.key, externals, size, tag, args.clients,
                            args.calls, target.database)  # fmt: skip
        elif step == "ceiling":
            await ceiling_round(target.url, target.org, target.customers, size.ceiling,
                                f"{tag}-bare", args.lines)  # fmt: skip
        else:
            await import_round(target.url, secret_key, externals, size, f"{tag}-{step}",
                               args.lines, target.database, python=step == "python")  # fmt: skip


def report_beside(sizes: list[Size], empties: list[Size]) -> None:
    """Each size against the empty table of the same rounds: medians of per-round ratios."""
    print(
        "\nAgainst an empty table measured in the same rounds (median of the per-round "
        "ratios, range);\nµs/event above 1 means more CPU per event than on the empty table"
    )

    def ratio(a: list[float], b: list[float]) -> str:
        pairs = [x / y for x, y in zip(a, b, strict=True)]
        return f"{statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"

    rows = [
        [f"{s.rows:,}", ratio(s.api_rate, e.api_rate), ratio(s.api_cpu_us, e.api_cpu_us),
         ratio(s.import_rate, e.import_rate), ratio(s.import_cpu_us, e.import_cpu_us),
         f"{statistics.median(e.api_rate):,.0f}", f"{statistics.median(e.import_rate):,.0f}"]
        for s, e in zip(sizes, empties, strict=True)
    ]  # fmt: skip
    for line in table(
        [["events in table", "API ev/s vs empty", "API µs/event vs empty", "import ev/s vs empty",
          "import µs/event vs empty", "empty: API ev/s", "empty: import ev/s"]],
        rows, rule=True,
    ):  # fmt: skip
        print(line)


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    sizes = [Size(int(n)) for n in args.rows.split(",")]
    empties = [Size(0) for _ in sizes]
    secret_key = secrets.token_hex(32)
    print(f"bench.ingest: table sizes {[s.rows for s in sizes]}; {os.cpu_count()} cpus; {load()}")

    async def body() -> None:
        from app.db import close_db

        beside: Target | None = None
        if args.beside_empty:
            other = Teardown(teardown.server_url)
            teardown.add(other.close)
            url, _ = await other.create_database()
            other_org, key, _ = await prepare(url, args.customers)
            ids = await customer_ids(other_org)
            await close_db()
            beside = Target(url, other.db_name, await serve(url, secret_key, teardown), key,
                            other_org, ids)  # fmt: skip
            print(f"beside it: database {other.db_name}, its event tables emptied every round")
        url, version = await teardown.create_database()
        print(f"PostgreSQL {version}, database {teardown.db_name}")
        org, key, externals = await prepare(url, args.customers)
        target = Target(url, teardown.db_name, await serve(url, secret_key, teardown), key, org,
                        await customer_ids(org))  # fmt: skip
        have = 0
        try:
            for size, empty_size in zip(sizes, empties, strict=True):
                started = time.perf_counter()
                await fill(org, have, size.rows)
                size.fill_s = time.perf_counter() - started
                have = size.rows
                print(f"-- {size.rows:,} events in the table (filled in {size.fill_s:.0f}s); "
                      f"{load()}", flush=True)  # fmt: skip
                for r in range(args.rounds):
                    tag = f"r{size.rows}-{r}"
                    order = ["api", "import"] if r % 2 == 0 else ["import", "api"]
                    if args.python_reader_too:
                        order = (["api", "import", "python"] if r % 2 == 0
                                 else ["python", "import", "api"])  # fmt: skip
                    if not args.no_ceiling:
                        order.insert(order.index("import") + 1, "ceiling")
                    both = [(target, size)]
                    if beside is not None:
                        await empty(beside.url)
                        both.append((beside, empty_size))
                        if r % 2:
                            both.reverse()
                    for where, figures in both:
                        await steps(where, figures, tag, order, externals, secret_key, args)
                    python = f", python reader {size.py_rate[-1]:,.0f}" if size.py_rate else ""
                    side = (f" (empty table beside: API {empty_size.api_rate[-1]:,.0f}, import "
                            f"{empty_size.import_rate[-1]:,.0f})" if beside else "")  # fmt: skip
                    bare = (f", bare COPY {size.ceiling.rate[-1]:,.0f}" if size.ceiling.rate
                            else "")  # fmt: skip
                    print(f"   round {r + 1}: API {size.api_rate[-1]:,.0f} ev/s, import "
                          f"{size.import_rate[-1]:,.0f}{python}{bare} ev/s{side}; {load()}",
                          flush=True)  # fmt: skip
                have += len(size.api_rate) * args.clients * args.calls * BATCH
                have += (len(size.import_rate) + len(size.py_rate)) * args.lines
                have += len(size.ceiling.rate) * args.lines
        finally:
            await close_db()
        report(sizes, args)
        if not args.no_ceiling:
            report_ceiling(sizes, empties if beside is not None else None)
        if beside is not None:
            report_beside(sizes, empties)
        print(f"\n{load()} at the end")

    run(body())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    raise SystemExit(main())
