"""`liftoff import-events` as a real command: a 1,000,000-line file with bad lines in it,
every good line stored once, every bad one reported with its line number, and a rerun that
stores nothing again."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

from tortoise.connection import get_connection

from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.usage.models import UsageDaily, UsageEvent
from app.usage.service import INGESTED
from tests.accounts.test_cli import LIFTOFF
from tests.support.factories import Tenant

LINES = 1_000_000
CUSTOMERS = 20


async def liftoff(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command, with time for a million lines on a busy machine."""
    env = {**os.environ, "DATABASE_URL": db, "COLUMNS": "120"}
    return await asyncio.to_thread(
        subprocess.run, [LIFTOFF, *args], env=env, capture_output=True, text=True, timeout=1800
    )


async def add_customers(tenant: Tenant, n: int) -> list[str]:
    """`n` customers named by external ids (rows only: the import needs nothing else)."""
    externals = [f"imp-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    await get_connection("default").execute_query(
        "INSERT INTO customer (id, organization_id, external_id, email, name, user_type, "
        "acquisition_channel, tags, signed_up_at, created_at) "
        "SELECT gen_random_uuid(), $1, x, x || '@example.com', x, 'standard', 'direct', "
        "'[]'::jsonb, now(), now() FROM unnest($2::varchar[]) AS x",
        [tenant.id, externals],
    )
    return externals


def write_file(path: Path, externals: list[str], other_org: str) -> dict[int, str]:
    """The file, and the line numbers of the lines that must be refused, with their codes."""
    rng = random.Random(9)
    now = utcnow()
    days = [(now - timedelta(days=d, hours=1)).isoformat() for d in range(14)]
    names = ("project_created", "report_shared", "teammate_invited")
    bad: dict[int, str] = {}
    with path.open("w") as f:
        f.write("external_id,name,occurred_at,idempotency_key,properties\n")
        for i in range(LINES):
            line = i + 2
            ext, name, at, key, props = (
                externals[i % len(externals)],
                names[i % 3],
                days[i % 14],
                f"evt-{i}",
                '"{""n"": 1}"' if i % 10 == 0 else "",
            )
            kind = rng.random() if i % 97 == 5 else 1.0
            if kind < 0.2:
                name, bad[line] = "Not A Name", "INVALID_NAME"
            elif kind < 0.4:
                at, bad[line] = "last tuesday", "INVALID_OCCURRED_AT"
            elif kind < 0.6:
                ext, bad[line] = other_org, "NOT_FOUND"
            elif kind < 0.8:
                props, bad[line] = '"[1, 2]"', "INVALID_PROPERTIES"
            elif kind < 1.0:
                f.write(f"{ext},{name}\n")
                bad[line] = "MALFORMED_LINE"
                continue
            f.write(f"{ext},{name},{at},{key},{props}\n")
    return bad


async def test_a_million_line_file_with_bad_lines(
    db: str, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
) -> None:
    externals = await add_customers(tenant, CUSTOMERS)
    (foreign,) = await add_customers(other_tenant, 1)
    path = tmp_path / "events.csv"
    bad = write_file(path, externals, foreign)
    good = LINES - len(bad)
    assert 5_000 < len(bad) < 20_000
    rejects = tmp_path / "rejected.csv"

    done = await liftoff(
        db, "import-events", str(path), "--org", tenant.org.slug, "--rejects", str(rejects)
    )
    assert done.returncode == 0, done.stderr
    assert f"{good:,} accepted, 0 duplicates, {len(bad):,} rejected" in done.stdout, done.stdout
    with rejects.open() as f:
        rows = list(csv.DictReader(f))
    assert {int(r["line"]): r["code"] for r in rows} == bad
    assert [int(r["line"]) for r in rows] == sorted(bad)
    assert all(r["reason"] for r in rows)

    ids = await Customer.filter(external_id__in=externals).values_list("id", flat=True)
    assert await UsageEvent.filter(organization_id=tenant.id).count() == good
    assert sum(await UsageDaily.filter(customer_id__in=ids).values_list("count", flat=True)) == good
    assert await UsageEvent.filter(organization_id=other_tenant.id).count() == 0
    props = await UsageEvent.filter(organization_id=tenant.id, idempotency_key="evt-10").first()
    assert props is not None and props.properties == {"n": 1}
    summaries = await OutboxEvent.filter(organization_id=tenant.id, type=INGESTED)
    assert sum(e.payload["accepted"] for e in summaries) == good
    assert len(summaries) < 100  # one summary per chunk, not per event

    again = await liftoff(
        db, "import-events", str(path), "--org", tenant.org.slug, "--rejects", str(rejects)
    )
    assert again.returncode == 0, again.stderr
    assert f"0 accepted, {good:,} duplicates, {len(bad):,} rejected" in again.stdout
    assert await UsageEvent.filter(organization_id=tenant.id).count() == good
    assert sum(await UsageDaily.filter(customer_id__in=ids).values_list("count", flat=True)) == good


async def test_json_lines_with_a_bad_line_and_a_repeated_key(
    db: str, tenant: Tenant, tmp_path: Path
) -> None:
    (ext,) = await add_customers(tenant, 1)
    at = utcnow().isoformat()
    lines = [
        json.dumps({"externalId": ext, "name": "a", "occurredAt": at, "idempotencyKey": "j1",
                    "properties": {"x": [1, {"y": 2}]}}),
        "{not json",
        json.dumps({"externalId": ext, "name": "a", "occurredAt": at, "idempotencyKey": "j1"}),
        "",
        json.dumps({"external_id": ext, "name": "b", "occurred_at": at, "idempotency_key": "j2",
                    "properties": {"nul": "a\u0000b"}}),
        json.dumps({"external_id": ext, "name": "b", "occurred_at": at, "idempotency_key": "j3"}),
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = await liftoff(db, "import-events", str(path), "--org", tenant.org.slug)
    assert done.returncode == 0, done.stderr
    assert "2 accepted, 1 duplicates, 2 rejected" in done.stdout, done.stdout
    rejected = (tmp_path / "events.jsonl.rejected.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rejected[1:]] == [
        ["2", "MALFORMED_LINE"],
        ["5", "INVALID_PROPERTIES"],
    ]
    rows = await UsageEvent.filter(organization_id=tenant.id).order_by("idempotency_key")
    assert [(r.idempotency_key, r.properties) for r in rows] == [
        ("j1", {"x": [1, {"y": 2}]}),
        ("j3", {}),
    ]
