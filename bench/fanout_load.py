"""The load of `bench.fanout`: who subscribes to what, and the open-loop `updateTask` stream."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from bench.fanout_clients import Spec
from bench.tenant import Seeded, bearer_headers, post_graphql, progress_variables

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

GIVE_UP_SECONDS = 20.0


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
    GIVE_UP_SECONDS of its scheduled time is skipped (the api is far behind), which keeps
    a round bounded in time. Latency is measured from the scheduled time.
    """

    def __init__(
        self, base_url: str, customers: list[tuple[str, str]], in_flight: int = 32
    ) -> None:
        import httpx  # here, not at import: fan-out client processes import this module too

        self.customers = customers
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=30.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        )
        self.gate = asyncio.Semaphore(in_flight)
        self.sent = [0] * len(customers)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def one(self, customer: int, scheduled: float, run: Driven) -> None:
        cid, token = self.customers[customer]
        async with self.gate:
            if time.perf_counter() - scheduled > GIVE_UP_SECONDS:
                run.skipped += 1
                return
            self.sent[customer] += 1
            variables = progress_variables(cid, self.sent[customer] % 99 + 1)
            body = json.dumps({"query": UPDATE_TASK, "variables": variables}).encode()
            error = await post_graphql(self.client, body, bearer_headers(token))
        if error is not None:
            run.errors += 1
            run.first_error = run.first_error or error
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
