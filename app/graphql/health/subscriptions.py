"""Health subscriptions: notable moves only (a level change, or the model's 5+ points)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry

from app.accounts.models import Role
from app.errors import NotFound
from app.events import feed
from app.graphql.events.sharing import shared_payload
from app.graphql.health.types import HealthEvent, HealthJob, Info
from app.health import recompute, service
from app.health.models import JobStatus

JOB_POLL_SECONDS = 0.5


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="A customer's score moved notably (`health.changed`). A CUSTOMER may "
        "follow its own only when the organization shows scores to customers."
    )
    async def health_changed(
        self, info: Info, customer_id: strawberry.ID | None = None
    ) -> AsyncGenerator[HealthEvent, None]:
        viewer = info.context.viewer
        cid = viewer.customer_scope(customer_id)
        await service.check_visible(viewer, cid)
        if await info.context.loaders.customer.load(cid) is None:
            raise NotFound(f"No customer with id {cid}.", customer=str(cid))
        async for event, _ in feed.customer_events(
            info.context.hub, viewer.organization_id, cid, after=None
        ):
            if event.type == "health.changed":
                yield shared_payload(("health", event.id), HealthEvent.of, event)

    @strawberry.subscription(
        description="Every notable move in the organization (operators); `levelChangesOnly` "
        "keeps level changes alone."
    )
    async def health_changes(
        self, info: Info, level_changes_only: bool = False
    ) -> AsyncGenerator[HealthEvent, None]:
        viewer = info.context.viewer
        viewer.require(Role.ADMIN, Role.CSM)
        wanted = "health.level_changed" if level_changes_only else "health.changed"
        async for event in feed.activity_events(info.context.hub, viewer.organization_id):
            if event.type == wanted:
                yield shared_payload(("health", event.id), HealthEvent.of, event)

    @strawberry.subscription(description="A recompute job's progress until it ends (operators).")
    async def health_job_progress(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[HealthJob, None]:
        viewer = info.context.viewer
        last: tuple[object, ...] | None = None
        while True:
            row = await recompute.get_job(viewer, id)
            seen = (row.status, row.done, row.total)
            if seen != last:
                last = seen
                yield HealthJob.of(row)
            if row.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return
            await asyncio.sleep(JOB_POLL_SECONDS)
