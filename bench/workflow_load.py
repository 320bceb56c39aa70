"""The load of `bench.workflow`: its two operations, closed-loop clients and one measured run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load_clients import LoadClient, make_client
from bench.metrics import machine_cpu, percentile_ms, postgres_cpu, proc_cpu
from bench.procs import Child
from bench.report import fail_on_errors
from bench.tenant import bearer_headers, progress_variables

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

MakeRequest = Callable[[int, int], tuple[bytes, dict[str, str]]]
"""(client number, its request number) -> (body, headers) of the request to send."""


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
    redis_cpu: float | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile_ms(self.latencies, q)

    def per_request_ms(self, cpu: float | None) -> float | None:
        return None if cpu is None or not self.ok else cpu / self.ok * 1000

    @property
    def client_core(self) -> float:
        """The load generator's CPU over the run, as a share of one core (it is one process:
        near 1.0, it and not the app limited the throughput)."""
        return self.client_cpu / self.seconds if self.seconds else 0.0

    @property
    def server_core(self) -> float | None:
        """The server's CPU over the run, as a share of one core (one uvicorn process: near
        1.0, its own core limited the throughput)."""
        if self.server_cpu is None or not self.seconds:
            return None
        return self.server_cpu / self.seconds


def _total(values: list[float | None]) -> float | None:
    return None if None in values else sum(v for v in values if v is not None)


def merged(runs: list[Run]) -> Run:
    """The rounds of one operation on one app as a single run (sums; busy time-weighted)."""
    out = Run(runs[0].app, runs[0].op)
    for r in runs:
        out.seconds += r.seconds
        out.latencies += r.latencies
        out.errors += r.errors
        out.first_error = out.first_error or r.first_error
        out.client_cpu += r.client_cpu
    out.server_cpu = _total([r.server_cpu for r in runs])
    out.pg_cpu = _total([r.pg_cpu for r in runs])
    busy = [(r.machine_busy, r.seconds) for r in runs if r.machine_busy is not None]
    if len(busy) == len(runs) and out.seconds:
        out.machine_busy = sum(b * s for b, s in busy) / out.seconds
    return out


async def drive(
    client: LoadClient,
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
            error = await client.post(body, headers)
            if error is not None:
                run.errors += 1
                run.first_error = run.first_error or error
            else:
                run.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(w) for w in range(concurrency)))
    run.seconds = time.perf_counter() - started


async def measure(
    server: Child,
    op: str,
    make: MakeRequest,
    *,
    concurrency: int,
    seconds: float | None,
    requests: int | None,
    warmup: float,
    database: str,
    redis_pid: int | None = None,
    client_kind: str = "aiohttp",
) -> Run:
    """Warm up, then measure one operation on one server, with CPU accounting around it (and
    around the Redis server of `redis_pid`, when given); TooManyErrors when more than a small
    share of the requests of either failed. `client_kind` names the HTTP client of
    `bench.load_clients` the requests go through."""
    client = make_client(client_kind, server.url, concurrency)
    try:
        if warmup > 0:
            warm = Run(server.name, op)
            await drive(client, make, warm, concurrency=concurrency, seconds=warmup, requests=None)
            fail_on_errors(
                f"{op} on {server.name} (warm-up)", warm.ok, warm.errors, warm.first_error
            )
        run = Run(server.name, op)
        srv0, pg0, redis0 = proc_cpu(server.pid), postgres_cpu(database), proc_cpu(redis_pid)
        cli0, mach0 = time.process_time(), machine_cpu()
        await drive(client, make, run, concurrency=concurrency, seconds=seconds, requests=requests)
        srv1, pg1, redis1 = proc_cpu(server.pid), postgres_cpu(database), proc_cpu(redis_pid)
        cli1, mach1 = time.process_time(), machine_cpu()
    finally:
        await client.aclose()
    if redis0 is not None and redis1 is not None:
        run.redis_cpu = redis1 - redis0
    fail_on_errors(f"{op} on {server.name}", run.ok, run.errors, run.first_error)
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
    headers = {cid: bearer_headers(tok) for cid, tok in customers}

    def make(worker: int, seq: int) -> tuple[bytes, dict[str, str]]:
        cid, _ = mine[worker][seq % len(mine[worker])]
        return body, headers[cid]

    return make


def update_requests(customers: list[tuple[str, str]], concurrency: int) -> MakeRequest:
    """PROGRESS on each worker's customers' IN_PROGRESS task, a new percentage every time."""
    mine = _assign(customers, concurrency)
    headers = {cid: bearer_headers(tok) for cid, tok in customers}
    percent = dict.fromkeys(headers, 0)

    def make(worker: int, seq: int) -> tuple[bytes, dict[str, str]]:
        cid, _ = mine[worker][seq % len(mine[worker])]
        percent[cid] = percent[cid] % 99 + 1
        payload = {
            "query": UPDATE_TASK,
            "operationName": "Progress",
            "variables": progress_variables(cid, percent[cid]),
        }
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


async def check_same_shape(servers: list[Child], make: MakeRequest, op: str) -> str:
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
