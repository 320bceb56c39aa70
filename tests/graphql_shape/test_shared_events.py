"""Subscribers of the same event with the same document share one execution, and only then."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from app.events.channels import Published
from app.graphql.events.sharing import shared_payload
from app.graphql.events.types import WorkflowEvent
from app.graphql.schema import DocumentCache, FreshPerEvent

CUSTOMERS = [uuid.uuid4(), uuid.uuid4()]
EVENTS = [
    Published(
        id=9_000_000 + n,
        organization_id=uuid.uuid4(),
        customer_id=CUSTOMERS[n % 2],
        sequence=n + 1,
        type="task.progressed",
        payload={"task": f"t{n}", "progress": n, "workflow": {"points": n}},
        actor=None,
        created_at=datetime.now(UTC),
    )
    for n in range(6)
]


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self, customer: int) -> AsyncGenerator[WorkflowEvent, None]:
        for event in EVENTS:
            if event.customer_id == CUSTOMERS[customer]:
                yield shared_payload(("test", event.id), WorkflowEvent.of, event, replayed=False)


SCHEMA = strawberry.Schema(
    query=Query,
    subscription=Subscription,
    execution_context_class=FreshPerEvent,
    extensions=[lambda: DocumentCache(maxsize=16)],  # one parsed document per query text
)


async def collect(query: str, customer: int) -> list[object]:
    stream = await SCHEMA.subscribe(query, variable_values={"c": customer})
    assert not isinstance(stream, strawberry.types.ExecutionResult)
    return [result async for result in stream]


async def test_same_document_and_variables_share_one_result() -> None:
    query = "subscription($c: Int!) { events(customer: $c) { sequence taskKey points } }"
    a, b = await asyncio.gather(collect(query, 0), collect(query, 0))
    assert [r.data for r in a] == [r.data for r in b]  # type: ignore[attr-defined]
    shared = [x.data is y.data for x, y in zip(a, b, strict=True)]  # type: ignore[attr-defined]
    assert shared == [True, True, True], "executed once, handed to both"


async def test_other_variables_or_selection_get_their_own_result() -> None:
    narrow = "subscription($c: Int!) { events(customer: $c) { sequence } }"
    wide = "subscription($c: Int!) { events(customer: $c) { sequence taskKey } }"
    mine, theirs, other_shape = await asyncio.gather(
        collect(wide, 0), collect(wide, 1), collect(narrow, 0)
    )
    assert [r.data["events"]["taskKey"] for r in mine] == ["t0", "t2", "t4"]  # type: ignore[attr-defined]
    assert [r.data["events"]["taskKey"] for r in theirs] == ["t1", "t3", "t5"]  # type: ignore[attr-defined]
    assert [r.data["events"] for r in other_shape] == [  # type: ignore[attr-defined]
        {"sequence": 1},
        {"sequence": 3},
        {"sequence": 5},
    ]
