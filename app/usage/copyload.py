"""The fast path of CSV imports: PostgreSQL parses, checks and stores a chunk's raw bytes.

Python only cuts the file into chunks of whole lines and sends each chunk's bytes as they
are with `COPY … (FORMAT csv)` into a temporary table of text columns (PostgreSQL's CSV parser
is C). One statement then checks every row set-based, finds the customers with one index
probe per distinct id, and stores the rows that pass (keys, events, rollups:
`storage.store_sql`); it returns the chunk's summary, the lines whose customer is unknown, and
the lines it could not accept.

Equal rules by construction: SQL only *accepts*, and only rows that the API's rules (`rules.py`,
`importer.check_row`) accept with the same values: canonical forms (an `occurredAt` like
`2024-05-01T09:30:00.123Z`, a lower-case UUID, an object of at most 2,048 characters and five
brackets, a key whose ends are printable ASCII) inside the window. Every other row goes back
to Python, which decides it with those rules and gives the code and reason the API would.
A tested property (tests/usage/test_copyload.py) holds both paths equal on files with every
kind of bad line.

A chunk that PostgreSQL cannot read as the Python `csv` module would (a quote inside an
unquoted field, a quoted line break, a wrong number of fields, bytes that are not UTF-8,
JSON that jsonb refuses) is rolled back and read by Python instead (`Fallback`).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

import asyncpg

from app.db import transaction
from app.events import outbox
from app.usage import bulk, storage
from app.usage.bulk import Stored
from app.usage.importer import Chunk, Line, Refused, check_row, header_of, rows_csv
from app.usage.rules import Reject, Window
from app.usage.service import INGESTED

QUOTED = re.compile(rb'"[^"]*(?:""[^"]*)*"')  # a quoted field, from its opening quote
HEADER_BYTES = 64 * 1024
FIELDS = ("customer_id", "external_id", "name", "occurred_at", "idempotency_key", "properties")

_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_AT = (
    r"^(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# The last day of the month the text names (its month is valid once _AT matched).
_LAST_DAY = (
    "extract(day FROM make_date(substr(at, 1, 4)::int, substr(at, 6, 2)::int, 1)"
    " + interval '1 month - 1 day')"
)


class Fallback(Exception):
    """PostgreSQL read the chunk differently from Python's csv module, or could not read it."""


@dataclass
class Block:
    """Whole lines of a CSV file, as bytes."""

    data: bytes
    lines: int  # physical lines in `data`
    first: int  # the file's line number of the first
    position: int  # bytes of the file read once it was read


def columns_sql(names: list[str]) -> dict[str, str]:
    """The text expression of each field of `FIELDS` in the staging table ('' when absent)."""
    where = {n: i for i, n in reversed(list(enumerate(names)))}  # the first column of a name
    return {f: f"coalesce(c{where[f]}, '')" if f in where else "''" for f in FIELDS}


def stage_sql(width: int) -> str:
    cols = ", ".join(f"c{i} text" for i in range(width))
    return (
        f"CREATE TEMP TABLE usage_import_raw ({cols}, n int GENERATED ALWAYS AS IDENTITY)"
        " ON COMMIT DROP"
    )


def store_sql(names: list[str]) -> str:
    """The statement that checks and stores the staged rows; $1 organization, $2..$3 window."""
    c = columns_sql(names)
    return f"""WITH raw AS (
    SELECT n, {c["customer_id"]} AS cid, {c["external_id"]} AS ext, {c["name"]} AS name,
           {c["occurred_at"]} AS at, {c["idempotency_key"]} AS key, {c["properties"]} AS props
    FROM usage_import_raw
), chk AS MATERIALIZED (
    SELECT raw.*, CASE WHEN cid ~ '{_UUID}' THEN cid::uuid END AS cuid, CASE
        WHEN (cid = '') <> (ext = '') AND (cid = '' OR cid ~ '{_UUID}')
         AND name ~ '^[a-z][a-z0-9_.]*$' AND octet_length(name) <= 64
         AND length(key) <= 200 AND key ~ '^[!-~](.*[!-~])?$'
         AND at ~ '{_AT}'
        THEN CASE WHEN substr(at, 9, 2) <= '28' OR {_LAST_DAY} >= substr(at, 9, 2)::int
             THEN at::timestamptz END
    END AS at_ts
    FROM raw
), cls AS MATERIALIZED (
    SELECT chk.*, CASE
        WHEN at_ts IS NULL OR at_ts < $2 OR at_ts > $3 THEN NULL
        WHEN props = '' OR props = '{{}}' THEN '{{}}'::jsonb
        WHEN length(props) <= 2048 AND props ~ '^\\{{.*\\}}$' AND strpos(props, '\\u0000') = 0
         AND length(props) - length(translate(props, '{{[', '')) <= 5
        THEN props::jsonb
    END AS pj
    FROM chk
), by_ext AS (
    SELECT id, external_id FROM customer WHERE organization_id = $1
      AND external_id = ANY(ARRAY(SELECT DISTINCT ext FROM cls WHERE pj IS NOT NULL AND ext <> ''))
), by_id AS (
    SELECT id FROM customer WHERE organization_id = $1
      AND id = ANY(ARRAY(SELECT DISTINCT cuid FROM cls WHERE pj IS NOT NULL AND cuid IS NOT NULL))
), found AS MATERIALIZED (
    SELECT cls.n, cls.cid, cls.ext, coalesce(e.id, i.id) AS customer_id, cls.name,
           cls.at_ts AS occurred_at, cls.key AS idempotency_key, cls.pj AS properties
    FROM cls LEFT JOIN by_ext e ON e.external_id = cls.ext LEFT JOIN by_id i ON i.id = cls.cuid
    WHERE cls.pj IS NOT NULL
), input AS MATERIALIZED (
    SELECT DISTINCT ON (idempotency_key) customer_id, name, occurred_at, idempotency_key,
           properties
    FROM found WHERE customer_id IS NOT NULL ORDER BY idempotency_key, n
), {storage.store_sql("input").removeprefix("WITH ")}
SELECT 0 AS kind, NULL::int AS line, customer_id, name, sum(n)::bigint AS n,
       max(last_at) AS last_at, NULL AS cid, NULL AS ext, NULL AS at, NULL AS key, NULL AS props
FROM days GROUP BY customer_id, name
UNION ALL
SELECT 1, NULL, NULL, NULL, count(*), NULL, NULL, NULL, NULL, NULL, NULL
FROM found WHERE customer_id IS NOT NULL
UNION ALL
SELECT 2, n, NULL, NULL, NULL, NULL, cid, ext, NULL, NULL, NULL
FROM found WHERE customer_id IS NULL
UNION ALL
SELECT 3, n, NULL, name, NULL, NULL, cid, ext, at, key, props FROM cls WHERE pj IS NULL"""


@dataclass
class Plan:
    """How one file's chunks are staged and stored."""

    names: list[str]  # the header's column names (aliases resolved)
    has_properties: bool
    window: Window

    def __post_init__(self) -> None:
        self.stage = stage_sql(len(self.names))
        self.columns = [f"c{i}" for i in range(len(self.names))]
        self.store = store_sql(self.names)


async def store_block(
    plan: Plan, organization_id: uuid.UUID, block: Block, *, actor: str
) -> Stored:
    """Store one block through PostgreSQL; raises Fallback when Python must read it."""
    out = Stored()
    undecided: list[Any] = []
    try:
        async with transaction() as tx:
            raw: Any = tx._connection  # type: ignore[attr-defined]
            await raw.execute("SET LOCAL synchronous_commit = off")  # a lost chunk is re-run
            await raw.execute(plan.stage)
            status = await raw.copy_to_table(
                "usage_import_raw",
                source=io.BytesIO(block.data),
                columns=plan.columns,
                format="csv",
            )
            if int(status.rsplit(" ", 1)[-1]) != block.lines:  # a quoted line break, or `\.`
                raise Fallback
            rows = await raw.fetch(
                plan.store, organization_id, plan.window.earliest, plan.window.latest
            )
            summary: list[Any] = []
            found = 0
            for r in rows:
                kind = r["kind"]
                if kind == 0:
                    summary.append(r)
                elif kind == 1:
                    found = int(r["n"])
                elif kind == 2:
                    ext, cid = r["ext"], r["cid"]
                    who = f"with externalId {ext!r}" if ext else repr(cid)
                    out.refused.append(
                        Refused(
                            block.first + r["line"] - 1,
                            Reject.NOT_FOUND,
                            f"No customer {who} in your organization.",
                        )
                    )
                else:
                    undecided.append(r)
            out.accepted = sum(int(r["n"]) for r in summary)
            out.duplicates = found - out.accepted
            if summary:
                await outbox.record(
                    organization_id=organization_id,
                    customer_id=None,
                    events=[(INGESTED, bulk._summary(summary))],
                    actor=actor,
                )
    except asyncpg.DataError as exc:  # bytes or a field PostgreSQL reads otherwise
        raise Fallback from exc
    if undecided:
        lines = decide(plan, block, undecided, out)
        stored = await bulk.store_chunk(organization_id, lines, actor=actor)
        out.accepted += stored.accepted
        out.duplicates += stored.duplicates
        out.refused.extend(stored.refused)
    return out


def decide(plan: Plan, block: Block, rows: list[Any], out: Stored) -> list[Line]:
    """The rows SQL did not accept, decided by the API's rules as the Python reader would."""
    lines: list[Line] = []
    for r in rows:
        checked = check_row(
            block.first + r["line"] - 1,
            r["cid"] or None,
            r["ext"] or None,
            r["name"],
            r["at"],
            r["key"],
            r["props"] if plan.has_properties else None,
            plan.window,
        )
        if type(checked) is Line:
            lines.append(checked)
        else:
            out.refused.append(checked)  # type: ignore[arg-type]
    return lines


def open_csv(stream: IO[bytes], window: Window) -> Plan | Refused | None:
    """The plan of a CSV file from its header line (the stream then stands after it); None
    when the file is better read by Python from its start (an unusual first line)."""
    head = stream.readline(HEADER_BYTES)
    if not head:
        return None
    if not head.endswith(b"\n") or b"\r" in head[:-2] or head.count(b'"') % 2:
        return None  # no line end (old Mac line ends, a huge line) or a quoted line break
    row = next(csv.reader([head.decode("utf-8", errors="replace")]), [])
    names = header_of(row)
    if isinstance(names, Refused):
        return names
    return Plan(names, "properties" in names, window)


def blocks(stream: IO[bytes], plan: Plan, *, size: int) -> Iterator[Block | Chunk]:
    """The records after the header, about `size` lines at a time (whole lines): a Block of
    bytes for PostgreSQL, or a Chunk read by Python where PostgreSQL would read the bytes
    differently. Python never looks at a line of a Block: it cuts and counts at C speed."""
    first = 2
    line_bytes = 0  # the average line length, learnt from the first lines
    while True:
        if line_bytes:
            data = stream.read(size * line_bytes)
            data += stream.readline() if data and not data.endswith(b"\n") else b""
        else:
            data = b"".join(islice(stream, size))
        if not data:
            return
        quotes = data.count(b'"')
        while quotes % 2 and len(data) < 8 * size * max(line_bytes, 64):
            more = stream.readline()  # a quoted field goes on past the chunk
            if not more:
                break
            data += more
            quotes += more.count(b'"')
        lone_cr = data.count(b"\r") != data.count(b"\r\n")
        count = len(data.splitlines()) if lone_cr else data.count(b"\n") + (data[-1:] != b"\n")
        line_bytes = line_bytes or max(1, len(data) // count)
        block = Block(data, count, first, stream.tell())
        first += count
        if (
            lone_cr
            or b"\n\n" in data
            or b"\n\r\n" in data
            or data.startswith((b"\n", b"\r"))
            or (quotes and not plain_quotes(data, quotes))
        ):
            yield parse_block(plan, block)
        else:
            yield block


def plain_quotes(data: bytes, quotes: int) -> bool:
    """Whether every quote of `data` opens or closes a quoted field or doubles inside one,
    where PostgreSQL's and Python's CSV readers agree (a quote inside an unquoted field, or
    after a closing quote, is read differently)."""
    end = len(data)
    seen = 0
    for m in QUOTED.finditer(data):
        start, stop = m.span()
        if (start and data[start - 1] not in b",\n") or (stop < end and data[stop] not in b",\r\n"):
            return False
        seen += data.count(b'"', start, stop)
    return seen == quotes


def parse_block(plan: Plan, block: Block) -> Chunk:
    """A block read and checked by Python, as `importer` reads a whole file."""
    texts = [x.decode("utf-8", errors="replace") for x in block.data.splitlines(keepends=True)]
    chunk = Chunk(read=block.first + block.lines - 1, position=block.position)
    for item in rows_csv(texts, plan.names, plan.window, offset=block.first - 1):
        if type(item) is Line:
            chunk.lines.append(item)
        else:
            chunk.refused.append(item)  # type: ignore[arg-type]
    return chunk
