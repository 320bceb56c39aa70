"""Reading an event file (CSV or JSON Lines) in bounded chunks, each line checked by the same
rules as `ingestEvents`; storage of the chunks is `app/usage/bulk.py`.

CSV: a header naming the columns `customer_id` or `external_id`, `name`, `occurred_at`,
`idempotency_key` and optionally `properties` (a JSON object as text); camelCase names are
accepted too. JSON Lines: one object per line with the fields `ingestEvents` takes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, NamedTuple

from app.usage.rules import (
    MAX_DEPTH,
    MAX_PROPERTIES_BYTES,
    Reject,
    Rejection,
    Window,
    check_fields,
    depth,
    encode_properties,
)

FORMATS = ("csv", "jsonl")
ALIASES = {
    "customerId": "customer_id",
    "externalId": "external_id",
    "occurredAt": "occurred_at",
    "idempotencyKey": "idempotency_key",
}
MALFORMED = "MALFORMED_LINE"


class Line(NamedTuple):
    """A line that passed the rules; its customer is still to be found."""

    line: int
    customer_id: str | None
    external_id: str | None
    name: str
    occurred_at: datetime
    idempotency_key: str
    properties: str  # JSON text of an object


@dataclass(frozen=True, slots=True)
class Refused:
    line: int
    code: str
    reason: str


@dataclass
class Chunk:
    """A run of lines: those to store and those refused, and how far the file was read."""

    lines: list[Line] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    read: int = 0  # lines read (with blank ones)
    position: int = 0  # bytes of the file consumed so far (approximately)


def format_of(path: str, given: str | None) -> str:
    """`csv` or `jsonl`, as given or by the file's ending."""
    if given:
        return given
    lower = path.lower()
    return "jsonl" if lower.endswith((".jsonl", ".ndjson", ".json")) else "csv"


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _properties(value: Any) -> str | Rejection:
    """The properties as JSON text of an object (CSV gives text, JSON Lines an object);
    PostgreSQL refuses NUL characters in text and jsonb, so they are refused here."""
    text = _properties_text(value)
    if isinstance(text, str) and ("\x00" in text or "\\u0000" in text):
        return Rejection(Reject.INVALID_PROPERTIES, "`properties` may not contain NUL characters.")
    return text


def _properties_text(value: Any) -> str | Rejection:
    if value is None or value == "" or value == "{}":
        return "{}"
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return Rejection(Reject.INVALID_PROPERTIES, "`properties` is not JSON text.")
        if (
            isinstance(parsed, dict)
            and len(value) * 4 <= MAX_PROPERTIES_BYTES  # at most 4 bytes a character
            and depth(parsed) <= MAX_DEPTH
        ):
            return value  # small enough as sent; PostgreSQL stores it as jsonb anyway
        value = parsed
    return encode_properties(value)


def check_line(number: int, item: dict[str, Any], window: Window) -> Line | Refused:
    """One JSON Lines record as a Line, or why it is refused."""
    if not ALIASES.keys().isdisjoint(item):
        item = {ALIASES.get(k, k): v for k, v in item.items()}
    name, at, key = item.get("name"), item.get("occurred_at"), item.get("idempotency_key")
    if not isinstance(name, str) or not isinstance(at, str) or not isinstance(key, str):
        return Refused(number, MALFORMED, "Needs `name`, `occurred_at` and `idempotency_key`.")
    return check_row(
        number,
        _text(item.get("customer_id")),
        _text(item.get("external_id")),
        name,
        at,
        key,
        item.get("properties"),
        window,
    )


def check_row(
    number: int,
    customer_id: str | None,
    external_id: str | None,
    name: str,
    at: str,
    key: str,
    properties: Any,
    window: Window,
) -> Line | Refused:
    """One record's fields as a Line, or why it is refused."""
    when = check_fields(customer_id, external_id, name, at, key, window)
    if isinstance(when, Rejection):
        return Refused(number, when.code, when.reason)
    text = _properties(properties)
    if isinstance(text, Rejection):
        return Refused(number, text.code, text.reason)
    return Line(number, customer_id, external_id, name, when, key, text)


_COLUMNS = ("customer_id", "external_id", "name", "occurred_at", "idempotency_key", "properties")


def header_of(row: list[str]) -> list[str] | Refused:
    """The column names of a CSV header (aliases resolved), or why the file is refused."""
    names = [ALIASES.get(h.strip(), h.strip()) for h in row]
    missing = {"name", "occurred_at", "idempotency_key"} - set(names)
    if missing:
        return Refused(1, MALFORMED, f"The header lacks {', '.join(sorted(missing))}.")
    return names


def rows_csv(
    texts: Iterable[str], names: list[str], window: Window, offset: int = 0
) -> Iterator[Line | Refused]:
    """The records after the header, checked; `offset` lines of the file come before `texts`."""
    reader = csv.reader(texts)
    width = len(names)
    at = [names.index(c) if c in names else None for c in _COLUMNS]
    cid, ext, name, when, key, props = at
    assert name is not None and when is not None and key is not None
    for row in reader:
        if len(row) != width:
            if row:
                number = offset + reader.line_num
                yield Refused(
                    number,
                    MALFORMED,
                    f"Line {number} has {len(row)} fields; the header names {width}.",
                )
            continue
        yield check_row(
            offset + reader.line_num,
            (row[cid] or None) if cid is not None else None,
            (row[ext] or None) if ext is not None else None,
            row[name],
            row[when],
            row[key],
            row[props] if props is not None else None,
            window,
        )


def _lines_csv(stream: IO[bytes], window: Window) -> Iterator[Line | Refused]:
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    try:
        head = csv.reader(text)
        first = next(head, None)
        if first is None:
            return
        names = header_of(first)
        if isinstance(names, Refused):
            yield names
            return
        yield from rows_csv(text, names, window, offset=head.line_num)
    finally:
        text.detach()  # the caller's file stays open


def _lines_jsonl(stream: IO[bytes], window: Window) -> Iterator[Line | Refused]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            yield Refused(number, MALFORMED, f"Line {number} is not a JSON object.")
        else:
            yield check_line(number, item, window)


def chunks(stream: IO[bytes], *, fmt: str, size: int, window: Window) -> Iterator[Chunk]:
    """The file's records `size` at a time, checked; only one chunk is held at once."""
    source = _lines_csv(stream, window) if fmt == "csv" else _lines_jsonl(stream, window)
    chunk = Chunk()
    lines, refused = chunk.lines, chunk.refused
    for item in source:
        if type(item) is Line:
            lines.append(item)
        else:
            refused.append(item)  # type: ignore[arg-type]
        if len(lines) + len(refused) >= size:
            chunk.read = item.line
            chunk.position = stream.tell()
            yield chunk
            chunk = Chunk()
            lines, refused = chunk.lines, chunk.refused
    chunk.position = stream.tell()
    chunk.read = (
        (lines[-1].line if lines else 0)
        if not refused
        else max(refused[-1].line, lines[-1].line if lines else 0)
    )
    yield chunk


__all__ = ["FORMATS", "MAX_DEPTH", "MAX_PROPERTIES_BYTES", "Chunk", "Line", "Refused", "chunks"]
