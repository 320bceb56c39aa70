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
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
PROGRESS_TASK = "verify_email"
TARGET_QUERY_RATIO = 0.6
T = TypeVar("T")

WORKFLOW_QUERY = """
query FullWorkflow {
  workflow {
    id status points paused remindersEnabled startedAt completedAt lastActivityAt version
    progress estimatedMinutesRemaining
    badges { ...BadgeFields }
    currentStage { ...StageFields }
    stages {
      ...StageFields
      tasks {
        id key title description stageKey position points estimatedMinutes required dependsOn
        status progress failureReason attempts startedAt completedAt updatedAt
        helpResources { title url kind }
        successCriterion { event count }
      }
    }
  }
}
fragment BadgeFields on Badge { key name description icon stageKey awardedAt }
fragment StageFields on Stage {
  id key name description position status unlockedAt completedAt progress
  unlockConditions { previousStagesComplete minPoints daysSinceSignup tasksCompleted }
  reward { points badge { ...BadgeFields } }
}
"""

UPDATE_TASK = """
mutation Progress($input: UpdateTaskInput!) {
  updateTask(input: $input) {
    task { id key status progress startedAt updatedAt }
    workflow { id status points version lastActivityAt progress estimatedMinutesRemaining }
    unlockedTasks { id key status }
    unlockedStages { id key status }
    completedStages { id key status }
    pointsAwarded
    badgesAwarded { key name }
    celebrations { kind title message }
    workflowCompleted
  }
}
"""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as uvicorn does); SIGTERM, like Ctrl-C, becomes KeyboardInterrupt."""
    try:
        from uvloop import run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        run = asyncio.run  # type: ignore[assignment]

    async def guarded() -> T:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:  # cleaning up: finish it
            return await coro
        task, loop, hit = asyncio.current_task(), asyncio.get_running_loop(), []
        assert task is not None

        def stop() -> None:
            hit.append(True)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await coro
        except asyncio.CancelledError:
            if hit:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    return run(guarded())


# --- database -------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps any ?host= socket parameter)."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def create_database(server_url: str, name: str) -> tuple[str, str]:
    """Create database `name` on the server; return its URL and the server version."""
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        version = await conn.fetchval("SHOW server_version")
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name), str(version)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
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
    """The bench's tenant: an admin token and each customer's id and CUSTOMER token."""

    admin_token: str
    customers: list[tuple[str, str]]


async def seed(url: str, secret: str, customers: int) -> Seeded:
    """Migrate; create an org with the default template and customers whose first task runs."""
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
        slug = f"bench-{uuid.uuid4().hex[:8]}"
        async with transaction():
            org, admin = await create_organization(
                name="Bench", slug=slug, admin_email=f"admin@{slug}.test", admin_name="Admin"
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
        return Seeded(admin_token=token(admin.email, org.id, Role.ADMIN), customers=made)
    finally:
        await close_db()


# --- processes and CPU accounting -----------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int | str) -> float | None:
    """User+system CPU seconds of a process, from /proc (None when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_cpu(database: str) -> dict[str, float]:
    """CPU seconds of each local PostgreSQL backend serving `database` (empty when remote)."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        cpu = _proc_cpu(entry.name) if f" {database} " in title else None
        if cpu is not None:
            out[entry.name] = cpu
    return out


def _machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(v) for v in first[1:9]]
    idle = ticks[3] + ticks[4]
    total = sum(ticks)
    return (total - idle) / _TICK, total / _TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One uvicorn process, its log file, readiness and shutdown."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str]) -> None:
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the process
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops us in order
        )

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def wait_ready(self, within: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {within:.0f} s:\n{self.tail()}")

    def cpu(self) -> float | None:
        return _proc_cpu(self.proc.pid) if self.proc else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def liftoff_argv(port: int) -> list[str]:
    """`liftoff serve` (its log level comes from LIFTOFF_LOG_LEVEL in the environment)."""
    script = Path(sys.executable).parent / "liftoff"
    head = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import app.cli as c; c.main()"]
    )
    return [*head, "serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)]


def bare_argv(port: int, log_level: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]


# --- load -----------------------------------------------------------------------------------

MakeRequest = Callable[[int, int], tuple[bytes, dict[str, str]]]


@dataclass
class Run:
    """One measured run of one operation against one app."""

    app: str
    op: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    server_cpu: float | None = None
    pg_cpu: float | None = None
    client_cpu: float = 0.0
    machine_busy: float | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def per_request_ms(self, cpu: float | None) -> float | None:
        return None if cpu is None or not self.ok else cpu / self.ok * 1000


def merged(runs: list[Run]) -> Run:
    """The rounds of one operation on one app as a single run (sums; busy time-weighted)."""
    out = Run(runs[0].app, runs[0].op)
    for r in runs:
        out.seconds += r.seconds
        out.latencies += r.latencies
        out.errors += r.errors
        out.first_error = out.first_error or r.first_error
        out.client_cpu += r.client_cpu
    for name in ("server_cpu", "pg_cpu"):
        values = [getattr(r, name) for r in runs]
        setattr(out, name, None if None in values else sum(values))
    if all(r.machine_busy is not None for r in runs) and out.seconds:
        out.machine_busy = sum(r.machine_busy * r.seconds for r in runs) / out.seconds  # type: ignore[operator]
    return out


async def drive(
    client: httpx.AsyncClient,
    make: MakeRequest,
    run: Run,
    *,
    concurrency: int,
    seconds: float | None,
    requests: int | None,
) -> None:
    """`concurrency` clients, each sending its next request as soon as the last one answered."""
    deadline = time.perf_counter() + (seconds or 0.0)
    issued = 0

    async def client_loop(worker: int) -> None:
        nonlocal issued
        seq = 0
        while True:
            if requests is not None:
                if issued >= requests:
                    return
                issued += 1
            elif time.perf_counter() >= deadline:
                return
            body, headers = make(worker, seq)
            seq += 1
            started = time.perf_counter()
            try:
                response = await client.post("/graphql", content=body, headers=headers)
                content = response.content
                failed = response.status_code != 200 or b'"errors"' in content
                detail = f"HTTP {response.status_code}: {content[:300]!r}"
            except httpx.HTTPError as exc:
                failed, detail = True, f"{type(exc).__name__}: {exc}"
            if failed:
                run.errors += 1
                run.first_error = run.first_error or detail
            else:
                run.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(w) for w in range(concurrency)))
    run.seconds = time.perf_counter() - started


async def measure(
    server: Server,
    op: str,
    make: MakeRequest,
    *,
    concurrency: int,
    seconds: float | None,
    requests: int | None,
    warmup: float,
    database: str,
) -> Run:
    """Warm up, then measure one operation on one server, with CPU accounting around it."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60.0) as client:
        if warmup > 0:
            await drive(
                client, make, Run(server.name, op), concurrency=concurrency, seconds=warmup,
                requests=None,
            )  # fmt: skip
        run = Run(server.name, op)
        srv0, pg0 = server.cpu(), _postgres_cpu(database)
        cli0, mach0 = time.process_time(), _machine_cpu()
        await drive(client, make, run, concurrency=concurrency, seconds=seconds, requests=requests)
        srv1, pg1 = server.cpu(), _postgres_cpu(database)
        cli1, mach1 = time.process_time(), _machine_cpu()
    if srv0 is not None and srv1 is not None:
        run.server_cpu = srv1 - srv0
    if pg1:
        run.pg_cpu = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
    run.client_cpu = cli1 - cli0
    if mach0 and mach1 and mach1[1] > mach0[1]:
        run.machine_busy = (mach1[0] - mach0[0]) / (mach1[1] - mach0[1])
    return run


def query_requests(customers: list[tuple[str, str]], concurrency: int) -> MakeRequest:
    """The full workflow query as each worker's customers, in turn."""
    body = json.dumps({"query": WORKFLOW_QUERY, "operationName": "FullWorkflow"}).encode()
    mine = _assign(customers, concurrency)
    headers = {
        cid: {"authorization": f"Bearer {tok}", "content-type": "application/json"}
        for cid, tok in customers
    }

    def make(worker: int, seq: int) -> tuple[bytes, dict[str, str]]:
        cid, _ = mine[worker][seq % len(mine[worker])]
        return body, headers[cid]

    return make


def update_requests(customers: list[tuple[str, str]], concurrency: int) -> MakeRequest:
    """PROGRESS on each worker's customers' IN_PROGRESS task, a new percentage every time."""
    mine = _assign(customers, concurrency)
    headers = {
        cid: {"authorization": f"Bearer {tok}", "content-type": "application/json"}
        for cid, tok in customers
    }
    percent = dict.fromkeys(headers, 0)

    def make(worker: int, seq: int) -> tuple[bytes, dict[str, str]]:
        cid, _ = mine[worker][seq % len(mine[worker])]
        percent[cid] = percent[cid] % 99 + 1
        variables = {
            "input": {
                "action": "PROGRESS",
                "taskKey": PROGRESS_TASK,
                "customerId": cid,
                "progress": percent[cid],
            }
        }
        payload = {"query": UPDATE_TASK, "operationName": "Progress", "variables": variables}
        return json.dumps(payload).encode(), headers[cid]

    return make


def _assign(customers: list[tuple[str, str]], concurrency: int) -> list[list[tuple[str, str]]]:
    """Disjoint customers per worker when there are enough (no two writers on one workflow)."""
    if len(customers) >= concurrency:
        return [customers[w::concurrency] for w in range(concurrency)]
    return [[customers[w % len(customers)]] for w in range(concurrency)]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


async def check_same_shape(servers: list[Server], make: MakeRequest, op: str) -> str:
    """One request to each app: no errors, and the same response shape; a one-line summary."""
    shapes, sizes = [], []
    async with httpx.AsyncClient(timeout=30.0) as client:
        for server in servers:
            body, headers = make(0, 0)
            response = await client.post(f"{server.url}/graphql", content=body, headers=headers)
            data = response.json()
            if response.status_code != 200 or data.get("errors"):
                raise RuntimeError(f"{server.name} {op}: HTTP {response.status_code} {data}")
            shapes.append(_shape(data))
            sizes.append(len(response.content))
    same = "same shape" if all(s == shapes[0] for s in shapes) else "SHAPES DIFFER"
    sized = ", ".join(f"{s.name} {n} B" for s, n in zip(servers, sizes, strict=True))
    return f"{op}: {same} ({sized})"


# --- report ---------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def report(rounds: list[Run], header: list[str], notes: list[str]) -> None:
    grouped: dict[tuple[str, str], list[Run]] = {}
    for r in rounds:
        grouped.setdefault((r.op, r.app), []).append(r)
    runs = [merged(group) for group in grouped.values()]
    print()
    for line in header:
        print(line)
    for line in notes:
        print(line)
    print()
    cols = (
        f"{'operation':<16}{'app':<9}{'ok':>8}{'errors':>8}{'req/s':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'srv CPU':>9}{'pg CPU':>8}{'cli CPU':>9}{'busy':>7}"
    )
    print(cols)
    print(f"{'':<16}{'':<9}{'':>8}{'':>8}{'':>9}{'':>9}{'':>9}{'ms/req':>9}{'ms/req':>8}"
          f"{'ms/req':>9}{'%':>7}")  # fmt: skip
    print("-" * len(cols))
    for r in runs:
        print(
            f"{r.op:<16}{r.app:<9}{r.ok:>8}{r.errors:>8}{r.rps:>9.1f}{r.pct(0.50):>9.1f}"
            f"{r.pct(0.99):>9.1f}{_f(r.per_request_ms(r.server_cpu)):>9}"
            f"{_f(r.per_request_ms(r.pg_cpu)):>8}{_f(r.per_request_ms(r.client_cpu)):>9}"
            f"{_f(None if r.machine_busy is None else r.machine_busy * 100, '{:.0f}'):>7}"
        )
    print()
    print("Liftoff / bare:")
    by = {(r.op, r.app): r for r in runs}
    for op in dict.fromkeys(r.op for r in runs):
        lift, bare = by.get((op, "liftoff")), by.get((op, "bare"))
        if not lift or not bare or not bare.rps:
            continue
        lc, bc = lift.per_request_ms(lift.server_cpu), bare.per_request_ms(bare.server_cpu)
        cpu = f"{lc / bc:.2f}x" if lc and bc else "-"
        target = (
            f"   (target for this op: >= {TARGET_QUERY_RATIO})" if op == "workflow query" else ""
        )
        p50, p99 = lift.pct(0.5) / bare.pct(0.5), lift.pct(0.99) / bare.pct(0.99)
        print(
            f"  {op:<16} throughput {lift.rps / bare.rps:.2f}   p50 {p50:.2f}x   p99 {p99:.2f}x"
            f"   server CPU/req {cpu}{target}"
        )
        per_round = [
            lr.rps / br.rps
            for lr, br in zip(grouped[(op, "liftoff")], grouped[(op, "bare")], strict=True)
            if br.rps
        ]
        if len(per_round) > 1:
            spread = ", ".join(f"{x:.2f}" for x in per_round)
            print(f"  {'':<16} throughput ratio per round: {spread}")
    for r in runs:
        if r.first_error:
            print(f"  first error of {r.op} on {r.app}: {r.first_error}")


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
        default=1,
        help="Repeat the bare/Liftoff pair this many times, alternating which goes first; "
        "the table sums the rounds (1).",
    )
    p.add_argument("--customers", type=int, default=64, help="Seeded customers (64).")
    p.add_argument(
        "--only", choices=["query", "update"], help="Run one operation only (default: both)."
    )
    p.add_argument(
        "--log-level", default="warning", help="uvicorn log level of both servers (warning)."
    )
    p.add_argument(
        "--inline-worker",
        choices=["auto", "on", "off"],
        default="auto",
        help="Liftoff's in-process outbox worker: auto = as the server decides (on without "
        "REDIS_URL), or force LIFTOFF_INLINE_WORKER on/off (auto).",
    )
    return p.parse_args(argv)


async def _benchmark(
    args: argparse.Namespace,
    servers: list[Server],
    seeded: Seeded,
    database: str,
    notes: list[str],
) -> list[Run]:
    await asyncio.gather(*(s.wait_ready() for s in servers))
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
                label = f" (round {n + 1}/{args.rounds})" if args.rounds > 1 else ""
                print(f"... {op} on {server.name}{label}", file=sys.stderr, flush=True)
                runs.append(
                    await measure(
                        server,
                        op,
                        make,
                        concurrency=args.concurrency,
                        seconds=None if args.requests else args.seconds,
                        requests=args.requests,
                        warmup=args.warmup,
                        database=database,
                    )
                )
    return runs


def _on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    server_url = args.database_url
    db_name = f"liftoff_bench_{uuid.uuid4().hex[:10]}"
    attempted = created = False
    servers: list[Server] = []
    try:
        print(f"... creating database {db_name}", file=sys.stderr, flush=True)
        attempted = True  # from here on the database may exist: always try to drop it
        db_url, pg_version = _run(create_database(server_url, db_name))
        created = True
        secret = uuid.uuid4().hex + uuid.uuid4().hex
        print(f"... migrating and seeding {args.customers} customers", file=sys.stderr, flush=True)
        seeded = _run(seed(db_url, secret, args.customers))

        env = {k: v for k, v in os.environ.items() if k != "LIFTOFF_DATABASE_URL"}
        env.update(
            DATABASE_URL=db_url,
            LIFTOFF_SECRET_KEY=secret,
            LIFTOFF_LOG_LEVEL=args.log_level.upper(),
            PYTHONUNBUFFERED="1",
        )
        if args.inline_worker != "auto":
            env["LIFTOFF_INLINE_WORKER"] = "true" if args.inline_worker == "on" else "false"
        inline = env.get("LIFTOFF_INLINE_WORKER")
        worker = (
            inline.lower() in ("1", "true", "yes", "on")
            if inline
            else not (env.get("REDIS_URL") or env.get("LIFTOFF_REDIS_URL"))
        )
        lift_port, bare_port = free_port(), free_port()
        servers = [
            Server("bare", bare_argv(bare_port, args.log_level), bare_port, env),
            Server("liftoff", liftoff_argv(lift_port), lift_port, env),
        ]
        for s in servers:
            s.start()
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        amount = f"{args.requests} requests" if args.requests else f"{args.seconds:g} s"
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        header = [
            f"Liftoff workflow benchmark: concurrency {args.concurrency}, {amount} per run after "
            f"{args.warmup:g} s warm-up, {args.rounds} round(s), {args.customers} customers, "
            f"PostgreSQL {pg_version} ({with_database(server_url, db_name).split('@')[-1]})",
            f"CPUs: os.cpu_count()={os.cpu_count()}, usable={usable}. CAVEAT: the load generator "
            "(httpx, this process), both servers and PostgreSQL share this machine;",
            "  'busy' is the whole machine's CPU use during a run, so near 100 % means the "
            "figures are CPU-bound on the machine, not only on the server.",
            "Each app is one uvicorn process; Liftoff = `liftoff serve --no-migrate` "
            "(DB pool max from LIFTOFF_DB_POOL_MAX, default 10); bare = bench.bare_app.",
            f"Liftoff inline outbox worker: {'on' if worker else 'off'}; "
            f"REDIS_URL {'set' if env.get('REDIS_URL') else 'unset'}; "
            f"load average at start: {load}.",
        ]
        notes: list[str] = []
        runs = _run(_benchmark(args, servers, seeded, db_name, notes))
        report(runs, header, notes)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in servers:
            s.stop()
        if attempted:
            try:
                _run(drop_database(server_url, db_name))
            except Exception as exc:
                if created:
                    print(f"could not drop database {db_name}: {exc}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
