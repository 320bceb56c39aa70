"""Helpers of the automation tests: rules, draining the outbox through the engine, sending."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from app.automation import engine
from app.automation.models import ActionExecution, AutomationRule, AutomationRun
from app.automation.rules import path_key
from app.automation.service import create_rule
from app.db import transaction
from app.deliveries.sender import deliver_due
from app.events.channels import Published
from app.events.models import OutboxEvent
from app.settings import Settings
from tests.support.factories import Tenant


def definition(
    trigger: str | dict[str, Any], *actions: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """A rule definition with an event trigger (by type) or the given trigger."""
    t = {"type": "event", "event": trigger} if isinstance(trigger, str) else trigger
    return {
        "name": more.pop("name", f"rule {uuid.uuid4().hex[:6]}"),
        "trigger": t,
        "actions": list(actions),
        **more,
    }


async def add_rule(tenant: Tenant, raw: dict[str, Any], *, enabled: bool = True) -> AutomationRule:
    async with transaction():
        return await create_rule(tenant.admin, definition=raw, enabled=enabled)


class Drain:
    """Feeds an organization's outbox events to the engine, in batches, each in a transaction
    (what the automation consumer does), remembering how far it got."""

    def __init__(self, tenant: Tenant) -> None:
        self.org = tenant.id
        self.last = 0

    async def pending(self) -> list[Published]:
        rows = (
            await OutboxEvent.filter(organization_id=self.org, id__gt=self.last)
            .order_by("id")
            .values()
        )
        return [Published.of_row(r) for r in rows]

    async def __call__(self, rounds: int = 10) -> int:
        handled = 0
        for _ in range(rounds):
            events = await self.pending()
            if not events:
                break
            async with transaction():
                await engine.handle(events)
            self.last = events[-1].id
            handled += len(events)
        return handled


async def send_all(settings: Settings, *, rounds: int = 20) -> int:
    """Deliver everything due now, as the worker's delivery loop would."""
    sent = 0
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(rounds):
            n = await deliver_due(settings, client, on_final=engine.deliveries_finished)
            if not n:
                break
            sent += n
    return sent


async def runs_of(rule: AutomationRule) -> list[AutomationRun]:
    return await AutomationRun.filter(rule_id=rule.id).order_by("created_at")


async def actions_of(run: AutomationRun) -> list[ActionExecution]:
    rows = await ActionExecution.filter(run_id=run.id)
    return sorted(rows, key=lambda a: (a.created_at, path_key(a.path)))
