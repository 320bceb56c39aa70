"""`ingestEvents`: a batch of usage events from the organization's servers."""

from __future__ import annotations

from collections import Counter
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from app.db import transaction
from app.graphql.customers.types import Info
from app.usage import service
from app.usage.rules import MAX_BATCH, ItemStatus, event_from_json


@strawberry.enum(description="What happened to one item of an ingested batch.")
class IngestStatus(Enum):
    ACCEPTED = ItemStatus.ACCEPTED.value
    DUPLICATE = ItemStatus.DUPLICATE.value
    REJECTED = ItemStatus.REJECTED.value


EVENT_SHAPE = (
    "Each event is a JSON object: `customerId` (our id) or `externalId` (yours), `name` "
    "(matching [a-z][a-z0-9_.]{0,63}), `occurredAt` (ISO 8601 with a UTC offset, at most 5 "
    "minutes ahead and within retention), `idempotencyKey` (unique per event; a resend "
    "answers DUPLICATE) and optional `properties` (a JSON object, at most 8 KiB, nested at "
    "most 5 deep). Items are JSON so that an item of the wrong shape is REJECTED "
    "(MALFORMED_ITEM) on its own instead of failing the whole call."
)


@strawberry.input(description=f"At most {MAX_BATCH} events, each answered on its own.")
class IngestEventsInput:
    events: list[JSON] = strawberry.field(description=EVENT_SHAPE)
    create_missing_customers: bool = strawberry.field(
        default=False,
        description="Create a customer (with its default workflow) for an unknown `externalId`.",
    )


@strawberry.type(description="The answer to one item, in the order sent.")
class IngestItem:
    index: int
    status: IngestStatus
    customer_id: strawberry.ID | None
    code: str | None = strawberry.field(description="Why it was REJECTED (a stable code).")
    reason: str | None = strawberry.field(description="Why it was REJECTED, in words.")


_STATUS = {s.value: s for s in IngestStatus}


def _item(i: service.ItemResult) -> IngestItem:
    return IngestItem(
        index=i.index,
        status=_STATUS[i.status.value],
        customer_id=strawberry.ID(str(i.customer_id)) if i.customer_id else None,
        code=i.code,
        reason=i.reason,
    )


@strawberry.type(description="The answer to a batch.")
class IngestEventsPayload:
    accepted: int
    duplicates: int
    rejected: int
    all_items: strawberry.Private[list[service.ItemResult]]

    @strawberry.field(
        description="Each item's answer in the order sent; `only` keeps those with these "
        "statuses (e.g. [DUPLICATE, REJECTED], so a clean batch answers in a few bytes)."
    )
    def items(self, only: list[IngestStatus] | None = None) -> list[IngestItem]:
        if only is None:
            return [_item(i) for i in self.all_items]
        wanted = {ItemStatus(s.value) for s in only}
        return [_item(i) for i in self.all_items if i.status in wanted]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description=f"Ingest up to {MAX_BATCH} usage events (an API key with the EVENTS_INGEST "
        "scope, or an ADMIN). Each item is ACCEPTED, DUPLICATE or REJECTED with a code; one bad "
        "item never rejects the others."
    )
    async def ingest_events(self, info: Info, input: IngestEventsInput) -> IngestEventsPayload:
        caller = info.context.caller
        events = [event_from_json(e) for e in input.events]
        async with transaction():
            done = await service.ingest_as(
                caller,
                events=events,
                create_missing=input.create_missing_customers,
                default_retention_days=info.context.settings.event_retention_days,
            )
        counts = Counter(i.status for i in done.items)
        return IngestEventsPayload(
            accepted=counts[ItemStatus.ACCEPTED],
            duplicates=counts[ItemStatus.DUPLICATE],
            rejected=counts[ItemStatus.REJECTED],
            all_items=done.items,
        )
