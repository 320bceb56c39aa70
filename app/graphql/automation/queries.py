"""Automation queries: rules, runs, dry runs, backtests, statistics, and what was sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.automation import insight, service, stats
from app.automation.models import RunStatus
from app.deliveries import service as deliveries
from app.deliveries.models import DeliveryKind, DeliveryStatus
from app.graphql.automation.outbound import (
    CsmTask,
    EmailConnection,
    Info,
    Notification,
    WebhookDeliveryConnection,
    WebhookEndpoint,
)
from app.graphql.automation.types import (
    AutomationRule,
    AutomationRuleStats,
    AutomationTestResult,
    BacktestResult,
    RuleExecutionConnection,
)
from app.kit.clock import utcnow
from app.notifications import service as notifications
from app.notifications.models import CsmTaskStatus


@strawberry.enum(description="The window of `automationStats`.")
class StatsPeriod(Enum):
    LAST_24_HOURS = 1
    LAST_7_DAYS = 7
    LAST_30_DAYS = 30
    LAST_90_DAYS = 90
    ALL_TIME = 0


def _since(period: StatsPeriod) -> datetime:
    if period is StatsPeriod.ALL_TIME:
        return datetime(1970, 1, 1).astimezone()
    return utcnow() - timedelta(days=period.value)


@strawberry.input(description="A hypothetical triggering event for a dry run.")
class TestEventInput:
    type: str
    payload: JSON | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The organization's automation rules (operators).")
    async def automation_rules(
        self, info: Info, enabled: bool | None = None
    ) -> list[AutomationRule]:
        rows = await service.list_rules(info.context.viewer, enabled=enabled)
        return [AutomationRule.of(r) for r in rows]

    @strawberry.field(description="One automation rule (operators).")
    async def automation_rule(self, info: Info, id: strawberry.ID) -> AutomationRule:
        return AutomationRule.of(await service.read_rule(info.context.viewer, id))

    @strawberry.field(description="Runs of rules with each action's outcome (operators).")
    async def rule_executions(
        self,
        info: Info,
        rule_id: strawberry.ID | None = None,
        status: RunStatus | None = None,
        customer_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> RuleExecutionConnection:
        page = await service.list_runs(
            info.context.viewer,
            rule_id=rule_id,
            status=status,
            customer_id=customer_id,
            first=first,
            after=after,
        )
        return await RuleExecutionConnection.of(page)

    @strawberry.field(
        description="Per rule and per action: runs, success rate, failures by reason, p50/p90 "
        "duration, last run and goal completion rate (operators)."
    )
    async def automation_stats(
        self,
        info: Info,
        rule_id: strawberry.ID | None = None,
        period: StatsPeriod = StatsPeriod.LAST_30_DAYS,
    ) -> list[AutomationRuleStats]:
        rows = await stats.automation_stats(
            info.context.viewer, rule_id=rule_id, since=_since(period)
        )
        return [AutomationRuleStats.of(r) for r in rows]

    @strawberry.field(
        description="Dry run of a rule (by id, or a definition) for a customer: which "
        "conditions hold and why, and the actions with their rendered content. No effects."
    )
    async def test_automation_rule(
        self,
        info: Info,
        customer_id: strawberry.ID,
        rule_id: strawberry.ID | None = None,
        definition: JSON | None = None,
        event: TestEventInput | None = None,
    ) -> AutomationTestResult:
        result = await insight.dry_run(
            info.context.viewer,
            rule_id=rule_id,
            definition=definition,
            customer_id=customer_id,
            event={"type": event.type, "payload": event.payload} if event else None,
        )
        return AutomationTestResult.of(result)

    @strawberry.field(
        description="Replay past events through a definition: who it would have fired for, and "
        "how often its goal followed, against the customers it would not have fired for."
    )
    async def backtest_automation_rule(
        self,
        info: Info,
        definition: JSON,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime | None = None,
    ) -> BacktestResult:
        result = await insight.backtest(
            info.context.viewer, definition=definition, start=from_, end=to or utcnow()
        )
        return BacktestResult.of(result)

    @strawberry.field(description="Registered webhook endpoints (operators).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return [WebhookEndpoint.of(r) for r in await deliveries.list_endpoints(info.context.viewer)]

    @strawberry.field(
        description="Webhook deliveries by endpoint and status; DEAD is the dead letter (admin)."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: strawberry.ID | None = None,
        status: DeliveryStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        page = await deliveries.list_deliveries(
            info.context.viewer,
            kind=DeliveryKind.WEBHOOK,
            endpoint_id=endpoint_id,
            status=status,
            first=first,
            after=after,
        )
        return WebhookDeliveryConnection.of(page)

    @strawberry.field(
        description="Emails automation sent, or kept in the local mail outbox without SMTP (admin)."
    )
    async def sent_emails(
        self,
        info: Info,
        status: DeliveryStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> EmailConnection:
        page = await deliveries.list_deliveries(
            info.context.viewer, kind=DeliveryKind.EMAIL, status=status, first=first, after=after
        )
        return EmailConnection.of(page)

    @strawberry.field(description="The caller's own notifications, newest first.")
    async def notifications(self, info: Info, unread_only: bool = False) -> list[Notification]:
        rows = await notifications.list_notifications(info.context.viewer, unread_only=unread_only)
        return [Notification.of(r) for r in rows]

    @strawberry.field(description="Follow-up tasks of the customer-success team (operators).")
    async def csm_tasks(
        self, info: Info, assignee: str | None = None, status: CsmTaskStatus | None = None
    ) -> list[CsmTask]:
        rows = await notifications.list_csm_tasks(
            info.context.viewer, assignee=assignee, status=status
        )
        return [CsmTask.of(r) for r in rows]
