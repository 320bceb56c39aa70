"""Liftoff's workflow query and updateTask against a bare Strawberry app of the same shape.

    python -m bench.workflow [--concurrency 16] [--seconds 10 | --requests N] [--database-url URL]

One run: a throwaway database on the PostgreSQL server (DATABASE_URL, else the machine's),
migrated and seeded through the app's services; `liftoff serve` and `bench.bare_app` on uvicorn,
one process each; the same requests, concurrency and duration against both; a table of
requests/s, p50/p99 latency and CPU per request, and the Liftoff/bare ratios. Subprocesses and
the database are removed at the end, also on Ctrl-C or errors. Figures, not verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time

from bench.db import DEFAULT_SERVER, with_database
from bench.load_clients import CLIENTS
from bench.metrics import cpu_or_zero, rss_kb
from bench.procs import (
    Child,
    Teardown,
    app_env,
    free_port,
    guarded_main,
    liftoff_argv,
    production_env,
    run,
    serve_argv,
)
from bench.report import cell, table
from bench.tenant import Seeded, seed
from bench.workflow_load import (
    MakeRequest,
    Run,
    check_same_shape,
    measure,
    merged,
    query_requests,
    update_requests,
)

TARGETS = {"workflow query": 0.6, "updateTask": 0.85}


def bare_argv(port: int, log_level: str, factory: str = "create_app") -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"bench.bare_app:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]


class PausedWorker:
    """The separate `liftoff worker`, stopped (SIGSTOP) while Liftoff's api is measured so the
    figures are the api's alone, then resumed to drain what the run left in the outbox; its
    CPU during the drains, per request, is reported apart."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.cpu: dict[str, float] = {}

    def pause(self) -> None:
        if self.child.pid is not None:
            os.kill(self.child.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.child.pid is not None:
            os.kill(self.child.pid, signal.SIGCONT)

    async def drain(self, op: str, quiet: float = 0.05, within: float = 120.0) -> None:
        """Resume; until the worker has used under `quiet` of a core for a second."""
        if self.child.pid is None:
            return
        self.resume()
        print("... worker draining the outbox", file=sys.stderr, flush=True)
        start = cpu_or_zero(self.child.pid)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            before = cpu_or_zero(self.child.pid)
            await asyncio.sleep(1.0)
            if cpu_or_zero(self.child.pid) - before < quiet:
                break
        self.cpu[op] = self.cpu.get(op, 0.0) + cpu_or_zero(self.child.pid) - start

    def summary(self, runs: list[Run]) -> str:
        per_op = []
        for op, seconds in self.cpu.items():
            done = sum(r.ok for r in runs if r.op == op and r.app == "liftoff")
            if done:
                per_op.append(f"{op} {seconds / done * 1000:.2f}")
        return (
            "worker CPU ms per Liftoff request, drained after each run (its own process, "
            "not in srv CPU): " + (", ".join(per_op) or "-")
        )


def redis_summary(runs: list[Run]) -> str:
    """Valkey's CPU per Liftoff request, by operation (the rate limits; the paused worker
    publishes nothing meanwhile)."""
    per_op = []
    for op in dict.fromkeys(r.op for r in runs):
        mine = [r for r in runs if r.op == op and r.app == "liftoff" and r.redis_cpu is not None]
        done = sum(r.ok for r in mine)
        if done:
            per_op.append(f"{op} {sum(r.redis_cpu or 0.0 for r in mine) / done * 1000:.2f}")
    return "Valkey CPU ms per Liftoff request (its own process): " + (", ".join(per_op) or "-")


# --- report ---------------------------------------------------------------------------------


def uptime() -> str:
    """The machine's `uptime` line (load averages over 1, 5 and 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def spread(values: list[float]) -> str:
    """Median of per-round values with their range: `0.61 (0.58-0.66, n=3)`."""
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f}, n={len(values)})"


def report(rounds: list[Run], header: list[str], notes: list[str]) -> None:
    grouped: dict[tuple[str, str], list[Run]] = {}
    for r in rounds:
        grouped.setdefault((r.op, r.app), []).append(r)
    runs = [merged(group) for group in grouped.values()]
    print()
    for line in header + notes:
        print(line)
    print()
    heads = [
        ["operation", "app", "ok", "errors", "req/s", "p50 ms", "p99 ms", "srv CPU", "pg CPU",
         "cli CPU", "cli", "busy"],
        ["", "", "", "", "median", "", "", "ms/req", "ms/req", "ms/req", "core %", "%"],
    ]  # fmt: skip
    rows = [
        [
            r.op, r.app, str(r.ok), str(r.errors),
            f"{statistics.median(g.rps for g in grouped[(r.op, r.app)]):.1f}",
            f"{r.pct(0.50):.1f}", f"{r.pct(0.99):.1f}", cell(r.per_request_ms(r.server_cpu)),
            cell(r.per_request_ms(r.pg_cpu)), cell(r.per_request_ms(r.client_cpu)),
            f"{r.client_core * 100:.0f}",
            cell(None if r.machine_busy is None else r.machine_busy * 100, "{:.0f}"),
        ]
        for r in runs
    ]  # fmt: skip
    widths = [16, 14, 8, 8, 9, 9, 9, 9, 8, 9, 8, 7]
    for line in table(heads, rows, widths=widths, align="<<" + ">" * 10, sep="", rule=True):
        print(line)
    print()
    print("Ratios against the fair bare app (same caches and GC), median of per-round ratios")
    print("(range, rounds); each round runs both apps back to back, alternating who goes first:")
    ops = dict.fromkeys(r.op for r in runs)
    for op in ops:
        bare_rounds = grouped.get((op, "bare"), [])
        for app in ("liftoff", "bare-pg", "bare-uncached"):
            mine = grouped.get((op, app))
            if not mine or not bare_rounds:
                continue
            pairs = list(zip(mine, bare_rounds, strict=False))
            thr = [a.rps / b.rps for a, b in pairs if b.rps]
            cpu = [
                ac / bc
                for a, b in pairs
                if (ac := a.per_request_ms(a.server_cpu)) and (bc := b.per_request_ms(b.server_cpu))
            ]
            p50 = [a.pct(0.5) / b.pct(0.5) for a, b in pairs]
            target = ""
            if app == "liftoff":
                goal = TARGETS.get(op)
                target = f"   (goal: throughput >= {goal})" if goal else ""
            print(
                f"  {op:<16} {app:<14} throughput {spread(thr)}   server CPU/req {spread(cpu)}"
                f"   p50 {spread(p50)}{target}"
            )
    for op in ops:
        print(limited_by(op, grouped))
    for r in runs:
        if r.first_error:
            print(f"  first error of {r.op} on {r.app}: {r.first_error}")


CLIENT_BOUND = 0.9
"""The load generator's share of its one core from which a run measured the client."""
MACHINE_BOUND = 0.95
"""The machine's busy share from which a run measured the whole machine."""
SERVER_BOUND = 0.9
"""The server's share of its one core (one uvicorn process) from which a run measured it."""


def limited_by(op: str, grouped: dict[tuple[str, str], list[Run]]) -> str:
    """What bounded the throughput of `op` in the runs of the bare app and Liftoff (medians
    of their rounds): the load generator (one process, near a full core), the app's server
    process (one process, near a full core), the whole machine, or neither."""
    said, bounds = [], set()
    for app in ("bare", "liftoff"):
        mine = grouped.get((op, app), [])
        if not mine:
            continue
        client = statistics.median(r.client_core for r in mine)
        busy = [r.machine_busy for r in mine if r.machine_busy is not None]
        machine = statistics.median(busy) if busy else None
        cores = [c for r in mine if (c := r.server_core) is not None]
        server = statistics.median(cores) if cores else None
        if client >= CLIENT_BOUND:
            bound = "the load generator"
        elif server is not None and server >= SERVER_BOUND:
            bound = "its server process"
        elif machine is not None and machine >= MACHINE_BOUND:
            bound = "the machine"
        else:
            bound = "neither (latency)"
        bounds.add(bound)
        said.append(
            f"{app} by {bound} (client {client:.0%} of a core, server {cell(server, '{:.0%}')}, "
            f"machine {cell(machine, '{:.0%}')})"
        )
    line = f"  {op} limited: " + "; ".join(said)
    if bounds == {"the load generator"}:
        line += (
            ". The load generator bounded both, so the throughput ratio understates what "
            "separates the apps; server CPU/req says it."
        )
    return line


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.workflow",
        description="Liftoff's workflow query and updateTask vs a bare Strawberry app.",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER,
        help="PostgreSQL server to create the throwaway database on "
        f"(default: $DATABASE_URL, else {DEFAULT_SERVER}).",
    )
    p.add_argument("--concurrency", type=int, default=16, help="Concurrent clients (16).")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--seconds", type=float, default=10.0, help="Seconds per run (10).")
    amount.add_argument("--requests", type=int, help="A fixed request count per run instead.")
    p.add_argument("--warmup", type=float, default=2.0, help="Warm-up seconds per run (2).")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Repeat the apps this many times, alternating which goes first; ratios are the "
        "median of the per-round ratios, with their range (3).",
    )
    p.add_argument(
        "--soak",
        type=int,
        default=0,
        help="After the rounds, send this many workflow queries to Liftoff and print its RSS "
        "at every tenth (0: skip).",
    )
    p.add_argument(
        "--no-uncached",
        action="store_true",
        help="Skip the reference bare app without caches (default: measure it too, labelled).",
    )
    p.add_argument(
        "--no-bare-pg",
        action="store_true",
        help="Skip the reference bare app that stores each updateTask change in PostgreSQL "
        "(default: measure it too when updateTask runs, labelled).",
    )
    p.add_argument("--customers", type=int, default=64, help="Seeded customers (64).")
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default="aiohttp",
        help="The load generator's HTTP client (bench/load_clients.py): aiohttp (default; "
        "ClientSession, C parser, about 0.2 ms CPU per request) or httpx (AsyncClient, about "
        "1.8 ms: it bounds both apps; the client of the figures measured before this option).",
    )
    p.add_argument(
        "--only", choices=["query", "update"], help="Run one operation only (default: both)."
    )
    p.add_argument(
        "--log-level", default="warning", help="uvicorn log level of both servers (warning)."
    )
    p.add_argument(
        "--worker",
        choices=["process", "inline"],
        default="process",
        help="process (default, as production deploys): Liftoff with Redis (a Valkey of the "
        "run) and a separate `liftoff worker`, paused while a run is measured and resumed to "
        "drain the outbox between runs, its CPU per request printed apart; inline: no Redis, "
        "the outbox worker inside the api process (the embedded default), measured with it.",
    )
    return p.parse_args(argv)


async def _benchmark(
    args: argparse.Namespace,
    servers: list[Child],
    seeded: Seeded,
    database: str,
    notes: list[str],
    idle: dict[str, int],
    worker: PausedWorker | None,
    redis_pid: int | None = None,
) -> list[Run]:
    await asyncio.gather(*(s.wait_ready() for s in servers))
    idle.update({s.name: rss_kb(s.pid) for s in servers})
    ops: list[tuple[str, MakeRequest]] = []
    if args.only in (None, "query"):
        ops.append(("workflow query", query_requests(seeded.customers, args.concurrency)))
    if args.only in (None, "update"):
        ops.append(("updateTask", update_requests(seeded.customers, args.concurrency)))
    for op, make in ops:
        notes.append("  shape check, " + await check_same_shape(servers, make, op))
    runs: list[Run] = []
    for n in range(args.rounds):
        for op, make in ops:
            # alternate which app goes first, so slow drifts of the machine hit both alike
            for server in servers if n % 2 == 0 else servers[::-1]:
                if server.name == "bare-pg" and op != "updateTask":
                    continue  # a query is the same on it as on the bare app
                label = f" (round {n + 1}/{args.rounds})" if args.rounds > 1 else ""
                print(f"... {op} on {server.name}{label}", file=sys.stderr, flush=True)
                paused = worker if server.name == "liftoff" else None
                if paused is not None:
                    paused.pause()
                try:
                    result = await measure(
                        server,
                        op,
                        make,
                        concurrency=args.concurrency,
                        seconds=None if args.requests else args.seconds,
                        requests=args.requests,
                        warmup=args.warmup,
                        database=database,
                        redis_pid=redis_pid if server.name == "liftoff" else None,
                        client_kind=args.client,
                    )
                finally:
                    if paused is not None:
                        await paused.drain(op)
                runs.append(result)
    if worker is not None:
        notes.append("  " + worker.summary(runs))
    if redis_pid is not None:
        notes.append("  " + redis_summary(runs))
    if args.soak:
        await soak(servers[1], query_requests(seeded.customers, args.concurrency), args, notes)
    return runs


async def soak(
    server: Child, make: MakeRequest, args: argparse.Namespace, notes: list[str]
) -> None:
    """`--soak` workflow queries in tenths, Liftoff's RSS after each: flat, or growing?"""
    tenth = max(1, args.soak // 10)
    readings = [rss_kb(server.pid)]
    for n in range(10):
        print(f"... soak {n + 1}/10 ({tenth} queries)", file=sys.stderr, flush=True)
        await measure(
            server, "soak", make, concurrency=args.concurrency, seconds=None, requests=tenth,
            warmup=0, database=server.name, client_kind=args.client,
        )  # fmt: skip
        readings.append(rss_kb(server.pid))
    mb = ", ".join(f"{r / 1024:.0f}" for r in readings)
    notes.append(f"  soak: Liftoff RSS MB at 0, 10 %, ..., 100 % of {tenth * 10} queries: {mb}")


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    print(f"... creating database {teardown.db_name}", file=sys.stderr, flush=True)
    db_url, pg_version = run(teardown.create_database())
    secret = secrets.token_urlsafe(32)
    print(f"... migrating and seeding {args.customers} customers", file=sys.stderr, flush=True)
    seeded = run(seed(db_url, secret, args.customers))

    worker: PausedWorker | None = None
    redis_pid: int | None = None
    if args.worker == "process":
        valkey, env = run(production_env(teardown, db_url, secret, "workflow"))
        redis_pid = valkey.pid
        env["LIFTOFF_LOG_LEVEL"] = args.log_level.upper()
        process = Child(
            "worker", liftoff_argv("worker"), {**env, "LIFTOFF_WORKER_METRICS_PORT": "0"}
        )
        teardown.add(process.stop)
        process.start()
        run(process.wait_for_log("Worker running"))
        worker = PausedWorker(process)
        teardown.add(worker.resume)  # a stopped process cannot act on the SIGTERM that follows
    else:
        env = app_env(db_url, secret, args.log_level, LIFTOFF_INLINE_WORKER="true")
    lift_port, bare_port = free_port(), free_port()
    servers = [
        Child("bare", bare_argv(bare_port, args.log_level), env, bare_port),
        Child("liftoff", serve_argv(lift_port), env, lift_port),
    ]
    if not args.no_uncached:
        port = free_port()
        servers.append(
            Child(
                "bare-uncached", bare_argv(port, args.log_level, "create_uncached_app"), env, port
            )
        )
    if not args.no_bare_pg and args.only in (None, "update"):
        port = free_port()
        servers.append(
            Child("bare-pg", bare_argv(port, args.log_level, "create_pg_app"), env, port)
        )
    for s in servers:
        teardown.add(s.stop)
        s.start()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    amount = f"{args.requests} requests" if args.requests else f"{args.seconds:g} s"
    load = uptime()
    where = with_database(teardown.server_url, teardown.db_name).split("@")[-1]
    header = [
        f"Liftoff workflow benchmark: concurrency {args.concurrency}, {amount} per run after "
        f"{args.warmup:g} s warm-up, {args.rounds} round(s), {args.customers} customers, "
        f"PostgreSQL {pg_version} ({where})",
        f"CPUs: os.cpu_count()={os.cpu_count()}, usable={usable}. CAVEAT: the load generator "
        f"({args.client}, this process), both servers and PostgreSQL share this machine;",
        "  'busy' is the whole machine's CPU use during a run, so near 100 % means the "
        "figures are CPU-bound on the machine, not only on the server.",
        "Each app is one uvicorn process; Liftoff = `liftoff serve --no-migrate` "
        "(DB pool max from LIFTOFF_DB_POOL_MAX, default 10); bare = bench.bare_app.",
        "Liftoff's outbox worker: "
        + (
            "a separate `liftoff worker` process with Redis (a Valkey of this run), as "
            "production deploys it; paused while Liftoff is measured, then resumed to drain"
            if worker
            else "inside the api process, no Redis (the embedded default), measured with it"
        )
        + f"; at start: {load}",
        "Apps: bare = bench.bare_app with Liftoff's parse/validation caches and GC settings (the "
        "fair baseline); bare-uncached = the same without them (reference only); bare-pg = the "
        "fair bare app that also stores each updateTask change (task progress, workflow version) "
        "in the bench database through asyncpg in one statement (reference only: what "
        "persistence alone costs).",
    ]
    notes: list[str] = []
    idle: dict[str, int] = {}
    runs = run(_benchmark(args, servers, seeded, teardown.db_name, notes, idle, worker, redis_pid))
    header.append(f"at end:   {uptime()}")
    notes.append(
        "  RSS MB idle (ready) -> after the runs: "
        + ", ".join(
            f"{s.name} {idle[s.name] / 1024:.0f} -> {rss_kb(s.pid) / 1024:.0f}" for s in servers
        )
    )
    report(runs, header, notes)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
