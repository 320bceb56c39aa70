"""CSV imports checked and stored by PostgreSQL come to exactly what Python's reader and the
API's rules make of the same file: the same lines refused with the same codes and reasons,
the same events and rollups stored. Files with every kind of bad line, in chunks PostgreSQL
reads itself and in chunks it hands back to Python."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise.connection import get_connection

from app.kit.clock import utcnow
from app.usage import copyload
from app.usage.backfill import Report, import_file
from tests.support.factories import Tenant

EXTERNALS = ["acme-1", "acme-2", "acme 3"]


async def customers(tenant: Tenant) -> list[str]:
    """The organization's customers named EXTERNALS; their ids as text."""
    rows = await get_connection("default").execute_query_dict(
        "INSERT INTO customer (id, organization_id, external_id, email, name, user_type, "
        "acquisition_channel, tags, signed_up_at, created_at) "
        "SELECT gen_random_uuid(), $1, x, md5(x) || '@example.com', x, 'standard', 'direct', "
        "'[]'::jsonb, now(), now() FROM unnest($2::varchar[]) AS x RETURNING id",
        [tenant.id, EXTERNALS],
    )
    return [str(r["id"]) for r in rows]


def cell(value: str) -> str:
    """A CSV field, quoted when it must be."""
    if any(c in value for c in ',"\n\r') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def mixed_lines(ids: list[str], now: datetime) -> list[str]:
    """Lines (after the header customer_id,external_id,name,occurred_at,idempotency_key,
    properties) of every kind: good ones in canonical and other forms, and every refusal."""
    now = now.replace(microsecond=123456)
    at = (now - timedelta(hours=2)).isoformat()
    z = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    deep = json.dumps({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})
    rows: list[tuple[str, ...]] = [
        ("", "acme-1", "project_created", at, "k-1", ""),
        ("", "acme-2", "report.shared", z, "k-2", '{"plan":"pro","seats":3}'),
        (
            ids[0],
            "",
            "a",
            (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.5+05:30"),
            "k-3",
            "{}",
        ),
        (ids[1].upper(), "", "a", at, "k-4", ""),  # an upper-case id: Python's rules decide
        (ids[2].replace("-", ""), "", "a", at, "k-5", ""),
        ("", "acme 3", "b", at.replace("T", " "), "k-6", ""),  # a space for the T
        (
            "",
            "acme-1",
            "b",
            (now - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.1234567Z"),
            "k-7",
            "",
        ),
        (
            "",
            "acme-1",
            "b",
            (now - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S+0100"),
            "k-8",
            "",
        ),
        ("", "acme-1", "b", at, "k-9", ' {"lead": "space"}'),
        ("", "acme-1", "b", at, "k-10", json.dumps({"s": "[[[[[[x"})),
        ("", "acme-1", "b", at, "k-11", json.dumps({"long": "x" * 3000})),
        ("", "acme-1", "b", at, "k-12", json.dumps({"e": "é" * 1500})),
        ("", "acme-1", "b", at, "clé ünicode", json.dumps({"q": 'a "quoted", text'})),
        ("", "acme-1", "Not A Name", at, "k-13", ""),
        ("", "acme-1", "", at, "k-14", ""),
        ("", "acme-1", "a" * 65, at, "k-15", ""),
        ("", "acme-1", "é", at, "k-16", ""),
        ("", "acme-1", "a" * 64, at, "k-17", ""),
        ("", "acme-1", "b", at, "", ""),
        ("", "acme-1", "b", at, " k-18", ""),
        ("", "acme-1", "b", at, "k-19 ", ""),
        ("", "acme-1", "b", at, "k" * 201, ""),
        ("", "acme-1", "b", at, "k" * 200, ""),
        ("", "acme-1", "b", "last tuesday", "k-20", ""),
        ("", "acme-1", "b", "2025-02-29T10:00:00Z", "k-21", ""),
        ("", "acme-1", "b", at[:10] + "T24:00:00Z", "k-22", ""),
        ("", "acme-1", "b", at[:19], "k-23", ""),
        ("", "acme-1", "b", "2025-13-01T00:00:00Z", "k-24", ""),
        ("", "acme-1", "b", at[:17] + "60Z", "k-25", ""),
        ("", "acme-1", "b", (now + timedelta(hours=1)).isoformat(), "k-26", ""),
        ("", "acme-1", "b", (now + timedelta(minutes=4)).isoformat(), "k-27", ""),
        ("", "acme-1", "b", (now - timedelta(days=500)).isoformat(), "k-28", ""),
        ("", "acme-1", "b", (now - timedelta(days=399)).isoformat(), "k-29", ""),
        (ids[0], "acme-1", "b", at, "k-30", ""),
        ("", "", "b", at, "k-31", ""),
        ("6f1c2a3e-0000-4000-8000-000000000000", "", "b", at, "k-32", ""),
        ("not-a-uuid", "", "b", at, "k-33", ""),
        ("", "acme-9", "b", at, "k-34", ""),
        ("", "acme-1", "b", at, "k-35", "[1, 2]"),
        ("", "acme-1", "b", at, "k-36", '"text"'),
        ("", "acme-1", "b", at, "k-37", deep),
        ("", "acme-1", "b", at, "k-38", json.dumps({"big": "x" * 9000})),
        ("", "acme-1", "b", at, "k-39", '{"nul": "a\\u0000b"}'),
        ("", "acme-1", "b", at, "k-1", ""),  # a key seen before in the file
        ("", "acme-2", "c", z, "k-40", ""),
        ("", "acme-2", "c", z, "k-40", '{"second": true}'),  # twice in a row
    ]
    return [",".join(cell(v) for v in row) + "\n" for row in rows]


def awkward_lines(ids: list[str], now: datetime) -> list[str]:
    """Lines PostgreSQL's CSV reader would read otherwise, or not at all."""
    at = (now - timedelta(hours=1)).isoformat()
    return [
        f",acme-1,b,{at},w-1,\n",
        f",acme-1,b,{at}\n",  # too few fields
        f",acme-1,b,{at},w-2,,extra\n",  # too many
        f',acme-1,b,{at},w-3,{{"x": 1}}\n',  # quotes inside an unquoted field
        f',acme-1,b,{at},w-4,"{{""x"": 1}}"tail\n',  # text after a closing quote
        "\n",  # a blank line
        f',acme-2,b,{at},w-5,"{{bad json}}"\n',
        f',acme-2,b,{at},"w-6\nwith a line break",\n',
        f"{ids[0]},,b,{at},w-7,\r\n",
        f",acme-2,b,{at},w-8,\n",
    ]


HEADER = "customer_id,external_id,name,occurred_at,idempotency_key,properties\n"


async def both(
    tmp_path: Path, tenant: Tenant, other_tenant: Tenant, body: Any, *, chunk: int
) -> tuple[list[Any], list[Any]]:
    """Import the file `body(ids)` into each organization, through PostgreSQL and through
    Python; each run's report, refused lines and stored events and rollups."""
    now = utcnow()
    out = []
    for org, fast in ((tenant, True), (other_tenant, False)):
        ids = await customers(org)
        path = tmp_path / f"{fast}.csv"
        path.write_text(HEADER + "".join(body(ids, now)), encoding="utf-8")
        rejects = tmp_path / f"{fast}.rejected.csv"
        report = await import_file(
            path, organization_id=org.id, fmt="csv", rejects=rejects, retention_days=400,
            actor="test", chunk_lines=chunk, now=now, fast=fast,
        )  # fmt: skip
        with rejects.open(encoding="utf-8") as f:
            refused = list(csv.reader(f))
        out.append([_counts(report), refused, *(await stored(org, ids))])
    return out[0], out[1]


def _counts(report: Report) -> tuple[int, int, int, int]:
    return report.lines, report.accepted, report.duplicates, report.rejected


async def stored(org: Tenant, ids: list[str]) -> tuple[list[Any], list[Any]]:
    """Events and rollups, customers named by their external ids."""
    conn = get_connection("default")
    events = await conn.execute_query_dict(
        "SELECT c.external_id, e.name, e.occurred_at, e.idempotency_key, e.properties::text "
        "FROM usage_event e JOIN customer c ON c.id = e.customer_id "
        "WHERE e.organization_id = $1 ORDER BY e.idempotency_key",
        [org.id],
    )
    days = await conn.execute_query_dict(
        "SELECT c.external_id, d.day, d.name, d.count, d.first_at, d.last_at "
        "FROM usage_daily d JOIN customer c ON c.id = d.customer_id "
        "WHERE d.organization_id = $1 ORDER BY 1, 2, 3",
        [org.id],
    )
    return [tuple(e.values()) for e in events], [tuple(d.values()) for d in days]


def same(fast: list[Any], python: list[Any]) -> None:
    counts, refused, events, days = fast
    assert refused == python[1]
    assert events == python[2]
    assert days == python[3]
    assert counts == python[0]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many blocks PostgreSQL stored and how many it handed back to Python."""
    seen = {"stored": 0, "fallback": 0}
    real = copyload.store_block

    async def store_block(*args: Any, **kw: Any) -> Any:
        try:
            done = await real(*args, **kw)
        except copyload.Fallback:
            seen["fallback"] += 1
            raise
        seen["stored"] += 1
        return done

    monkeypatch.setattr(copyload, "store_block", store_block)
    return seen


async def test_every_kind_of_line_comes_out_as_python_reads_it(
    tmp_path: Path, tenant: Tenant, other_tenant: Tenant, counted: dict[str, int]
) -> None:
    fast, python = await both(tmp_path, tenant, other_tenant, mixed_lines, chunk=7)
    assert counted["fallback"] == 0 and counted["stored"] >= 5  # all through PostgreSQL
    same(fast, python)
    (lines, accepted, duplicates, rejected), refused = fast[0], fast[1]
    assert (lines, duplicates) == (47, 2)
    codes = {r[1] for r in refused[1:]}
    assert codes == {
        "INVALID_NAME", "INVALID_IDEMPOTENCY_KEY", "INVALID_OCCURRED_AT", "OCCURRED_IN_FUTURE",
        "OUTSIDE_RETENTION", "INVALID_CUSTOMER", "NOT_FOUND", "INVALID_PROPERTIES",
        "PROPERTIES_TOO_DEEP", "PROPERTIES_TOO_LARGE",
    }  # fmt: skip
    assert accepted == len(fast[2]) == 18
    assert accepted + duplicates + rejected == lines - 1

    again = await import_file(
        tmp_path / "True.csv", organization_id=tenant.id, fmt="csv",
        rejects=tmp_path / "again.csv", retention_days=400, actor="test", chunk_lines=7,
    )  # fmt: skip
    assert (again.accepted, again.duplicates) == (0, accepted + duplicates)
    assert (await stored(tenant, []))[0] == fast[2]  # nothing stored twice


async def test_lines_postgresql_reads_otherwise_go_to_python(
    tmp_path: Path, tenant: Tenant, other_tenant: Tenant, counted: dict[str, int]
) -> None:
    def body(ids: list[str], now: datetime) -> list[str]:
        return mixed_lines(ids, now) + awkward_lines(ids, now) + mixed_lines(ids, now)[:5]

    fast, python = await both(tmp_path, tenant, other_tenant, body, chunk=4)
    assert counted["stored"] > 5 and counted["fallback"] >= 2
    same(fast, python)
    codes = [r[1] for r in fast[1][1:]]
    assert codes.count("MALFORMED_LINE") == 2
