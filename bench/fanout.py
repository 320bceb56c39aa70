"""Subscription fan-out: N websocket subscribers on one api process, a steady stream of updates.

    python -m bench.fanout [--subscribers 100,1000,5000] [--rate 50] [--seconds 10]
                           [--customers 50] [--activity-share 0.2] [--client-procs 2]
                           [--no-compression] [--database-url URL]

One run: a throwaway database on the PostgreSQL server (DATABASE_URL, else the machine's),
migrated and seeded through the app's services; a Valkey server of its own on a free port; one
`liftoff worker` and one `liftoff serve` process (restarted for each N, so each N starts from a
clean memory baseline). For each N: N graphql-transport-ws subscribers, spread over a few client
processes (a mix of customers' `workflowProgress` and operators' `activity` dashboards), then
`updateTask PROGRESS` mutations over HTTP at a fixed rate. It prints commit-to-receive latency
(p50/p99), deliveries per second, server memory per connection and where the CPU went. Every
process and the database are removed at the end, also on errors and Ctrl-C. Figures, not verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.db import DEFAULT_SERVER
from bench.fanout_clients import ClientPool
from bench.fanout_load import Driver, Mix, make_mix
from bench.fanout_report import Round, ms, print_report
from bench.metrics import cpu_or_zero, machine_cpu, postgres_cpu, rss_kb
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
from bench.report import fail_on_errors
from bench.tenant import Seeded, seed


async def published_times(url: str, since: float) -> dict[int, tuple[float, float]]:
    """{event id: (created_at, published_at)} as epoch seconds, for events created since `since`."""
    import asyncpg  # here, not at import: the client processes import this module too

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM created_at)::float8 AS c,"
            " extract(epoch FROM published_at)::float8 AS p"
            " FROM outbox_event WHERE created_at >= to_timestamp($1) AND published_at IS NOT NULL",
            since,
        )
    finally:
        await conn.close()
    return {int(r["id"]): (float(r["c"]), float(r["p"])) for r in rows}


@dataclass
class Setup:
    args: argparse.Namespace
    db_url: str
    seeded: Seeded
    env: dict[str, str]
    worker: Child
    valkey_pid: int | None
    teardown: Teardown


async def wait_connected(pool: ClientPool, n: int, within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        states = await pool.ask("status")
        connected = sum(s["connected"] for s in states)
        failed = sum(s["failed"] for s in states)
        if connected + failed >= n:
            return {"connected": connected, "failed": failed}
        if time.monotonic() > deadline:
            errors = [s["first_error"] for s in states if s["first_error"]]
            raise RuntimeError(f"only {connected}/{n} subscribers connected: {errors[:2]}")
        await asyncio.sleep(0.25)


async def wait_idle(pid: int | None, within: float, busy_below: float = 0.1) -> None:
    """Until the process uses less than `busy_below` of a core over half a second."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = cpu_or_zero(pid)
        await asyncio.sleep(0.5)
        if (cpu_or_zero(pid) - before) / 0.5 < busy_below:
            return


async def prime(pool: ClientPool, mix: Mix, driver: Driver, within: float) -> int:
    """Until every subscriber has received an event (so each is live), then let it settle.

    Subscribers still silent after a few rounds are recorded in `mix.lost`.
    """
    deadline = time.monotonic() + within
    rounds = 0
    targets = list(range(mix.customers))
    silent: list[int] = []
    while targets and rounds < 3:
        rounds += 1
        await driver.drive(rate=50.0, seconds=0.0, only=targets)
        last = -1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            states = await pool.ask("status")
            silent = [pool.global_index(j, i) for j, s in enumerate(states) for i in s["silent"]]
            total = sum(s["received"] for s in states)
            if not silent or total == last:
                break
            last = total
        # Quiet, yet some are still silent (subscribed after their event): prime them again.
        owners = {mix.customer_of[g] for g in silent}
        targets = sorted(c for c in owners if c is not None) or ([0] if silent else [])
    mix.lost = set(silent)
    last = -1
    while time.monotonic() < deadline:  # let the priming traffic drain completely
        total = sum(s["received"] for s in await pool.ask("status"))
        if total == last:
            break
        last = total
        await asyncio.sleep(1.0)
    return rounds


def cpu_snapshot(setup: Setup, api: Child, pool: ClientPool) -> dict[str, Any]:
    return {
        "api": cpu_or_zero(api.pid),
        "api_sys": cpu_or_zero(api.pid, system_only=True),
        "worker": cpu_or_zero(setup.worker.pid),
        "valkey": cpu_or_zero(setup.valkey_pid),
        "postgres": sum(postgres_cpu().values()),
        "driver": time.process_time(),
        "clients": pool.cpu(),
        "machine": machine_cpu() or (0.0, 0.0),
        "wall": time.monotonic(),
    }


async def run_round(setup: Setup, n: int) -> Round:
    args = setup.args
    procs = args.client_procs or (1 if n <= 200 else 2)
    mix = make_mix(n, setup.seeded, args.activity_share)
    result = Round(
        n=n,
        dashboards=mix.dashboards,
        per_customer=(n - mix.dashboards) / mix.customers,
        client_procs=procs,
        rate=args.rate,
    )
    port = free_port()
    api = Child(f"api-{n}", serve_argv(port), setup.env, port)
    writer = api
    if args.mutations_to == "other":  # a second api process takes the mutations
        other = free_port()
        writer = Child(f"api-{n}-mutations", serve_argv(other), setup.env, other)
        setup.teardown.add(writer.stop)
    result.mutations_elsewhere = writer is not api
    pool = ClientPool()
    driver = Driver(writer.url, setup.seeded.customers)
    setup.teardown.add(pool.stop)
    setup.teardown.add(api.stop)
    try:
        for process in {api.name: api, writer.name: writer}.values():
            process.start()
        await api.wait_ready()
        await writer.wait_ready()
        warm = await driver.client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"authorization": f"Bearer {setup.seeded.csm_token}"},
        )
        warm.raise_for_status()
        # Calibration: CPU per mutation of the api that takes them, while nobody subscribed.
        cpu0 = cpu_or_zero(writer.pid)
        calibration = await driver.drive(args.rate, 3.0)
        await wait_idle(writer.pid, within=10)
        done = sum(calibration.ok_per_customer)
        result.mutation_cpu = (cpu_or_zero(writer.pid) - cpu0) / done if done else math.nan
        result.rss_base_kb = rss_kb(api.pid)

        started = time.monotonic()
        pool.start(
            f"ws://127.0.0.1:{port}/graphql",
            mix.specs,
            procs,
            compression=not args.no_compression,
            concurrency=args.connect_concurrency,
        )
        got = await wait_connected(pool, n, within=args.connect_timeout)
        result.connect_seconds = time.monotonic() - started
        result.connect_failed = got["failed"]
        states = await pool.ask("status")
        first = next((s["first_error"] for s in states if s["first_error"]), None)
        fail_on_errors(f"N={n}: subscribing", got["connected"], got["failed"], first)
        await wait_idle(api.pid, within=30)
        result.prime_rounds = await prime(pool, mix, driver, within=args.connect_timeout)
        result.lost = len(mix.lost)
        await wait_idle(api.pid, within=30)
        result.rss_connected_kb = rss_kb(api.pid)

        await pool.ask("reset")
        before = cpu_snapshot(setup, api, pool)
        t0 = time.time()
        driven = await driver.drive(args.rate, args.seconds)
        result.events = sum(driven.ok_per_customer)
        result.mutation_latencies = driven.latencies
        result.mutation_errors = driven.errors
        result.mutation_skipped = driven.skipped
        if driven.first_error:
            result.errors.append(f"mutation: {driven.first_error}")
        fail_on_errors(f"N={n}: updateTask", result.events, driven.errors, driven.first_error)
        result.expected = mix.expected(driven.ok_per_customer)
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            states = await pool.ask("status")
            if sum(s["received"] for s in states) >= result.expected:
                break
            await asyncio.sleep(0.1)
        after = cpu_snapshot(setup, api, pool)
        result.rss_after_kb = rss_kb(api.pid)

        collected = await pool.ask("collect")
        states = await pool.ask("status")
        result.dropped = sum(s["dropped"] for s in states)
        result.errors += [f"client: {s['first_error']}" for s in states if s["first_error"]]
        times = await published_times(setup.db_url, t0)
        result.relay = [p - c for c, p in times.values()]
        last = t0
        for ids, occurred, received in collected:
            result.delivered += len(received)
            result.latencies.extend(r - o for o, r in zip(occurred, received, strict=True))
            result.from_publish.extend(
                r - times[i][1] for i, r in zip(ids, received, strict=True) if i in times
            )
            if received:
                last = max(last, max(received))
        result.span = last - t0

        wall = after["wall"] - before["wall"]
        result.api_cpu_seconds = after["api"] - before["api"]
        result.api_sys_share = (
            (after["api_sys"] - before["api_sys"]) / result.api_cpu_seconds
            if result.api_cpu_seconds
            else math.nan
        )
        for key in ("api", "worker", "valkey", "postgres", "driver"):
            result.cpu[key] = (after[key] - before[key]) / wall
        result.client_cpu = [
            (a - b) / wall for a, b in zip(after["clients"], before["clients"], strict=True)
        ]
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        result.machine_busy = busy / total if total else math.nan
        mine = sum(result.cpu.values()) + sum(result.client_cpu)
        result.cpu["others"] = max(0.0, result.machine_busy * (os.cpu_count() or 1) - mine)
        return result
    finally:
        await driver.aclose()
        pool.stop()
        api.stop()
        writer.stop()


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", default="100,1000,5000", help="comma-separated N values")
    p.add_argument("--rate", type=float, default=50.0, help="updateTask mutations per second")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the stream")
    p.add_argument("--customers", type=int, default=50, help="customers the updates rotate over")
    p.add_argument("--activity-share", type=float, default=0.2,
                   help="share of subscribers that are `activity` dashboards")  # fmt: skip
    p.add_argument("--client-procs", type=int, default=0,
                   help="client processes (0: 1 up to 200 subscribers, else 2)")  # fmt: skip
    p.add_argument("--connect-concurrency", type=int, default=100,
                   help="handshakes in flight per client process")  # fmt: skip
    p.add_argument("--connect-timeout", type=float, default=120.0)
    p.add_argument("--drain", type=float, default=15.0,
                   help="how long to wait for deliveries after the last mutation")  # fmt: skip
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (browsers do)")  # fmt: skip
    p.add_argument("--mutations-to", choices=["same", "other"], default="same",
                   help="where the updateTask stream goes: the api process that fans out "
                   "(same), or a second api process (other), as a deployment that keeps "
                   "websockets on their own processes does")  # fmt: skip
    p.add_argument("--database-url", default=None, help="PostgreSQL server (default DATABASE_URL)")
    args = p.parse_args(argv)
    args.ns = [int(v) for v in args.subscribers.split(",") if v.strip()]
    if not args.ns or min(args.ns) < 1 or not 0 <= args.activity_share <= 1:
        p.error("--subscribers needs positive numbers, --activity-share a share in [0, 1]")
    return args


async def bench(args: argparse.Namespace, teardown: Teardown) -> None:
    secret = secrets.token_urlsafe(32)
    db_url, pg_version = await teardown.create_database()
    print(
        f"database {teardown.db_name} on PostgreSQL {pg_version}; "
        f"seeding {args.customers} customers ..."
    )
    seeded = await seed(db_url, secret, args.customers, label="fanout")

    valkey, env = await production_env(teardown, db_url, secret, "fanout")
    worker = Child("worker", liftoff_argv("worker"), env)
    teardown.add(worker.stop)
    worker.start()
    await worker.wait_for_log("Worker running")
    setup = Setup(args, db_url, seeded, env, worker, valkey.pid, teardown)
    print(f"valkey on {valkey.url}; worker pid {worker.pid}; fd limit {raise_fd_limit()}; "
          f"{os.cpu_count()} CPUs; permessage-deflate "
          f"{'off' if args.no_compression else 'offered'}")  # fmt: skip
    print(f"stream: {args.rate:g} updateTask PROGRESS/s for {args.seconds:g} s over "
          f"{args.customers} customers; {args.activity_share:.0%} of subscribers on `activity` "
          "(CSM), the rest on `workflowProgress` of a customer; mutations sent to "
          + ("the same api process" if args.mutations_to == "same"
             else "a second api process (the fan-out process only fans out)"))  # fmt: skip

    rounds: list[Round] = []
    for n in args.ns:
        print(f"N={n}: starting api, connecting subscribers ...", flush=True)
        r = await run_round(setup, n)
        rounds.append(r)
        print(f"N={n}: connected in {r.connect_seconds:.1f} s, {r.events} events, "
              f"{r.delivered:,}/{r.expected:,} deliveries, p99 {ms(r.pct(0.99))} ms, "
              f"api CPU {r.cpu['api']:.0%}", flush=True)  # fmt: skip
    print_report(rounds, args)


def _bench(args: argparse.Namespace, teardown: Teardown) -> int:
    run(bench(args, teardown))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    server_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    return guarded_main(server_url, lambda teardown: _bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
