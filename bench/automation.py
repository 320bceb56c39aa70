"""`python -m bench.automation`: the automation engine's throughput and email latency.

1. Throughput: outbox events per second through the automation consumer (the code a worker
   runs, `app.events.consumers.consume_batch` with `app.automation.engine.handle`) on one
   process, with 100 enabled rules matching every event's type (each evaluated; about 1 % of
   events fire one), against the same consumer with no enabled rule. Rounds alternate
   A (100 rules) and B (none) on fresh events; medians with their spread, and the ratio.
2. Latency: a real `liftoff worker` and a real SMTP server (aiosmtpd); customers are signed
   up at a steady rate and a rule emails each one: commit-to-email-received p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import threading
import time
import uuid
from email import message_from_bytes
from typing import Any

from bench.db import DEFAULT_SERVER
from bench.metrics import percentile_ms
from bench.procs import Child, Teardown, app_env, free_port, guarded_main, liftoff_argv, run
from bench.report import cell, table

SEGMENTS = 100


def rule_set(n: int, *, label: str, threshold: int) -> list[dict[str, Any]]:
    """`n` rules on `task.progressed`: each compares the customer's segment (one rule per
    segment) and the payload's progress with `threshold`: at 100 an event at 100 % (1 in 100)
    fires one rule; at 101 none ever fires, so only evaluation is measured."""
    return [
        {
            "name": f"{label} {i}",
            "trigger": {"type": "event", "event": "task.progressed"},
            "conditions": {
                "all": [
                    {"fact": "customer.userType", "op": "eq", "value": f"segment-{i}"},
                    {"fact": "event.payload.progress", "op": "gte", "value": threshold},
                    {"fact": "workflow.status", "op": "in", "value": ["ACTIVE"]},
                ]
            },
            "actions": [{"type": "tag_customer", "tag": f"done-{i}"}],
        }
        for i in range(n)
    ]


async def _events(org: uuid.UUID, customers: list[uuid.UUID], count: int) -> None:
    """`count` task.progressed events spread over the customers (1 % at 100 %)."""
    from app.db import transaction
    from app.events import outbox

    per = max(1, count // len(customers))
    n = 0
    for c in customers:
        batch = []
        for _ in range(per):
            n += 1
            progress = 100 if n % 100 == 0 else n % 100
            batch.append(
                (
                    "task.progressed",
                    {
                        "task": "verify_email",
                        "stage": "welcome",
                        "progress": progress,
                        "workflow": {"status": "ACTIVE", "points": 0, "progress": 0.1},
                    },
                )
            )
        async with transaction():
            await outbox.record(organization_id=org, customer_id=c, events=batch, actor="bench")


async def _drain(consumer: Any) -> int:
    from app.events.consumers import consume_batch

    handled = 0
    while True:
        n = await consume_batch(consumer)
        if n == 0:
            return handled
        handled += n


async def throughput(url: str, *, rounds: int, events: int, customers: int) -> dict[str, Any]:
    """Events/s through the consumer with 100 enabled rules (A) and with none (B)."""
    from app.automation import engine
    from app.automation import service as automation
    from app.automation.models import AutomationRule, AutomationRun
    from app.customers.service import NewCustomer, create_customer
    from app.db import close_db, init_db, migrate, transaction
    from app.events.consumers import Consumer, ensure_checkpoints
    from app.onboarding.templates import open_organization

    await migrate(url)
    await close_db()
    await init_db(url, pool_max=4)
    try:
        async with transaction():
            new = await open_organization(
                name="Bench",
                slug=f"bench-{uuid.uuid4().hex[:6]}",
                admin_email="a@bench.test",
                admin_name="A",
                created_by="bench",
            )
            ids = []
            for i in range(customers):
                c = await create_customer(
                    new.viewer,
                    NewCustomer(
                        email=f"c{i}@bench.test", name=f"C{i}", user_type=f"segment-{i % SEGMENTS}"
                    ),
                )
                ids.append(c.id)
            for label, threshold in (("A", 101), ("B", 100)):
                for raw in rule_set(100, label=label, threshold=threshold):
                    await automation.create_rule(new.viewer, definition=raw, enabled=False)
        consumer = Consumer("automation-bench", engine.handle, batch_size=500)
        await ensure_checkpoints([consumer])
        await _drain(consumer)  # the sign-up events
        org = new.organization.id
        results: dict[str, list[float]] = {"A": [], "B": [], "C": []}
        fired: list[int] = []
        orders = ("ABC", "CBA", "BCA", "ACB", "CAB", "BAC")
        for r in range(rounds):
            for label in orders[r % len(orders)]:
                await AutomationRule.filter(organization_id=org, key__isnull=True).update(
                    enabled=False
                )
                await AutomationRule.filter(
                    organization_id=org, key__isnull=True, name__startswith=f"{label} "
                ).update(enabled=True)
                await _events(org, ids, events)
                before = await AutomationRun.filter(organization_id=org).count()
                start = time.perf_counter()
                handled = await _drain(consumer)
                elapsed = time.perf_counter() - start
                results[label].append(handled / elapsed)
                if label == "B":
                    fired.append(await AutomationRun.filter(organization_id=org).count() - before)
        return {"results": results, "fired": fired, "events": events}
    finally:
        await close_db()


class _Inbox:
    """aiosmtpd handler: when each recipient's message arrived."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        msg = message_from_bytes(envelope.content)
        with self.lock:
            self.at.setdefault(str(msg["To"]), now)
        return "250 OK"


async def latency(
    url: str, secret: str, teardown: Teardown, *, redis_url: str, count: int, rate: float
) -> dict[str, Any]:
    """Commit-to-email-received through a real worker and a real SMTP server."""
    from aiosmtpd.controller import Controller

    from app.automation import service as automation
    from app.customers.service import NewCustomer, create_customer
    from app.db import close_db, init_db, transaction
    from app.onboarding.templates import open_organization

    inbox = _Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    teardown.add(smtp.stop)
    await init_db(url, pool_max=4)
    try:
        async with transaction():
            new = await open_organization(
                name="Mail",
                slug=f"mail-{uuid.uuid4().hex[:6]}",
                admin_email="a@mail.test",
                admin_name="A",
                created_by="bench",
            )
            await automation.create_rule(
                new.viewer,
                enabled=True,
                definition={
                    "name": "welcome",
                    "trigger": {"type": "event", "event": "customer.created"},
                    "actions": [
                        {
                            "type": "send_email",
                            "subject": "Welcome {{ customer.name }}",
                            "text": "Hello {{ customer.name }}",
                        }
                    ],
                },
            )
        worker = Child(
            "worker",
            liftoff_argv("worker"),
            app_env(
                url,
                secret,
                "INFO",
                REDIS_URL=redis_url,
                LIFTOFF_SMTP_URL=f"smtp://127.0.0.1:{port}",
            ),
        ).start()
        teardown.add(worker.stop)
        await worker.wait_for_log("Worker running")
        committed: dict[str, float] = {}
        for i in range(count):
            email = f"lat{i}@mail.test"
            async with transaction():
                await create_customer(new.viewer, NewCustomer(email=email, name=f"L{i}"))
            committed[email] = time.time()
            await asyncio.sleep(1 / rate)
        deadline = time.monotonic() + 60
        while len(inbox.at) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        worker.stop()
        waits = [inbox.at[e] - t for e, t in committed.items() if e in inbox.at]
        return {"received": len(waits), "sent": count, "waits": waits}
    finally:
        await close_db()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_SERVER))
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--emails", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="sign-ups per second")
    args = parser.parse_args()

    def body(teardown: Teardown) -> int:
        url, version = run(teardown.create_database())
        secret = secrets.token_urlsafe(32)
        print(f"PostgreSQL {version}; load before: {_load()}")
        t = run(throughput(url, rounds=args.rounds, events=args.events, customers=args.customers))
        lat = run(
            latency(
                url, secret, teardown, redis_url=args.redis_url, count=args.emails, rate=args.rate
            )
        )
        a, b, c = t["results"]["A"], t["results"]["B"], t["results"]["C"]

        def row(name: str, values: list[float], spec: str = "{:,.0f}") -> list[str]:
            return [
                name,
                cell(statistics.median(values), spec),
                f"{spec.format(min(values))}-{spec.format(max(values))}",
            ]

        rows = [
            row("A: 100 rules, evaluated, none fire", a),
            row("B: 100 rules, 1 % of events fire one", b),
            row("C: no enabled rule", c),
            row("A / C", [x / z for x, z in zip(a, c, strict=True)], "{:.2f}"),
            row("B / C", [y / z for y, z in zip(b, c, strict=True)], "{:.2f}"),
        ]
        print(
            f"\nThroughput: {t['events']:,} task.progressed events per round, "
            f"{args.rounds} rounds, order rotating, one consumer process"
        )
        print("\n".join(table([["", "events/s (median)", "spread"]], rows, align="<>>", rule=True)))
        print(f"runs fired per B round: {t['fired']}")
        waits = lat["waits"]
        print(
            f"\nCommit to email received (real worker, aiosmtpd), {lat['sent']} sign-ups at "
            f"{args.rate:g}/s: received {lat['received']}"
        )
        print(
            f"p50 {cell(percentile_ms(waits, 0.5), '{:.0f}')} ms, "
            f"p99 {cell(percentile_ms(waits, 0.99), '{:.0f}')} ms, "
            f"max {cell(max(waits) * 1000 if waits else None, '{:.0f}')} ms"
        )
        print(f"load after: {_load()}")
        return 0

    return guarded_main(args.database_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
