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
import contextlib
import json
import math
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
PROTOCOL = "graphql-transport-ws"
PROGRESS_TASK = "verify_email"
T = TypeVar("T")

TARGETS = (
    "5,000 concurrent subscribers on one api process",
    "at 1,000 subscribers: commit-to-receive p99 < 100 ms",
    "at 1,000 subscribers: >= 10,000 deliveries/s",
)

# What a product frontend draws from a progress event (no refetch), and a dashboard feed line.
WORKFLOW_SUBSCRIPTION = """subscription Progress($customerId: ID) {
  workflowProgress(customerId: $customerId) {
    id sequence type customerId occurredAt replayed taskKey stageKey status
    pointsAwarded workflowStatus progress points estimatedMinutesRemaining currentStageKey
  }
}"""
ACTIVITY_SUBSCRIPTION = """subscription Feed {
  activity { id sequence type customerId actor occurredAt summary }
}"""
UPDATE_TASK = """mutation Progress($input: UpdateTaskInput!) {
  updateTask(input: $input) {
    task { id key status progress updatedAt }
    workflow { id status points progress estimatedMinutesRemaining }
  }
}"""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise this process's open-files limit as far as allowed; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- database -------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps any ?host= socket parameter)."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def create_database(server_url: str, name: str) -> tuple[str, str]:
    """Create database `name`; return its URL and the server version."""
    import asyncpg

    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        version = await conn.fetchval("SHOW server_version")
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name), str(version)


async def drop_database(server_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(with_database(server_url, "postgres"), timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@dataclass
class Seeded:
    """The bench's tenant: a CSM token for dashboards, each customer's id and CUSTOMER token."""

    csm_token: str
    customers: list[tuple[str, str]]


async def seed(url: str, secret: str, customers: int) -> Seeded:
    """Migrate; an org with the default template and customers whose first task is running."""
    from app.accounts.models import Role
    from app.accounts.service import create_organization
    from app.accounts.tokens import mint_token
    from app.accounts.viewer import Viewer
    from app.customers.service import NewCustomer, create_customer
    from app.db import close_db, init_db, migrate, transaction
    from app.onboarding import service as onboarding
    from app.onboarding.states import TaskAction
    from app.onboarding.templates import bundled_default, install_template
    from app.settings import Settings

    await migrate(url)
    await close_db()
    settings = Settings(secret_key=secret)

    def token(subject: str, org: uuid.UUID, role: Role, customer: uuid.UUID | None = None) -> str:
        return mint_token(
            secret=secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            subject=subject,
            organization_id=org,
            role=role,
            customer_id=customer,
            ttl=timedelta(hours=6),
        )

    await init_db(url)
    try:
        slug = f"fanout-{uuid.uuid4().hex[:8]}"
        async with transaction():
            org, admin = await create_organization(
                name="Fan-out bench", slug=slug, admin_email=f"admin@{slug}.test", admin_name="A"
            )
            admin_viewer = Viewer(subject=admin.email, organization_id=org.id, role=Role.ADMIN)
            await install_template(
                admin_viewer, definition=bundled_default(), make_default=True, created_by="bench"
            )
        made: list[tuple[str, str]] = []
        for i in range(customers):
            async with transaction():
                row = await create_customer(
                    admin_viewer,
                    NewCustomer(email=f"c{i}@{slug}.test", name=f"Customer {i}", company="Bench"),
                )
                await onboarding.update_task(
                    admin_viewer,
                    action=TaskAction.START,
                    task_key=PROGRESS_TASK,
                    customer_id=str(row.id),
                )
            made.append((str(row.id), token(row.email, org.id, Role.CUSTOMER, row.id)))
        return Seeded(csm_token=token(f"csm@{slug}.test", org.id, Role.CSM), customers=made)
    finally:
        await close_db()


async def published_times(url: str, since: float) -> dict[int, tuple[float, float]]:
    """{event id: (created_at, published_at)} as epoch seconds, for events created since `since`."""
    import asyncpg

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


# --- processes and CPU accounting -----------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str | None, *, system_only: bool = False) -> float:
    """User+system (or only system) CPU seconds of a process, from /proc (0 when unreadable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / _TICK


def postgres_cpu() -> float:
    """CPU seconds of every local process named `postgres` (0 for a remote server)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += proc_cpu(entry.name)
            except OSError:
                continue
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def rss_kb(pid: int | None) -> int:
    """Resident memory of a process in KiB (VmRSS), 0 when unreadable."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def liftoff_argv(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "liftoff"
    head = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import app.cli as c; c.main()"]
    )
    return [*head, *args]


class Child:
    """One `liftoff` subprocess in its own session, logging to a temp file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the process
            prefix=f"bench-fanout-{name}-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Child:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops us in order
        )
        return self

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    async def wait_for_log(self, text: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check()
            if text in await asyncio.to_thread(Path(self.log.name).read_text, errors="replace"):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name}: no {text!r} after {within:.0f} s:\n{self.tail()}")

    async def wait_http(self, url: str, within: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                self.check()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {within:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if not self.log.closed:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)


# --- the client side: subscriber processes ----------------------------------------------------

Spec = tuple[str, str, dict[str, Any] | None]
"""(bearer token, subscription document, variables) of one subscriber."""


class Subscribers:
    """Runs inside one client process: its share of the websocket subscribers."""

    def __init__(self, url: str, specs: list[Spec], compression: bool, concurrency: int) -> None:
        self.url, self.specs = url, specs
        self.compression = compression
        self.counts = [0] * len(specs)
        self.ids = array("q")
        self.occurred = array("d")
        self.received = array("d")
        self.connected = 0
        self.failed = 0
        self.dropped = 0
        self.errors = 0
        self.first_error: str | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.gate = asyncio.Semaphore(concurrency)

    def _error(self, text: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or text[:500]

    async def main(self, conn: Connection) -> None:
        self.tasks = [
            asyncio.create_task(self.subscriber(i, spec, self.gate))
            for i, spec in enumerate(self.specs)
        ]
        try:
            while True:
                try:
                    command, *args = await asyncio.to_thread(conn.recv)
                except (EOFError, OSError):
                    return  # the bench is gone
                if command == "close":
                    return
                conn.send(self.command(command, args))
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def command(self, command: str, args: list[Any]) -> Any:
        if command == "status":
            silent = [i for i, c in enumerate(self.counts) if c == 0]
            return {
                "connected": self.connected,
                "failed": self.failed,
                "dropped": self.dropped,
                "errors": self.errors,
                "first_error": self.first_error,
                "received": len(self.received),
                "silent": silent,
            }
        if command == "reset":
            self.ids = array("q")
            self.occurred = array("d")
            self.received = array("d")
            return True
        if command == "collect":
            return self.ids, self.occurred, self.received
        raise ValueError(command)

    async def subscriber(self, index: int, spec: Spec, gate: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        token, query, variables = spec
        loads, fromiso, now = json.loads, datetime.fromisoformat, time.time
        up = False
        try:
            async with gate:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol(PROTOCOL)],
                    compression="deflate" if self.compression else None,
                    proxy=None,
                    ping_interval=None,  # the server pings; the library answers
                    open_timeout=120,
                    close_timeout=1,
                )
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                await ws.send(json.dumps(init))
                ack = loads(await asyncio.wait_for(ws.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
            payload = {"query": query, "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            up = True
            self.connected += 1
            counts, ids, occurred, received = self.counts, self.ids, self.occurred, self.received
            async for raw in ws:
                at = now()
                msg = loads(raw)
                kind = msg.get("type")
                if kind == "next":
                    data = msg["payload"].get("data")
                    if not data:
                        self._error(str(msg)[:500])
                        continue
                    for event in data.values():
                        if self.occurred is not occurred:  # reset by the bench
                            ids, occurred, received = self.ids, self.occurred, self.received
                        ids.append(int(event["id"]))
                        occurred.append(fromiso(event["occurredAt"]).timestamp())
                        received.append(at)
                        counts[index] += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    self._error(f"{kind}: {str(msg)[:400]}")
                    break
            self.dropped += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if up:
                self.dropped += 1
            else:
                self.failed += 1
            self._error(f"{type(exc).__name__}: {exc}")


def client_process(
    conn: Connection,
    url: str,
    specs: list[Spec],
    compression: bool,
    concurrency: int,
) -> None:
    """Entry point of a client process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us
    raise_fd_limit()
    _run(Subscribers(url, specs, compression, concurrency).main(conn))


class ClientPool:
    """The client processes of one round, and the bench's side of their pipes."""

    def __init__(self) -> None:
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        self.specs: list[list[Spec]] = []

    def start(
        self,
        url: str,
        specs: list[Spec],
        procs: int,
        *,
        compression: bool,
        concurrency: int,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        for j in range(procs):
            mine = specs[j::procs]
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=client_process,
                args=(theirs, url, mine, compression, concurrency),
                name=f"fanout-client-{j}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes.append(ours)
            self.specs.append(mine)

    async def ask(self, command: str, *args: Any) -> list[Any]:
        def one(pipe: Connection) -> Any:
            pipe.send((command, *args))
            return pipe.recv()

        for proc in self.procs:
            if not proc.is_alive():
                raise RuntimeError(f"{proc.name} died (exit code {proc.exitcode})")
        return list(await asyncio.gather(*(asyncio.to_thread(one, p) for p in self.pipes)))

    def global_index(self, proc: int, local: int) -> int:
        return proc + len(self.procs) * local

    def cpu(self) -> list[float]:
        return [proc_cpu(p.pid) for p in self.procs]

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close",))
        deadline = time.monotonic() + 5
        for proc in self.procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()
        self.procs, self.pipes, self.specs = [], [], []


# --- the load -------------------------------------------------------------------------------


@dataclass
class Mix:
    """Who subscribes to what, for N subscribers."""

    specs: list[Spec]
    customer_of: list[int | None]  # per subscriber: the customer index, None for a dashboard
    customers: int
    lost: set[int] = field(default_factory=set)  # subscribers that never received an event

    @property
    def dashboards(self) -> int:
        return sum(1 for owner in self.customer_of if owner is None)

    def expected(self, events_per_customer: list[int]) -> int:
        """Deliveries owed to the live subscribers: an event reaches its customer's subscribers
        and every dashboard."""
        everything = sum(events_per_customer)
        return sum(
            everything if owner is None else events_per_customer[owner]
            for i, owner in enumerate(self.customer_of)
            if i not in self.lost
        )


def make_mix(n: int, seeded: Seeded, activity_share: float) -> Mix:
    """Dashboards on `activity` (CSM), the rest on `workflowProgress` spread over the customers."""
    dashboards = round(n * activity_share)
    customers = len(seeded.customers)
    owners: list[int | None] = [None] * dashboards + [m % customers for m in range(n - dashboards)]
    random.Random(n).shuffle(owners)
    specs: list[Spec] = []
    for owner in owners:
        if owner is None:
            specs.append((seeded.csm_token, ACTIVITY_SUBSCRIPTION, None))
        else:
            cid, token = seeded.customers[owner]
            specs.append((token, WORKFLOW_SUBSCRIPTION, {"customerId": cid}))
    return Mix(specs, owners, customers)


@dataclass
class Driven:
    """The mutations of one drive."""

    seconds: float = 0.0
    ok_per_customer: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    skipped: int = 0
    first_error: str | None = None


class Driver:
    """updateTask PROGRESS over HTTP, as each customer, at a fixed rate (open loop).

    At most `in_flight` requests are outstanding; a mutation that could not start within
    `give_up` seconds of its scheduled time is skipped (the api is far behind), which keeps
    a round bounded in time. Latency is measured from the scheduled time.
    """

    def __init__(
        self, base_url: str, customers: list[tuple[str, str]], in_flight: int = 32
    ) -> None:
        import httpx

        self.customers = customers
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=30.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        )
        self.gate = asyncio.Semaphore(in_flight)
        self.give_up = 20.0
        self.sent = [0] * len(customers)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def one(self, customer: int, scheduled: float, run: Driven) -> None:
        import httpx

        cid, token = self.customers[customer]
        async with self.gate:
            if time.perf_counter() - scheduled > self.give_up:
                run.skipped += 1
                return
            self.sent[customer] += 1
            variables = {
                "input": {
                    "action": "PROGRESS",
                    "taskKey": PROGRESS_TASK,
                    "customerId": cid,
                    "progress": self.sent[customer] % 99 + 1,
                }
            }
            body = json.dumps({"query": UPDATE_TASK, "variables": variables}).encode()
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            try:
                response = await self.client.post("/graphql", content=body, headers=headers)
                failed = response.status_code != 200 or b'"errors"' in response.content
                detail = f"HTTP {response.status_code}: {response.content[:300]!r}"
            except httpx.HTTPError as exc:
                failed, detail = True, f"{type(exc).__name__}: {exc}"
        if failed:
            run.errors += 1
            run.first_error = run.first_error or detail
        else:
            run.latencies.append(time.perf_counter() - scheduled)
            run.ok_per_customer[customer] += 1

    async def drive(self, rate: float, seconds: float, only: list[int] | None = None) -> Driven:
        """Send round(rate*seconds) mutations (or one per customer of `only`), evenly spaced."""
        run = Driven(ok_per_customer=[0] * len(self.customers))
        order = only if only is not None else list(range(len(self.customers)))
        total = len(order) if only is not None else max(1, round(rate * seconds))
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        try:
            for i in range(total):
                scheduled = start + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.one(order[i % len(order)], scheduled, run)))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        run.seconds = time.perf_counter() - start
        return run


# --- one round ------------------------------------------------------------------------------


@dataclass
class Round:
    """Figures for one N."""

    n: int
    dashboards: int
    per_customer: float
    client_procs: int
    rate: float
    connect_seconds: float = 0.0
    connect_failed: int = 0
    lost: int = 0
    prime_rounds: int = 0
    rss_base_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    events: int = 0
    expected: int = 0
    delivered: int = 0
    span: float = 0.0
    latencies: list[float] = field(default_factory=list)
    mutation_latencies: list[float] = field(default_factory=list)
    mutation_errors: int = 0
    mutation_skipped: int = 0
    relay: list[float] = field(default_factory=list)  # per event: occurredAt -> published_at
    from_publish: list[float] = field(default_factory=list)  # per delivery: published -> receive
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: list[float] = field(default_factory=list)
    machine_busy: float = math.nan
    api_cpu_seconds: float = 0.0
    api_sys_share: float = math.nan
    mutation_cpu: float = math.nan  # api CPU seconds per mutation, nobody subscribed
    dropped: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def kb_per_connection(self) -> float:
        return (self.rss_connected_kb - self.rss_base_kb) / self.n if self.n else math.nan

    @property
    def offered_per_second(self) -> float:
        """Deliveries per second the stream asks for: rate x subscribers reached per event."""
        return self.rate * (self.dashboards + self.per_customer)

    @property
    def fanout_us_per_delivery(self) -> float:
        """API CPU per delivery once the mutations' own share is taken out."""
        if not self.delivered or math.isnan(self.mutation_cpu):
            return math.nan
        fanout = self.api_cpu_seconds - self.events * self.mutation_cpu
        return fanout / self.delivered * 1e6

    @property
    def delivered_per_second(self) -> float:
        return self.delivered / self.span if self.span else math.nan

    def pct(self, q: float) -> float:
        """Commit-to-receive percentile in ms; deliveries that never came count as infinite."""
        return _pct(self.latencies + [math.inf] * (self.expected - self.delivered), q)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Setup:
    args: argparse.Namespace
    db_url: str
    seeded: Seeded
    env: dict[str, str]
    worker: Child
    valkey_pid: int | None
    cleanups: list[Callable[[], None]]


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
        before = proc_cpu(pid)
        await asyncio.sleep(0.5)
        if (proc_cpu(pid) - before) / 0.5 < busy_below:
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
        "api": proc_cpu(api.pid),
        "api_sys": proc_cpu(api.pid, system_only=True),
        "worker": proc_cpu(setup.worker.pid),
        "valkey": proc_cpu(setup.valkey_pid),
        "postgres": postgres_cpu(),
        "driver": time.process_time(),
        "clients": pool.cpu(),
        "machine": machine_cpu(),
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
    api = Child(
        f"api-{n}",
        liftoff_argv("serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)),
        setup.env,
    )
    pool = ClientPool()
    driver = Driver(f"http://127.0.0.1:{port}", setup.seeded.customers)
    setup.cleanups.extend([pool.stop, api.stop])
    try:
        api.start()
        await api.wait_http(f"http://127.0.0.1:{port}/healthz")
        warm = await driver.client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"authorization": f"Bearer {setup.seeded.csm_token}"},
        )
        warm.raise_for_status()
        # Calibration: the api's CPU per mutation while nobody is subscribed.
        cpu0 = proc_cpu(api.pid)
        calibration = await driver.drive(args.rate, 3.0)
        await wait_idle(api.pid, within=10)
        done = sum(calibration.ok_per_customer)
        result.mutation_cpu = (proc_cpu(api.pid) - cpu0) / done if done else math.nan
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


# --- report ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "lost"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def _table(title: str, head: list[str], rows: list[list[str]]) -> None:
    print()
    print(title)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print(_row(head, widths))
    for row in rows:
        print(_row(row, widths))


def _pair(values: list[float]) -> str:
    return f"{_ms(_pct(values, 0.5))}/{_ms(_pct(values, 0.99))}"


def print_report(rounds: list[Round], args: argparse.Namespace) -> None:
    _table(
        "Deliveries (latency: event occurredAt -> client receive, same clock; ms)",
        ["N", "dash", "subs/cust", "events", "offered/s", "delivered/s", "late", "p50", "p99",
         "max", "publish->recv p50/p99", "relay p50/p99", "mutation p50/p99"],
        [[
            str(r.n), str(r.dashboards), f"{r.per_customer:.1f}", str(r.events),
            f"{r.offered_per_second:,.0f}", f"{r.delivered_per_second:,.0f}",
            f"{(r.expected - r.delivered) / r.expected:.0%}" if r.expected else "-",
            _ms(r.pct(0.50)), _ms(r.pct(0.99)), _ms(r.pct(1.0)), _pair(r.from_publish),
            _pair(r.relay), _pair(r.mutation_latencies),
        ] for r in rounds],
    )  # fmt: skip
    _table(
        "Connections and memory of the api process (VmRSS)",
        ["N", "client procs", "connect s", "failed", "lost", "RSS base MB", "connected MB",
         "after stream MB", "KiB/conn"],
        [[
            str(r.n), str(r.client_procs), f"{r.connect_seconds:.1f}", str(r.connect_failed),
            str(r.lost), f"{r.rss_base_kb / 1024:.0f}", f"{r.rss_connected_kb / 1024:.0f}",
            f"{r.rss_after_kb / 1024:.0f}", f"{r.kb_per_connection:.0f}",
        ] for r in rounds],
    )  # fmt: skip
    _table(
        f"CPU during the stream and drain (% of one core; {os.cpu_count()} cores = "
        f"{100 * (os.cpu_count() or 1)}%)",
        ["N", "api", "of it kernel", "ms/mutation", "us/delivery", "worker", "postgres",
         "valkey", "clients", "driver", "others", "machine"],
        [[
            str(r.n), f"{r.cpu['api']:.0%}", f"{r.api_sys_share:.0%}",
            f"{r.mutation_cpu * 1000:.1f}", f"{r.fanout_us_per_delivery:.0f}",
            f"{r.cpu['worker']:.0%}", f"{r.cpu['postgres']:.0%}", f"{r.cpu['valkey']:.0%}",
            "+".join(f"{c:.0%}" for c in r.client_cpu), f"{r.cpu['driver']:.0%}",
            f"{r.cpu['others']:.0%}", f"{r.machine_busy * (os.cpu_count() or 1):.0%}",
        ] for r in rounds],
    )  # fmt: skip
    print()
    print("Reference targets (not verdicts):")
    for target in TARGETS:
        print(f"  - {target}")
    print()
    print("Notes:")
    for r in rounds:
        print(f"  N={r.n}: " + "; ".join(_notes(r, args)))
    print(
        "  offered/s: rate x subscribers an event reaches (its customer's and every dashboard);\n"
        "  delivered/s: deliveries received / time from stream start to the last receive; late:\n"
        "  deliveries owed for the committed events but not received by the end of the drain\n"
        "  (counted as infinite in p50/p99/max). publish->recv: outbox published_at -> receive\n"
        "  (Redis, api fan-out, client); relay: occurredAt -> published_at per event (api\n"
        "  insert-to-commit + worker). KiB/conn: (RSS after connecting and one event each -\n"
        "  RSS before) / N. ms/mutation: api CPU per updateTask,\n"
        "  measured first with nobody subscribed; us/delivery: (api CPU in the window -\n"
        "  mutations x ms/mutation) / deliveries, the fan-out cost of one delivery. others:\n"
        "  machine CPU not used by this bench's processes (other work on the machine; postgres\n"
        "  counts every local postgres process)."
    )


def _notes(r: Round, args: argparse.Namespace) -> list[str]:
    notes = []
    if r.cpu["api"] >= 0.85:
        notes.append(
            f"api process at {r.cpu['api']:.0%} of a core: its one event loop is the limit"
        )
    cores = os.cpu_count() or 1
    if r.machine_busy >= 0.9:
        notes.append(
            f"machine {r.machine_busy:.0%} busy: everything competes for {cores} cores"
            + (
                f", {r.cpu['others']:.0%} of a core by other processes"
                if r.cpu["others"] > 0.2
                else ""
            )
        )
    busiest = max(r.client_cpu, default=0.0)
    if busiest >= 0.8:
        notes.append(
            f"a client process at {busiest:.0%}: receive times are inflated (--client-procs)"
        )
    missing = r.expected - r.delivered
    if missing:
        notes.append(
            f"{missing:,} of {r.expected:,} deliveries not received {args.drain:g} s after "
            "the last mutation"
        )
    if r.expected and r.delivered_per_second < 0.9 * r.offered_per_second:
        notes.append(
            "delivered/s below offered/s: the api did not keep up, latency grows with "
            "the length of the stream"
        )
    if r.connect_failed or r.dropped:
        notes.append(f"{r.connect_failed} subscribers failed to connect, {r.dropped} dropped")
    if r.lost:
        notes.append(
            f"{r.lost} subscribers connected but never received an event (left out of "
            "the owed deliveries)"
        )
    if r.mutation_errors:
        notes.append(f"{r.mutation_errors} mutations failed")
    if r.mutation_skipped:
        notes.append(
            f"{r.mutation_skipped} mutations skipped: not started within 20 s of their "
            "time (the api was far behind)"
        )
    notes.extend(r.errors[:3])
    return notes or ["kept up with the offered load"]


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
    p.add_argument("--database-url", default=None, help="PostgreSQL server (default DATABASE_URL)")
    args = p.parse_args(argv)
    args.ns = [int(v) for v in args.subscribers.split(",") if v.strip()]
    if not args.ns or min(args.ns) < 1 or not 0 <= args.activity_share <= 1:
        p.error("--subscribers needs positive numbers, --activity-share a share in [0, 1]")
    return args


async def bench(
    args: argparse.Namespace, server_url: str, db_name: str, cleanups: list[Any]
) -> None:
    from tests.support.valkey import ValkeyProcess

    secret = secrets.token_urlsafe(32)
    db_url, pg_version = await create_database(server_url, db_name)
    print(f"database {db_name} on PostgreSQL {pg_version}; seeding {args.customers} customers ...")
    seeded = await seed(db_url, secret, args.customers)

    valkey = ValkeyProcess()
    cleanups.append(valkey.stop)
    await asyncio.to_thread(valkey.start)
    data_dir = tempfile.mkdtemp(prefix="bench-fanout-data-")
    cleanups.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": valkey.url,
        "LIFTOFF_SECRET_KEY": secret,
        "LIFTOFF_LOG_LEVEL": "WARNING",
        "LIFTOFF_INLINE_WORKER": "false",
        "LIFTOFF_DATA_DIR": data_dir,
    }
    worker = Child("worker", liftoff_argv("worker"), env)
    cleanups.append(worker.stop)
    worker.start()
    await worker.wait_for_log("Worker running")
    setup = Setup(args, db_url, seeded, env, worker, valkey.pid, cleanups)
    print(f"valkey on {valkey.url}; worker pid {worker.pid}; fd limit {raise_fd_limit()}; "
          f"{os.cpu_count()} CPUs; permessage-deflate "
          f"{'off' if args.no_compression else 'offered'}")  # fmt: skip
    print(f"stream: {args.rate:g} updateTask PROGRESS/s for {args.seconds:g} s over "
          f"{args.customers} customers; {args.activity_share:.0%} of subscribers on `activity` "
          "(CSM), the rest on `workflowProgress` of a customer")  # fmt: skip

    rounds: list[Round] = []
    for n in args.ns:
        print(f"N={n}: starting api, connecting subscribers ...", flush=True)
        r = await run_round(setup, n)
        rounds.append(r)
        print(f"N={n}: connected in {r.connect_seconds:.1f} s, {r.events} events, "
              f"{r.delivered:,}/{r.expected:,} deliveries, p99 {_ms(r.pct(0.99))} ms, "
              f"api CPU {r.cpu['api']:.0%}", flush=True)  # fmt: skip
    print_report(rounds, args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    server_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    db_name = f"liftoff_bench_{secrets.token_hex(4)}"
    cleanups: list[Callable[[], None]] = []

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    code = 0
    try:
        _run(bench(args, server_url, db_name, cleanups))
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"\nbench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:
                print(f"cleanup {cleanup!r} failed: {exc}", file=sys.stderr)
        try:
            asyncio.run(drop_database(server_url, db_name))
        except Exception as exc:
            print(f"could not drop database {db_name}: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
