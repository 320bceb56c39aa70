"""Automation mutations: each opens the one transaction of its unit of work; admin changes
are audited inside it."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.audit import service as audit
from app.automation import service
from app.db import transaction
from app.deliveries import service as deliveries
from app.graphql.automation.outbound import CsmTask, Info, WebhookDelivery, WebhookEndpoint
from app.graphql.automation.types import AutomationRule
from app.notifications import service as notifications


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a rule from its definition (admin); refused with every reason "
        "(`INVALID_RULE`, `extensions.reasons`)."
    )
    async def create_automation_rule(
        self, info: Info, definition: JSON, enabled: bool = False
    ) -> AutomationRule:
        async with transaction():
            row = await service.create_rule(
                info.context.viewer, definition=definition, enabled=enabled
            )
        return AutomationRule.of(row)

    @strawberry.mutation(description="Replace a rule's definition: its next version (admin).")
    async def update_automation_rule(
        self, info: Info, id: strawberry.ID, definition: JSON
    ) -> AutomationRule:
        async with transaction():
            row = await service.update_rule(info.context.viewer, id, definition=definition)
        return AutomationRule.of(row)

    @strawberry.mutation(description="Turn a rule on or off (admin).")
    async def set_automation_rule_enabled(
        self, info: Info, id: strawberry.ID, enabled: bool
    ) -> AutomationRule:
        async with transaction():
            row = await service.set_enabled(info.context.viewer, id, enabled=enabled)
        return AutomationRule.of(row)

    @strawberry.mutation(description="Delete a rule (admin); its runs stay in the statistics.")
    async def delete_automation_rule(self, info: Info, id: strawberry.ID) -> AutomationRule:
        async with transaction():
            row = await service.delete_rule(info.context.viewer, id)
        return AutomationRule.of(row)

    @strawberry.mutation(
        description="Register a webhook endpoint for event types (or `*`) with its own "
        "signing secret (admin)."
    )
    async def create_webhook_endpoint(
        self, info: Info, url: str, event_types: list[str], description: str = ""
    ) -> WebhookEndpoint:
        viewer = info.context.viewer
        async with transaction():
            row = await deliveries.create_endpoint(
                viewer, url=url, event_types=event_types, description=description
            )
            await audit.record(
                viewer=viewer,
                action="webhook_endpoint.create",
                target_type="WebhookEndpoint",
                target_id=row.id,
                after=deliveries.endpoint_audit(row),
            )
        return WebhookEndpoint.of(row)

    @strawberry.mutation(description="Change an endpoint's URL, event types or enabled flag.")
    async def update_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,
        url: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        viewer = info.context.viewer
        async with transaction():
            row, before = await deliveries.update_endpoint(
                viewer, id, url=url, event_types=event_types, enabled=enabled
            )
            await audit.record(
                viewer=viewer,
                action="webhook_endpoint.update",
                target_type="WebhookEndpoint",
                target_id=row.id,
                before=before,
                after=deliveries.endpoint_audit(row),
            )
        return WebhookEndpoint.of(row)

    @strawberry.mutation(
        description="Rotate an endpoint's secret; the old one keeps signing for 24 hours."
    )
    async def rotate_webhook_endpoint_secret(
        self, info: Info, id: strawberry.ID
    ) -> WebhookEndpoint:
        viewer = info.context.viewer
        async with transaction():
            row = await deliveries.rotate_secret(viewer, id)
            await audit.record(
                viewer=viewer,
                action="webhook_endpoint.rotate_secret",
                target_type="WebhookEndpoint",
                target_id=row.id,
            )
        return WebhookEndpoint.of(row)

    @strawberry.mutation(description="Remove an endpoint and its deliveries (admin).")
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        viewer = info.context.viewer
        async with transaction():
            row = await deliveries.delete_endpoint(viewer, id)
            await audit.record(
                viewer=viewer,
                action="webhook_endpoint.delete",
                target_type="WebhookEndpoint",
                target_id=row.id,
                before=deliveries.endpoint_audit(row),
            )
        return strawberry.ID(str(row.id))

    @strawberry.mutation(
        description="Send a dead (or disabled) webhook again with the same `webhook-id` (admin)."
    )
    async def replay_webhook_delivery(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        viewer = info.context.viewer
        async with transaction():
            row = await deliveries.replay(viewer, id)
            await audit.record(
                viewer=viewer,
                action="webhook_delivery.replay",
                target_type="Delivery",
                target_id=row.id,
            )
        return WebhookDelivery.of(row)

    @strawberry.mutation(
        description="Mark the caller's notifications read (all of them without `ids`); "
        "returns how many changed."
    )
    async def mark_notifications_read(
        self, info: Info, ids: list[strawberry.ID] | None = None
    ) -> int:
        async with transaction():
            return await notifications.mark_read(info.context.viewer, ids)

    @strawberry.mutation(description="Mark a CSM follow-up task done (operators).")
    async def complete_csm_task(self, info: Info, id: strawberry.ID) -> CsmTask:
        async with transaction():
            row = await notifications.complete_csm_task(info.context.viewer, id)
        return CsmTask.of(row)
