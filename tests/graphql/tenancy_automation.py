"""Tenancy cases of the automation fields (imported by test_tenancy once its case classes
exist): the victim organization has a rule that ran, a notification, a CSM task, a webhook
endpoint with a dead delivery and an email; neither attacker may see or change any of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.automation.models import AutomationRule, AutomationRun
from app.db import transaction
from app.deliveries import service as deliveries
from app.deliveries.models import Delivery, DeliveryKind, DeliveryStatus, WebhookEndpoint
from app.notifications.models import CsmTask, Notification
from tests.automation.support import Drain, add_rule, definition
from tests.graphql.test_tenancy import (
    OTHER_ADMIN,
    OTHER_CUSTOMER,
    Case,
    Empty,
    Own,
    Refused,
    World,
    for_both,
)


@dataclass
class VictimAutomation:
    rule_id: str
    run_id: str
    endpoint_id: str
    secret: str
    delivery_id: str
    email_id: str
    notification_id: str
    csm_task_id: str

    def secrets(self) -> set[str]:
        return set(vars(self).values())


async def seed(w: World) -> VictimAutomation:
    """Automation data of the victim organization, made by its own engine."""
    async with transaction():
        endpoint = await deliveries.create_endpoint(
            w.victim.admin, url="https://crm.victim.example/hook", event_types=["*"]
        )
    rule = await add_rule(
        w.victim,
        definition(
            "customer.created",
            {"type": "notify", "title": "Hello {{ customer.name }}"},
            {"type": "create_task", "title": "Call {{ customer.name }}"},
            {"type": "webhook", "event": "customer.signed_up"},
            {"type": "send_email", "subject": "Hi", "text": "Hi {{ customer.name }}"},
            conditions={"fact": "customer.id", "op": "eq", "value": str(w.customer.id)},
        ),
    )
    await Drain(w.victim)()
    run = await AutomationRun.get(rule_id=rule.id)
    hook = await Delivery.get(endpoint_id=endpoint.id)
    await Delivery.filter(id=hook.id).update(status=DeliveryStatus.DEAD, attempts=8)
    email = await Delivery.get(organization_id=w.victim.id, kind=DeliveryKind.EMAIL)
    note = await Notification.get(customer_id=w.customer.id)
    task = await CsmTask.get(customer_id=w.customer.id)
    return VictimAutomation(
        rule_id=str(rule.id),
        run_id=str(run.id),
        endpoint_id=str(endpoint.id),
        secret=endpoint.secret,
        delivery_id=str(hook.id),
        email_id=str(email.id),
        notification_id=str(note.id),
        csm_task_id=str(task.id),
    )


async def snapshot(w: World) -> dict[str, Any]:
    org = w.victim.id
    return {
        "rules": await AutomationRule.filter(organization_id=org).order_by("id").values(),
        "runs": await AutomationRun.filter(organization_id=org).order_by("id").values(),
        "endpoints": await WebhookEndpoint.filter(organization_id=org).order_by("id").values(),
        "deliveries": await Delivery.filter(organization_id=org).order_by("id").values(),
        "notifications": await Notification.filter(organization_id=org).order_by("id").values(),
        "csm_tasks": await CsmTask.filter(organization_id=org).order_by("id").values(),
    }


def va(w: World) -> VictimAutomation:
    return w.automation  # type: ignore[attr-defined, no-any-return]


RULE = "id key name enabled version trigger actions definition versions { version definition }"
RUN = "id ruleId customerId trigger status conditions { fact seen } actions { type status result }"
ENDPOINT = "id url eventTypes enabled"
RULE_DEF = {
    "name": "Probe",
    "trigger": {"type": "event", "event": "customer.created"},
    "actions": [{"type": "notify", "title": "{{ customer.email }}"}],
}


async def only_other_org_rules(data: Any, w: World) -> None:
    rows = await AutomationRule.filter(organization_id=w.other.id).values_list("id", flat=True)
    assert {r["id"] for r in data} == {str(i) for i in rows}


async def rule_in_other_org(data: Any, w: World) -> None:
    row = await AutomationRule.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]


async def endpoint_in_other_org(data: Any, w: World) -> None:
    row = await WebhookEndpoint.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]


async def nothing_seen(data: Any, w: World) -> None:
    assert data["customersSeen"] <= len(await w.other.org.customers.all().values_list("id"))
    assert data["triggered"] == 0 or data["customersSeen"] > 0


async def nothing_marked(data: Any, w: World) -> None:
    assert data == 0


def rule_var(w: World) -> dict[str, Any]:
    return {"id": va(w).rule_id}


CASES: list[Case] = [
    Case(
        "Query.automationRules",
        "automationRules",
        f"{{ automationRules {{ {RULE} }} }}",
        lambda w: {},
        {OTHER_ADMIN: Own(only_other_org_rules), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.automationRule",
        "automationRule by the victim's id",
        f"query($id: ID!) {{ automationRule(id: $id) {{ {RULE} }} }}",
        rule_var,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.ruleExecutions",
        "ruleExecutions of the victim's rule and customer",
        "query($id: ID, $cid: ID) { ruleExecutions(ruleId: $id, customerId: $cid, first: 100) "
        f"{{ totalCount edges {{ node {{ {RUN} }} }} }} }}",
        lambda w: {"id": va(w).rule_id, "cid": str(w.customer.id)},
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.automationStats",
        "automationStats of the victim's rule",
        "query($id: ID) { automationStats(ruleId: $id, period: ALL_TIME) { ruleId name runs "
        "actions { path type } } }",
        rule_var,
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.testAutomationRule",
        "testAutomationRule of the victim's rule on the victim",
        "query($id: ID, $cid: ID!) { testAutomationRule(ruleId: $id, customerId: $cid) "
        "{ wouldFire actions { type content } } }",
        lambda w: {"id": va(w).rule_id, "cid": str(w.customer.id)},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.testAutomationRule",
        "testAutomationRule of an own definition on the victim",
        "query($d: JSON, $cid: ID!) { testAutomationRule(definition: $d, customerId: $cid, "
        'event: {type: "customer.created"}) { wouldFire actions { content } } }',
        lambda w: {"d": RULE_DEF, "cid": str(w.customer.id)},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.backtestAutomationRule",
        "backtestAutomationRule over everything",
        'query($d: JSON!) { backtestAutomationRule(definition: $d, from: "2000-01-01T00:00:00Z")'
        " { eventsScanned customersSeen triggered notTriggered } }",
        lambda w: {"d": RULE_DEF},
        {OTHER_ADMIN: Own(nothing_seen), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.webhookEndpoints",
        "webhookEndpoints",
        f"{{ webhookEndpoints {{ {ENDPOINT} }} }}",
        lambda w: {},
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.webhookDeliveries",
        "webhookDeliveries of the victim's endpoint",
        "query($id: ID) { webhookDeliveries(endpointId: $id) { totalCount "
        "edges { node { id messageId payload } } } }",
        lambda w: {"id": va(w).endpoint_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.webhookDeliveries",
        "webhookDeliveries in the dead letter",
        "{ webhookDeliveries(status: DEAD) { totalCount edges { node { id payload } } } }",
        lambda w: {},
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.sentEmails",
        "sentEmails",
        "{ sentEmails(first: 100) { totalCount edges { node { id to subject text } } } }",
        lambda w: {},
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.notifications",
        "notifications",
        "{ notifications { id title customerId } }",
        lambda w: {},
        for_both(Empty()),
    ),
    Case(
        "Query.csmTasks",
        "csmTasks",
        "{ csmTasks { id title customerId } }",
        lambda w: {},
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.createAutomationRule",
        "createAutomationRule",
        f"mutation($d: JSON!) {{ createAutomationRule(definition: $d) {{ {RULE} }} }}",
        lambda w: {"d": RULE_DEF},
        {OTHER_ADMIN: Own(rule_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateAutomationRule",
        "updateAutomationRule of the victim's rule",
        f"mutation($id: ID!, $d: JSON!) {{ updateAutomationRule(id: $id, definition: $d) "
        f"{{ {RULE} }} }}",
        lambda w: {"id": va(w).rule_id, "d": RULE_DEF},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.setAutomationRuleEnabled",
        "disable the victim's rule",
        "mutation($id: ID!) { setAutomationRuleEnabled(id: $id, enabled: false) { id enabled } }",
        rule_var,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.deleteAutomationRule",
        "delete the victim's rule",
        "mutation($id: ID!) { deleteAutomationRule(id: $id) { id deleted } }",
        rule_var,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.createWebhookEndpoint",
        "createWebhookEndpoint with the victim's URL",
        'mutation { createWebhookEndpoint(url: "https://crm.victim.example/hook", '
        f'eventTypes: ["*"]) {{ {ENDPOINT} }} }}',
        lambda w: {},
        {OTHER_ADMIN: Own(endpoint_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateWebhookEndpoint",
        "redirect the victim's endpoint",
        'mutation($id: ID!) { updateWebhookEndpoint(id: $id, url: "https://evil.example") '
        f"{{ {ENDPOINT} }} }}",
        lambda w: {"id": va(w).endpoint_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.rotateWebhookEndpointSecret",
        "rotate the victim's secret",
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { id secret } }",
        lambda w: {"id": va(w).endpoint_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.deleteWebhookEndpoint",
        "delete the victim's endpoint",
        "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
        lambda w: {"id": va(w).endpoint_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.replayWebhookDelivery",
        "replay the victim's dead delivery",
        "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id status payload } }",
        lambda w: {"id": va(w).delivery_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.markNotificationsRead",
        "mark the victim's notification read",
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }",
        lambda w: {"ids": [va(w).notification_id]},
        for_both(Own(nothing_marked)),
    ),
    Case(
        "Mutation.completeCsmTask",
        "complete the victim's CSM task",
        "mutation($id: ID!) { completeCsmTask(id: $id) { id status } }",
        lambda w: {"id": va(w).csm_task_id},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
]
