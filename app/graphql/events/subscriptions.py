"""Subscriptions: tenant channels chosen from the viewer, never from the client alone."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.accounts.models import Role
from app.events import feed
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
        "`customerId` for the whole organization."
    )
    async def celebrations(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> AsyncGenerator[CelebrationEvent, None]:
        viewer = info.context.viewer
        hub, org = info.context.hub, viewer.organization_id
        if viewer.is_operator and customer_id is None:
            async for event in feed.activity_events(hub, org):
                if event.type == "celebration":
                    yield shared_payload(("celebration", event.id), CelebrationEvent.of, event)
            return
        cid = viewer.customer_scope(customer_id)
        await info.context.loaders.customer_of(cid)
        async for event, _ in feed.customer_events(hub, org, cid, after=None):
            if event.type == "celebration":
                yield shared_payload(("celebration", event.id), CelebrationEvent.of, event)

    @strawberry.subscription(description="The organization-wide activity feed (operators).")
    async def activity(self, info: Info) -> AsyncGenerator[ActivityEvent, None]:
        viewer = info.context.viewer
        viewer.require(Role.ADMIN, Role.CSM)
        async for event in feed.activity_events(info.context.hub, viewer.organization_id):
            yield shared_payload(("activity", event.id), ActivityEvent.of, event)
