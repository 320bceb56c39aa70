"""Bulk import of usage events: each checked chunk is one transaction of a few statements.

1. the chunk's customers, by our id and by the organization's own id, in one query;
2. its rows COPYed into a temporary staging table (dropped at commit);
3. one statement claims the idempotency keys, inserts the events whose keys were new into
   their partitions and adds them to the daily rollups;
4. one `usage.event_ingested` summary on the outbox.

A rerun of the same file finds every key taken: its lines count as duplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.db import transaction
from app.events import outbox
from app.usage import storage
from app.usage.importer import Line, Refused
from app.usage.rules import Reject
from app.usage.service import INGESTED, customers_named
from app.usage.service import _uuid as as_uuid

_STAGE = """CREATE TEMP TABLE usage_import_stage (
    customer_id uuid NOT NULL, name varchar(64) NOT NULL, occurred_at timestamptz NOT NULL,
    idempotency_key varchar(200) NOT NULL, properties text NOT NULL, line bigint NOT NULL
) ON COMMIT DROP"""

_STORE = storage.store_sql("usage_import_stage") + (
    "SELECT customer_id, name, sum(n)::bigint AS n, max(last_at) AS last_at FROM days GROUP BY 1, 2"
)


@dataclass
class Stored:
    """What one chunk came to."""

    accepted: int = 0
    duplicates: int = 0
    refused: list[Refused] = field(default_factory=list)


async def store_chunk(organization_id: uuid.UUID, lines: list[Line], *, actor: str) -> Stored:
    """Store one chunk of checked lines in one transaction."""
    out = Stored()
    if not lines:
        return out
    known, by_external = await customers_named(
        organization_id, (x.customer_id for x in lines), (x.external_id for x in lines)
    )
    records: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for x in lines:
        cid = by_external.get(x.external_id) if x.external_id else as_uuid(x.customer_id or "")
        if cid is None or (x.external_id is None and cid not in known):
            who = f"with externalId {x.external_id!r}" if x.external_id else repr(x.customer_id)
            out.refused.append(
                Refused(x.line, Reject.NOT_FOUND, f"No customer {who} in your organization.")
            )
            continue
        if x.idempotency_key in seen:  # a second line with a key: a duplicate
            out.duplicates += 1
            continue
        seen.add(x.idempotency_key)
        records.append((cid, x.name, x.occurred_at, x.idempotency_key, x.properties, x.line))
    if not records:
        return out
    await storage.ensure_weeks({storage.week_of(x.occurred_at) for x in lines})
    async with transaction() as tx:
        raw: Any = tx._connection  # type: ignore[attr-defined]
        await raw.execute(_STAGE)
        await raw.copy_records_to_table(
            "usage_import_stage",
            records=records,
            columns=["customer_id", "name", "occurred_at", "idempotency_key", "properties", "line"],
        )
        rows = await raw.fetch(_STORE, organization_id)
        out.accepted = sum(int(r["n"]) for r in rows)
        out.duplicates += len(records) - out.accepted
        if rows:
            await outbox.record(
                organization_id=organization_id,
                customer_id=None,
                events=[(INGESTED, _summary(rows))],
                actor=actor,
            )
    return out


def _summary(rows: list[Any]) -> dict[str, Any]:
    """The `usage.event_ingested` payload of a chunk (as `service.summary` shapes it)."""
    per: dict[uuid.UUID, dict[str, int]] = {}
    last: dict[uuid.UUID, datetime] = {}
    for r in rows:
        per.setdefault(r["customer_id"], {})[r["name"]] = int(r["n"])
        last[r["customer_id"]] = max(last.get(r["customer_id"], r["last_at"]), r["last_at"])
    return {
        "accepted": sum(sum(n.values()) for n in per.values()),
        "imported": True,
        "customers": [
            {"customerId": str(c), "names": names, "lastAt": last[c].isoformat()}
            for c, names in per.items()
        ],
    }
