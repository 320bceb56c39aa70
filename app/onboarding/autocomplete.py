"""Tasks that complete themselves: a consumer of the event spine that completes open tasks
whose success criterion the customer's usage now meets.

Usage batches name their customers and event names; an unlocked task or stage (or a resumed
workflow) re-checks its customer, so events sent while a task was locked complete it as
soon as it unlocks. Counts come from the daily rollups, committed with the events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from app.events.channels import Published
from app.events.consumers import Consumer
from app.kit.clock import utcnow
from app.kit.tenancy import Organization
from app.onboarding import system
from app.usage.service import INGESTED

NAME = "onboarding.success_criteria"
TYPES = (INGESTED, "task.unlocked", "stage.unlocked", "workflow.resumed")


async def handle(events: Sequence[Published]) -> None:
    """Complete what the events make complete, one customer at a time, in commit order."""
    wanted: dict[uuid.UUID, dict[uuid.UUID, tuple[set[str] | None, int]]] = defaultdict(dict)
    for e in events:
        per = wanted[e.organization_id]
        if e.type == INGESTED:
            for c in e.payload.get("customers") or ():
                cid = uuid.UUID(c["customerId"])
                names, _ = per.get(cid, (set(), e.id))
                if names is not None:
                    names.update(c.get("names") or {})
                per[cid] = (names, e.id)
        elif e.customer_id is not None:
            per[e.customer_id] = (None, e.id)
    now = utcnow()
    for org, per in wanted.items():
        every = [cid for cid, (names, _) in per.items() if names is None]
        named = {cid: names for cid, (names, _) in per.items() if names is not None}
        all_names = sorted({n for names in named.values() for n in names})
        found = set(await system.customers_with_open_criteria(org, every, None)) if every else set()
        if named:
            found |= set(await system.customers_with_open_criteria(org, list(named), all_names))
        for cid in sorted(found):
            await system.complete_by_usage(Organization(org), cid, cause=per[cid][1], now=now)


CONSUMER = Consumer(NAME, handle, types=TYPES, start="now")
