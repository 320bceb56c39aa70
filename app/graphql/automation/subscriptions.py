"""The `notifications` subscription: the caller's own inbox, live."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.accounts.models import Role
from app.events import feed
from app.graphql.automation.outbound import Info, Notification

CREATED = "notification.created"


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="New notifications for the caller: a customer's own, or an operator's."
    )
    async def notifications(self, info: Info) -> AsyncGenerator[Notification, None]:
        viewer = info.context.viewer
        hub, org = info.context.hub, viewer.organization_id
        if viewer.role is Role.CUSTOMER:
            assert viewer.customer_id is not None
            mine = str(viewer.customer_id)
            async for event, _ in feed.customer_events(hub, org, viewer.customer_id, after=None):
                if event.type == CREATED and event.payload.get("customerId") == mine:
                    yield Notification.of_event(event)
            return
        me = viewer.subject.lower()
        async for event in feed.activity_events(hub, org):
            if event.type == CREATED and event.payload.get("operator") == me:
                yield Notification.of_event(event)
