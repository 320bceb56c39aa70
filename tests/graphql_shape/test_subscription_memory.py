"""A long-lived subscription keeps flat memory, event after event."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncGenerator

import strawberry

from app.graphql.schema import FreshPerEvent

EVENTS = 3000


@strawberry.type
class Item:
    n: int
    label: str


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def items(self) -> AsyncGenerator[Item, None]:
        for n in range(EVENTS):
            yield Item(n=n, label=f"item {n}")


async def retained_bytes_per_event(schema: strawberry.Schema) -> float:
    stream = await schema.subscribe("subscription { items { n label } }")
    assert not isinstance(stream, strawberry.types.ExecutionResult)
    seen = 0
    async for result in stream:
        assert result.errors is None
        seen += 1
        if seen == 500:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (EVENTS - 500)


async def test_fresh_per_event_executor_retains_nothing_per_event() -> None:
    leaky = strawberry.Schema(query=Query, subscription=Subscription)
    fixed = strawberry.Schema(
        query=Query, subscription=Subscription, execution_context_class=FreshPerEvent
    )
    grows = await retained_bytes_per_event(leaky)
    flat = await retained_bytes_per_event(fixed)
    print(f"retained per event: shared memo {grows:.0f} B, fresh memo {flat:.0f} B")
    assert flat < 50
    # When graphql-core stops sharing the memo this stops holding: drop FreshPerEvent then.
    assert grows > 10 * max(flat, 1)
