"""What one rollup refresh costs per customer, when nothing changed and when every customer moved.

    python -m bench.analytics_refresh [--customers 64] [--repeats 40]

The `updateTask` load of bench.analytics (PROGRESS) changes no customer's contribution, so
the consumer only reads and compares. This measures `app.analytics.maintain.refresh`, the
consumer's work per batch, directly on a throwaway database with `--customers` seeded
customers (their first task running), alternating two cases per repeat, each in a
transaction rolled back afterwards:
- `unchanged`: the customers as they are (their contributions already saved);
- `changed`: every customer's running task completed first (by an UPDATE, not measured), so
  every contribution changes and the rollup rows are written (stage, task and flight rows).
Printed per case: Python CPU of the refresh (this process), CPU of its PostgreSQL backend
(schedstat), wall time, each per customer (median and quartiles), and the load average.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

from bench.db import DEFAULT_SERVER
from bench.procs import Teardown, guarded_main, run
from bench.tenant import PROGRESS_TASK, seed

_COMPLETE = """UPDATE workflow_task SET status = 'COMPLETED', completed_at = now(), progress = 100
WHERE key = $2 AND workflow_id IN (SELECT id FROM workflow WHERE customer_id = ANY($1::uuid[]))"""


def _backend_seconds(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def _measure(
    db_url: str, customers: list[str], repeats: int
) -> dict[str, list[tuple[float, float, float]]]:
    import uuid

    from app.analytics import maintain
    from app.db import close_db, init_db, transaction
    from app.kit.clock import utcnow

    ids = [uuid.UUID(c) for c in customers]
    await init_db(db_url)
    try:
        async with transaction():
            await maintain.refresh(ids, now=utcnow())  # contributions saved: the steady state
        out: dict[str, list[tuple[float, float, float]]] = {"unchanged": [], "changed": []}

        class Rollback(Exception):
            pass

        for n in range(repeats + 3):
            for case in ("unchanged", "changed") if n % 2 == 0 else ("changed", "unchanged"):
                try:
                    async with transaction() as tx:
                        [row] = await tx.execute_query_dict("SELECT pg_backend_pid() AS pid")
                        if case == "changed":
                            await tx.execute_query(_COMPLETE, [ids, PROGRESS_TASK])
                        pg0, cpu0, t0 = (
                            _backend_seconds(row["pid"]),
                            time.process_time(),
                            (time.perf_counter()),
                        )
                        await maintain.refresh(ids, now=utcnow())
                        t1, cpu1, pg1 = (
                            time.perf_counter(),
                            time.process_time(),
                            (_backend_seconds(row["pid"])),
                        )
                        raise Rollback
                except Rollback:
                    pass
                if n >= 3:  # the first rounds warm caches and prepared statements
                    out[case].append((cpu1 - cpu0, pg1 - pg0, t1 - t0))
        return out
    finally:
        await close_db()


def bench(args: argparse.Namespace, teardown: Teardown) -> int:
    load0 = os.getloadavg()
    db_url, version = run(teardown.create_database())
    seeded = run(seed(db_url, secrets.token_urlsafe(32), args.customers, label="refresh"))
    results = run(_measure(db_url, [c for c, _ in seeded.customers], args.repeats))
    load1 = os.getloadavg()
    n = args.customers
    print(
        f"Rollup refresh of {n} customers, {args.repeats} repeats per case, alternating;"
        f" PostgreSQL {version}; load average {load0[0]:.1f} at start, {load1[0]:.1f} at the end"
    )
    for case, rows in results.items():
        parts = []
        for i, what in enumerate(("Python", "PostgreSQL", "wall")):
            values = sorted(1e6 * r[i] / n for r in rows)
            q1, q3 = values[len(values) // 4], values[3 * len(values) // 4]
            parts.append(f"{what} {statistics.median(values):.0f} ({q1:.0f}-{q3:.0f})")
        total = statistics.median(1e6 * (r[0] + r[1]) / n for r in rows)
        print(f"  {case:9s} us per customer: {', '.join(parts)}; CPU {total:.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.analytics_refresh", description=__doc__)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER)
    p.add_argument("--customers", type=int, default=64, help="Customers per refresh (64).")
    p.add_argument("--repeats", type=int, default=40, help="Refreshes per case (40).")
    args = p.parse_args(argv)
    return guarded_main(args.database_url, lambda teardown: bench(args, teardown))


if __name__ == "__main__":
    sys.exit(main())
