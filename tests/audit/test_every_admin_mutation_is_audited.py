"""Every administrative mutation writes an audit entry, and `auditLog` reads them (ADMIN).

The walk covers every Mutation field of the schema: a field is either an administrative
case below (run as the ADMIN, then at least one new audit entry must exist) or exempt with
the reason it is not administration. A new mutation without either fails the walk.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.accounts.apikeys import create_key
from app.accounts.models import Role
from app.accounts.signin import create_link, set_password
from app.audit.models import AuditEntry
from app.automation.service import create_rule
from app.db import transaction
from app.deliveries import service as deliveries
from app.deliveries.models import DeliveryKind, DeliveryStatus
from app.graphql.schema import build_schema
from app.health.definitions import bundled_default_text as bundled_health_model
from app.health.overrides import set_override
from app.health.recompute import recompute_customers
from app.health.versions import install_default
from app.kit.clock import utcnow
from app.milestones.definitions import bundled_default_text as milestones_default_text
from app.onboarding.templates import bundled_default_text
from tests.graphql.client import SETTINGS, error_codes, gql, tokens_of
from tests.support.factories import Tenant

PASSWORD = "a-long-enough-password"

EXEMPT = {
    "createCustomer": "a customer signing up is the product's own traffic, kept in the outbox",
    "updateTask": "task progress by customers and CSMs is the product's own traffic",
    "completeCsmTask": "a CSM ticking off a follow-up task is day-to-day work, not administration",
    "markNotificationsRead": "reading one's own notifications changes nothing administrative",
    "ingestEvents": "usage events are the product's own traffic, announced on the outbox",
}


@dataclass(frozen=True)
class Case:
    document: str
    variables: Callable[[Tenant, str], Awaitable[dict[str, Any]]]
    action: str  # the audit action (prefix) expected
    authenticated: bool = True


async def customer_id(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"cid": str((await tenant.customer()).id)}


async def admin_email(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"e": tenant.admin_operator.email}


async def a_link(tenant: Tenant, _: str) -> dict[str, Any]:
    async with transaction():
        secret, _role = await create_link(
            organization=tenant.org, email=tenant.admin_operator.email, created_by="test"
        )
    return {"s": secret}


async def a_key(tenant: Tenant, _: str) -> dict[str, Any]:
    async with transaction():
        row, _secret = await create_key(tenant.admin, name="to revoke")
    return {"k": str(row.id)}


async def nothing(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"d": bundled_default_text(), "s": tenant.csm.subject, "e": "new-op@example.com"}


async def milestone_set(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"d": milestones_default_text()}


RULE = {
    "name": "audit walk",
    "trigger": {"type": "event", "event": "customer.created"},
    "actions": [{"type": "notify", "to": "operators", "title": "New customer"}],
}


async def a_rule(tenant: Tenant, _: str) -> dict[str, Any]:
    async with transaction():
        rule = await create_rule(tenant.admin, definition=RULE)
    return {"id": str(rule.id), "d": {**RULE, "name": "audit walk, edited"}}


async def a_rule_definition(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"d": RULE}


async def an_endpoint(tenant: Tenant, _: str) -> dict[str, Any]:
    async with transaction():
        row = await deliveries.create_endpoint(
            tenant.admin, url="https://hooks.example.com/in", event_types=["*"]
        )
    return {"id": str(row.id)}


async def a_dead_delivery(tenant: Tenant, _: str) -> dict[str, Any]:
    endpoint = await an_endpoint(tenant, _)
    async with transaction():
        row = await deliveries.enqueue(
            organization_id=tenant.id,
            kind=DeliveryKind.WEBHOOK,
            key=f"audit-{uuid.uuid4()}",
            recipient="https://hooks.example.com/in",
            event_type="customer.created",
            payload={"type": "customer.created", "data": {}},
            endpoint_id=uuid.UUID(endpoint["id"]),
        )
        row.status = DeliveryStatus.DEAD
        await row.save(update_fields=["status"])
    return {"id": str(row.id)}


async def a_health_model(tenant: Tenant, _: str) -> dict[str, Any]:
    return {"d": bundled_health_model()}


async def a_scored_customer(tenant: Tenant, _: str) -> dict[str, Any]:
    customer = await tenant.customer()
    async with transaction():
        await install_default(tenant.admin, created_by="audit walk")
    async with transaction():
        await recompute_customers(tenant.id, [customer.id], now=utcnow())
    return {"cid": str(customer.id), "at": (utcnow() + timedelta(days=7)).isoformat()}


async def an_overridden_customer(tenant: Tenant, admin: str) -> dict[str, Any]:
    found = await a_scored_customer(tenant, admin)
    async with transaction():
        await set_override(
            tenant.admin,
            customer_id=found["cid"],
            score=12.0,
            level=None,
            reason="audit walk",
            expires_at=utcnow() + timedelta(days=7),
            now=utcnow(),
        )
    return found


CASES: dict[str, Case] = {
    "updateStage": Case(
        'mutation($cid: ID!) { updateStage(input: {customerId: $cid, stageKey: "features", '
        'action: UNLOCK, reason: "audit walk"}) { id } }',
        customer_id,
        "stage.unlock",
    ),
    "updateWorkflowSettings": Case(
        "mutation($cid: ID) { updateWorkflowSettings(input: {customerId: $cid, paused: true}) "
        "{ id } }",
        customer_id,
        "workflow.settings",
    ),
    "installWorkflowTemplate": Case(
        "mutation($d: String!) { installWorkflowTemplate(input: {definition: $d}) { id } }",
        nothing,
        "template.install",
    ),
    "login": Case(
        'mutation($e: String!) { login(email: $e, password: "wrong-password-123") { token } }',
        admin_email,
        "signin.",
        authenticated=False,
    ),
    "redeemSignInLink": Case(
        "mutation($s: String!) { redeemSignInLink(secret: $s) { token } }",
        a_link,
        "signin.link",
        authenticated=False,
    ),
    "issueCustomerToken": Case(
        "mutation($cid: ID!) { issueCustomerToken(customerId: $cid) { token } }",
        customer_id,
        "customer_token.issued",
    ),
    "createOperator": Case(
        'mutation($e: String!) { createOperator(input: {email: $e, name: "N", role: CSM}) { id } }',
        nothing,
        "operator.created",
    ),
    "exportAnalytics": Case(
        "mutation { exportAnalytics(input: {format: JSON, sections: [OVERVIEW]}) { id } }",
        nothing,
        "analytics.export",
    ),
    "installMilestoneSet": Case(
        "mutation($d: String!) { installMilestoneSet(input: {definition: $d}) { id } }",
        milestone_set,
        "milestones.install",
    ),
    "setRateLimit": Case(
        'mutation { setRateLimit(name: WRITES, limit: "300/minute", reason: "audit walk") '
        "{ limit } }",
        nothing,
        "rate_limit.set",
    ),
    "revokeTokens": Case(
        "mutation($s: String!) { revokeTokens(subject: $s) { version } }",
        nothing,
        "tokens.revoke",
    ),
    "createApiKey": Case(
        'mutation { createApiKey(name: "audit walk") { secret } }',
        nothing,
        "api_key.created",
    ),
    "revokeApiKey": Case(
        "mutation($k: ID!) { revokeApiKey(id: $k) { revokedAt } }",
        a_key,
        "api_key.revoked",
    ),
    "createAutomationRule": Case(
        "mutation($d: JSON!) { createAutomationRule(definition: $d) { id } }",
        a_rule_definition,
        "automation_rule.create",
    ),
    "updateAutomationRule": Case(
        "mutation($id: ID!, $d: JSON!) { updateAutomationRule(id: $id, definition: $d) { id } }",
        a_rule,
        "automation_rule.update",
    ),
    "setAutomationRuleEnabled": Case(
        "mutation($id: ID!) { setAutomationRuleEnabled(id: $id, enabled: true) { id } }",
        a_rule,
        "automation_rule.enable",
    ),
    "deleteAutomationRule": Case(
        "mutation($id: ID!) { deleteAutomationRule(id: $id) { id } }",
        a_rule,
        "automation_rule.delete",
    ),
    "createWebhookEndpoint": Case(
        'mutation { createWebhookEndpoint(url: "https://hooks.example.com/x", '
        'eventTypes: ["*"]) { id } }',
        nothing,
        "webhook_endpoint.create",
    ),
    "updateWebhookEndpoint": Case(
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, enabled: false) { id } }",
        an_endpoint,
        "webhook_endpoint.update",
    ),
    "rotateWebhookEndpointSecret": Case(
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { id } }",
        an_endpoint,
        "webhook_endpoint.rotate_secret",
    ),
    "deleteWebhookEndpoint": Case(
        "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
        an_endpoint,
        "webhook_endpoint.delete",
    ),
    "replayWebhookDelivery": Case(
        "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id } }",
        a_dead_delivery,
        "webhook_delivery.replay",
    ),
    "installHealthModel": Case(
        "mutation($d: String!) { installHealthModel(input: {definition: $d}) { version } }",
        a_health_model,
        "health.model_installed",
    ),
    "overrideHealthScore": Case(
        "mutation($cid: ID!, $at: DateTime!) { overrideHealthScore(input: {customerId: $cid, "
        'score: 20, reason: "audit walk", expiresAt: $at}) { score } }',
        a_scored_customer,
        "health.override_set",
    ),
    "clearHealthOverride": Case(
        "mutation($cid: ID!) { clearHealthOverride(customerId: $cid) { score } }",
        an_overridden_customer,
        "health.override_cleared",
    ),
    "recalculateHealthScores": Case(
        "mutation { recalculateHealthScores { id } }",
        nothing,
        "health.recompute_started",
    ),
}


def mutation_fields() -> set[str]:
    mutation = build_schema(SETTINGS)._schema.mutation_type
    assert mutation is not None
    return set(mutation.fields)


def test_every_mutation_is_audited_or_exempt_with_a_reason() -> None:
    fields = mutation_fields()
    assert fields - set(CASES) - set(EXEMPT) == set(), "mutations with no audit case"
    assert set(CASES) | set(EXEMPT) <= fields, "cases for mutations the schema no longer has"


async def test_every_administrative_mutation_writes_an_audit_entry(tenant: Tenant) -> None:
    async with transaction():
        await set_password(operator=tenant.admin_operator, password=PASSWORD)
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    missing = []
    for field, case in CASES.items():
        entries = AuditEntry.filter(organization_id=tenant.id, action__startswith=case.action)
        before = await entries.count()
        variables = await case.variables(tenant, admin)
        body = await gql(case.document, variables, token=admin if case.authenticated else None)
        if await entries.count() <= before:
            missing.append(f"{field}: {body}")
    assert not missing, missing


async def test_the_audit_log_is_read_by_admins_only_page_by_page(tenant: Tenant) -> None:
    tokens = tokens_of(tenant, await tenant.customer())
    for subject in ("a@x.test", "b@x.test", "c@x.test"):
        await gql(CASES["revokeTokens"].document, {"s": subject}, token=tokens[Role.ADMIN])
    query = """query($after: String) { auditLog(filter: {action: "tokens."}, first: 2,
      after: $after) { totalCount pageInfo { hasNextPage endCursor }
      edges { node { action actor actorRole targetId before after requestId } } } }"""
    first = (await gql(query, {"after": None}, token=tokens[Role.ADMIN]))["data"]["auditLog"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    cursor = first["pageInfo"]["endCursor"]
    rest = (await gql(query, {"after": cursor}, token=tokens[Role.ADMIN]))["data"]["auditLog"]
    nodes = [e["node"] for e in first["edges"] + rest["edges"]]
    assert [n["targetId"] for n in nodes] == ["a@x.test", "b@x.test", "c@x.test"]
    assert nodes[0]["actor"] == tenant.admin.subject and nodes[0]["actorRole"] == "ADMIN"
    assert nodes[0]["after"] == {"version": 1} and nodes[0]["requestId"] is None
    for role in (Role.CSM, Role.CUSTOMER):
        assert error_codes(await gql(query, {"after": None}, token=tokens[role])) == ["FORBIDDEN"]
