"""Subscriptions: tenant channels chosen from the viewer, never from the client alone."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial

import strawberry

from app.accounts.models import Role
from app.events import feed, orgfeed
from app.graphql.context import Context
from app.graphql.events.sharing import shared_payload
from app.graphql.events.types import ActivityEvent, CelebrationEvent, WorkflowEvent

Info = strawberry.Info[Context, None]


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Task, stage, points and workflow changes of one customer, with fresh figures. "
        "With `afterSequence`, missed events are replayed first, then it continues live; "
        "an `afterSequence` above the customer's latest sequence is refused with "
        "SEQUENCE_AHEAD (`extensions.latest` holds the latest)."
    )
    async def workflow_progress(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        after_sequence: int | None = None,
    ) -> AsyncGenerator[WorkflowEvent, None]:
        viewer = info.context.viewer
        cid = viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        async for event, replayed in feed.customer_events(
            info.context.hub, viewer.organization_id, cid, after=after_sequence
        ):
            yield shared_payload(
                ("progress", event.id, replayed), WorkflowEvent.of, event, replayed=replayed
            )

    @strawberry.subscription(
        description="Stage completed, badge earned, workflow completed. Operators may omit "
        "`customerId` for the whole organization. To resume after a reconnect without losing "
        "any: a customer's feed with `afterSequence` (the last `sequence` seen), the whole "
        "organization's with `after` (the last `cursor` seen); missed celebrations come first "
        "with `replayed: true`."
    )
    async def celebrations(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        after_sequence: int | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[CelebrationEvent, None]:
        viewer = info.context.viewer
        hub, org = info.context.hub, viewer.organization_id
        if viewer.is_operator and customer_id is None:
            cursor = orgfeed.decode_cursor(after) if after is not None else None
            async for event, replayed in orgfeed.organization_events(hub, org, after=cursor):
                if event.type == "celebration":
                    yield shared_payload(
                        ("celebration", event.id, True, replayed),
                        partial(CelebrationEvent.of, org_wide=True, replayed=replayed),
                        event,
                    )
            return
        cid = viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        async for event, replayed in feed.customer_events(hub, org, cid, after=after_sequence):
            if event.type == "celebration":
                yield shared_payload(
                    ("celebration", event.id, False, replayed),
                    partial(CelebrationEvent.of, replayed=replayed),
                    event,
                )

    @strawberry.subscription(
        description="The organization-wide activity feed (operators). Each event carries a "
        "`cursor`; after a reconnect, subscribe with `after: <last cursor>` to receive "
        "exactly the events you missed (`replayed: true`, as far as "
        "LIFTOFF_OUTBOX_RETENTION_HOURS keeps them), then live ones."
    )
    async def activity(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[ActivityEvent, None]:
        viewer = info.context.viewer
        viewer.require(Role.ADMIN, Role.CSM)
        cursor = orgfeed.decode_cursor(after) if after is not None else None
        async for event, replayed in orgfeed.organization_events(
            info.context.hub, viewer.organization_id, after=cursor
        ):
            yield shared_payload(
                ("activity", event.id, replayed),
                partial(ActivityEvent.of, replayed=replayed),
                event,
            )
