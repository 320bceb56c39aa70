"""What keeping the analytics rollups costs `updateTask` (part 3 of bench.analytics).

One run, processes as production runs them (a separate worker, Redis): `liftoff serve`
without an inline worker, `liftoff worker` with the `analytics-rollups` consumer paused, and
that consumer alone in a process of its own (`bench.analytics_consumer`), resumed for the
windows with rollup upkeep (`on`) and paused for those without (`off`). Everything else (the
api, the worker and its other consumers, the data, the clients) is the same process in both.
With `base` (another checkout, e.g. main's), a second consumer process runs that checkout's
code for `base` windows, so old and new upkeep are compared in the same run too.

Closed-loop clients send `updateTask` (PROGRESS) for the whole measurement; it is cut into
short windows, one of each mode per round, the order reversed every other round (so a
round's windows are adjacent and a mode's windows sit at both ends of rounds). Before an
upkeep window its consumer catches up with the events the previous window left (not
measured). Per window: requests answered, the CPU time of each process (its threads'
schedstat, in nanoseconds) and of the PostgreSQL backends each one holds (matched by client
port), outbox events, load average. Per round: throughput and CPU per request of each mode
against `off`, and the upkeep's share of the CPU per request in its window (the consumer
process and its backends over every Liftoff process and its backends): on a CPU-bound
machine, throughput with upkeep converges to (1 - that share) times throughput without it,
and the share moves far less with the neighbours' load than throughput does. The consumer
process has its own LISTEN connection, which a worker shares among its consumers; the `net`
share subtracts what the process costs paused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.metrics import postgres_processes
from bench.procs import Child, Teardown, free_port, liftoff_argv, production_env, serve_argv
from bench.tenant import bearer_headers, progress_variables
from bench.workflow_load import UPDATE_TASK

_PORT = re.compile(rb"\((\d+)\)")
_PENDING = """SELECT count(*) FROM outbox_event e, consumer_checkpoint c
WHERE c.name = 'analytics-rollups' AND (e.tx, e.id) > (c.last_tx, c.last_id) AND e.id <= $1"""


def log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def run_seconds(pid: int | str | None) -> float | None:
    """Seconds process `pid` has run on a CPU, from its threads' schedstat (nanoseconds; /proc's
    user + system times tick in 10 ms steps, too coarse for a few-second window); None when
    unreadable."""
    if pid is None:
        return None
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    return total / 1e9


def backends(database: str) -> dict[int, tuple[float, int | None]]:
    """pid -> (CPU seconds, client port) of the local PostgreSQL backends serving `database`."""
    out: dict[int, tuple[float, int | None]] = {}
    for pid, title in postgres_processes(database):
        cpu = run_seconds(pid)
        if cpu is None:
            continue
        port = _PORT.search(title)
        out[int(pid)] = (cpu, int(port.group(1)) if port else None)
    return out


MODES = {"on": "upkeep", "base": "upkeep-base"}
"""The windows with rollup upkeep, and the process that keeps the rollups in each."""


@dataclass
class Snapshot:
    at: float
    procs: dict[str, float]
    pg: dict[int, tuple[float, int | None]]
    owners: dict[int, str]
    ok: int
    last_event: int


@dataclass
class Window:
    mode: str
    seconds: float
    requests: int
    events: int
    cpu: dict[str, float]
    """CPU seconds by process (`api`, `worker`, `upkeep`, `upkeep-base`) and of the PostgreSQL
    backends each holds (`api-pg`, ...; `other-pg`: backends of none, e.g. the bench's own)."""
    load: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def per_request_ms(self, *names: str) -> float:
        return 1000 * sum(self.cpu.get(n, 0.0) for n in names) / max(1, self.requests)

    @property
    def total_ms(self) -> float:
        """Every Liftoff process and its backends (the bench's own connection excluded)."""
        return self.per_request_ms(*(k for k in self.cpu if k != "other-pg"))

    def upkeep_ms(self, role: str) -> float:
        """What the consumer process `role` and its backends cost per request."""
        return self.per_request_ms(role, f"{role}-pg")


@dataclass
class Load:
    """Closed-loop `updateTask` clients: PROGRESS on each client's customers in turn."""

    customers: list[tuple[str, str]]
    concurrency: int
    ok: int = 0
    errors: int = 0
    first_error: str | None = None

    async def client(self, http: Any, worker: int, stop: asyncio.Event) -> None:
        import httpx

        mine = self.customers[worker :: self.concurrency] or [self.customers[0]]
        headers = {cid: bearer_headers(token) for cid, token in mine}
        seq = 0
        while not stop.is_set():
            cid = mine[seq % len(mine)][0]
            seq += 1
            payload = {
                "query": UPDATE_TASK,
                "operationName": "Progress",
                "variables": progress_variables(cid, seq % 99 + 1),
            }
            try:
                response = await http.post(
                    "/graphql", content=json.dumps(payload).encode(), headers=headers[cid]
                )
                error = (
                    None
                    if response.status_code == 200 and b'"errors"' not in response.content
                    else f"HTTP {response.status_code}: {response.content[:300]!r}"
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                self.ok += 1
            else:
                self.errors += 1
                self.first_error = self.first_error or error


@dataclass
class UpkeepRun:
    modes: list[str]
    rounds: list[dict[str, Window]]
    orders: list[list[str]]
    loads: tuple[tuple[float, float, float], tuple[float, float, float]]
    customers: int
    concurrency: int
    window_seconds: float
    catchups: list[float]
    errors: int
    base: str | None


class Processes:
    def __init__(self, children: dict[str, Child], database: str) -> None:
        self.children = children
        self.database = database

    def snapshot(self, load: Load, last_event: int) -> Snapshot:
        procs = {role: run_seconds(child.pid) or 0.0 for role, child in self.children.items()}
        owners = {}
        for role, child in self.children.items():
            if child.pid is not None:
                owners.update(dict.fromkeys(local_ports(child.pid), role))
        return Snapshot(time.perf_counter(), procs, backends(self.database), owners, load.ok,
                        last_event)  # fmt: skip


def window(mode: str, a: Snapshot, b: Snapshot) -> Window:
    cpu = {role: b.procs[role] - a.procs[role] for role in b.procs}
    for pid, (cpu1, port) in b.pg.items():
        cpu0 = a.pg.get(pid, (0.0, port))[0]
        owner = b.owners.get(port or -1) or a.owners.get(port or -1)
        key = f"{owner or 'other'}-pg"
        cpu[key] = cpu.get(key, 0.0) + cpu1 - cpu0
    return Window(mode, b.at - a.at, b.ok - a.ok, b.last_event - a.last_event, cpu,
                  os.getloadavg()[0])  # fmt: skip


def consumer_child(role: str, env: dict[str, str], checkout: str | None) -> Child:
    """`bench.analytics_consumer` on this checkout's code, or on `checkout`'s (its virtualenv's
    Python, its `app` package first on the path; the script itself is this checkout's)."""
    if checkout is None:
        return Child(role, [sys.executable, "-m", "bench.analytics_consumer"], env)
    python = str(Path(checkout) / ".venv" / "bin" / "python")
    script = str(Path(__file__).with_name("analytics_consumer.py"))
    return Child(role, [python, script], env | {"PYTHONPATH": checkout})


async def measure_upkeep(
    *,
    db_url: str,
    database: str,
    secret: str,
    teardown: Teardown,
    customers: list[tuple[str, str]],
    concurrency: int,
    rounds: int,
    seconds: float,
    base: str | None = None,
) -> UpkeepRun:
    """Alternate windows with the rollup upkeep of this checkout (`on`), of `base` (another
    checkout of Liftoff, when given) and none (`off`), under one continuous load."""
    import asyncpg
    import httpx

    load0 = os.getloadavg()
    _, env = await production_env(teardown, db_url, secret, "upkeep",
                                  LIFTOFF_WORKER_METRICS_PORT="0")  # fmt: skip
    port = free_port()
    children = {
        "api": Child("api", serve_argv(port), env, port),
        "worker": Child(
            "worker",
            liftoff_argv("worker"),
            env | {"LIFTOFF_PAUSED_CONSUMERS": "analytics-rollups"},
        ),
        "upkeep": consumer_child("upkeep", env, None),
    }
    if base is not None:
        children["upkeep-base"] = consumer_child("upkeep-base", env, base)
    for child in children.values():
        teardown.add(child.stop)
        child.start()
    await children["api"].wait_ready(within=120)
    for role in MODES.values():
        if role in children:
            await children[role].wait_for_log("state 0 paused", within=120)
            log(children[role].tail(5).splitlines()[0])
    procs = Processes(children, database)
    conn = await asyncpg.connect(db_url)
    changes = dict.fromkeys(children, 0)

    async def last_event() -> int:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox_event"))

    async def signal_consumer(role: str, run: bool) -> None:
        child = children[role]
        assert child.proc is not None
        changes[role] += 1
        child.proc.send_signal(signal.SIGUSR2 if run else signal.SIGUSR1)
        state = "running" if run else "paused"
        await child.wait_for_log(f"state {changes[role]} {state}", within=60)

    async def switch(current: str, want: str) -> float | None:
        """Pause the consumer of `current`, resume that of `want` and let it catch up with the
        events its predecessor left (the seconds it took; None for `off`)."""
        if current in MODES:
            await signal_consumer(MODES[current], False)
        if want not in MODES:
            return None
        await signal_consumer(MODES[want], True)
        started, mark = time.perf_counter(), await last_event()
        while await conn.fetchval(_PENDING, mark):
            if time.perf_counter() - started > 300:
                raise RuntimeError("the analytics consumer did not catch up")
            await asyncio.sleep(0.1)
        took = time.perf_counter() - started
        await asyncio.sleep(0.5)  # one linger: back in its steady rhythm
        return took

    modes = ["on", *(["base"] if base is not None else []), "off"]
    load = Load(customers, concurrency)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    found: list[dict[str, Window]] = []
    orders: list[list[str]] = []
    catchups: list[float] = []
    async with httpx.AsyncClient(base_url=children["api"].url, limits=limits,
                                 timeout=60.0) as http:  # fmt: skip
        clients = [asyncio.create_task(load.client(http, w, stop)) for w in range(concurrency)]
        try:
            mode = "off"
            await switch(mode, "on")  # the seed's events, then a warm-up with upkeep
            mode = "on"
            await asyncio.sleep(3.0)
            for n in range(rounds):
                order = modes if n % 2 == 0 else modes[::-1]
                got: dict[str, Window] = {}
                for want in order:
                    if want != mode:
                        took = await switch(mode, want)
                        mode = want
                        if took is not None:
                            catchups.append(took)
                    for child in children.values():
                        child.check()
                    a = procs.snapshot(load, await last_event())
                    await asyncio.sleep(seconds)
                    b = procs.snapshot(load, await last_event())
                    got[want] = window(want, a, b)
                found.append(got)
                orders.append(list(order))
                off = got["off"]
                parts = [
                    f"{m} {got[m].rps:.0f} req/s {got[m].total_ms:.2f} ms/req"
                    + (f" upkeep {share(got[m], m):.1f} %" if m in MODES else "")
                    for m in modes
                ]
                log(f"round {n + 1}/{rounds}: {'; '.join(parts)}; load {off.load:.1f}")
                if load.errors > 0.01 * max(1, load.ok):
                    raise RuntimeError(f"updateTask errors: {load.first_error}")
        finally:
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            await conn.close()
    for child in reversed(children.values()):
        child.stop()
    return UpkeepRun(modes, found, orders, (load0, os.getloadavg()), len(customers),
                     concurrency, seconds, catchups, load.errors, base)  # fmt: skip


def share(w: Window, mode: str) -> float:
    """The upkeep's share of the CPU per request in window `w` of `mode`, in %."""
    return 100 * w.upkeep_ms(MODES[mode]) / w.total_ms


def net_share(r: dict[str, Window], mode: str) -> float:
    """`share` less what the same consumer process and its backends cost in the round's `off`
    window, paused (its idle loop, its LISTEN connection), per request; in %."""
    on, off = r[mode], r["off"]
    return 100 * (on.upkeep_ms(MODES[mode]) - off.upkeep_ms(MODES[mode])) / on.total_ms


def _spread(values: list[float], spec: str = "{:.3f}") -> str:
    ordered = sorted(values)
    n = len(ordered)
    q1, q3 = ordered[n // 4], ordered[(3 * n) // 4 if n > 1 else 0]
    return (
        f"median {spec.format(statistics.median(ordered))} (quartiles {spec.format(q1)} to"
        f" {spec.format(q3)}, range {spec.format(ordered[0])} to {spec.format(ordered[-1])},"
        f" {n} rounds)"
    )


def report(run: UpkeepRun, out: Callable[[str], None] = print) -> None:
    """Print the rounds and their medians."""
    from bench.report import table

    l0, l1 = run.loads
    ups = [m for m in run.modes if m in MODES]
    out(f"updateTask (PROGRESS), {run.concurrency} closed-loop clients on {run.customers}"
        f" customers, {len(run.rounds)} rounds of {'/'.join(run.modes)} windows of"
        f" {run.window_seconds:g} s each (order reversed every other round); load average"
        f" {l0[0]:.1f}, {l0[1]:.1f}, {l0[2]:.1f} at start, {l1[0]:.1f}, {l1[1]:.1f},"
        f" {l1[2]:.1f} at the end")  # fmt: skip
    if run.base:
        out(f"`base`: the rollup upkeep of the code at {run.base}; `on`: this checkout's")
    heads = [["round", "first"], ["", ""]]
    for m in run.modes:
        heads[0].append(m)
        heads[1].append("req/s")
    for m in ups:
        heads[0].append(f"{m}/off")
        heads[1].append("")
    for m in run.modes:
        heads[0].append(f"CPU {m}")
        heads[1].append("ms/req")
    for m in ups:
        heads[0].append(f"{m} upkeep")
        heads[1].append("% (net)")
    heads[0].append("load")
    heads[1].append("1 min")
    rows = []
    for i, (r, order) in enumerate(zip(run.rounds, run.orders, strict=True), 1):
        row = [str(i), order[0]]
        row += [f"{r[m].rps:.0f}" for m in run.modes]
        row += [f"{r[m].rps / r['off'].rps:.3f}" for m in ups]
        row += [f"{r[m].total_ms:.2f}" for m in run.modes]
        row += [f"{share(r[m], m):.1f} ({net_share(r, m):.1f})" for m in ups]
        row.append(f"{statistics.mean(w.load for w in r.values()):.1f}")
        rows.append(row)
    for line in table(heads, rows, rule=True):
        out(line)
    for m in ups:
        rs = run.rounds
        out(f"  [{m}] throughput {m}/off: {_spread([r[m].rps / r['off'].rps for r in rs])}")
        out(f"  [{m}] CPU per request {m}/off (api + worker + consumers + their PostgreSQL"
            f" backends): {_spread([r[m].total_ms / r['off'].total_ms for r in rs])}")  # fmt: skip
        out(f"  [{m}] upkeep share of the CPU per request, %:"
            f" {_spread([share(r[m], m) for r in rs], '{:.2f}')}")  # fmt: skip
        out(f"  [{m}] the same, net of the paused consumer's idle cost, %:"
            f" {_spread([net_share(r, m) for r in rs], '{:.2f}')}")  # fmt: skip
        per_event = [r[m].upkeep_ms(MODES[m]) * r[m].requests / max(1, r[m].events) for r in rs]
        out(f"  [{m}] upkeep CPU per outbox event (consumer + its backends), ms:"
            f" {_spread(per_event)}")  # fmt: skip
        for name, key in (("consumer process", MODES[m]), ("its backends", f"{MODES[m]}-pg")):
            values = [r[m].per_request_ms(key) for r in rs]
            out(f"  [{m}] {name}, ms per request: {_spread(values)}")
    if "base" in ups:
        rs = run.rounds
        out(f"  on/base throughput: {_spread([r['on'].rps / r['base'].rps for r in rs])}")
        per = [r["on"].upkeep_ms("upkeep") / r["base"].upkeep_ms("upkeep-base") for r in rs]
        out(f"  on/base upkeep CPU per request: {_spread(per)}")
    keys = sorted({k for r in run.rounds for w in r.values() for k in w.cpu})
    for m in run.modes:
        parts = ", ".join(
            f"{k} {statistics.median(r[m].per_request_ms(k) for r in run.rounds):.3f}" for k in keys
        )
        out(f"  CPU ms per request by process, {m} windows (medians): {parts}")
    if run.catchups:
        out(f"  catch-up before an upkeep window (not measured): median"
            f" {statistics.median(run.catchups):.1f} s; failed requests {run.errors}")  # fmt: skip
