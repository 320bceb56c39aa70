"""Tenancy over the real GraphQL API (DESIGN.md, "Tenancy and auth", rule 4).

Every root field is walked with a second organization's token and with a second customer's
token of the same organization, through the production view (`LiftoffGraphQL`) against real
PostgreSQL: neither may read nor change the victim's data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import pytest

from app.accounts.credentials import SignInThrottle
from app.accounts.models import Operator, RateLimitOverride, Role, TokenSubject
from app.analytics import exports, maintain, service
from app.analytics.models import AnalyticsCustomer, ExportJob
from app.audit.models import AuditEntry
from app.customers.models import Customer
from app.db import transaction
from app.events.models import OutboxEvent
from app.graphql.schema import build_schema
from app.kit.clock import utcnow
from app.kit.pagination import encode_cursor
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)
from app.onboarding.templates import bundled_default_text
from tests.graphql import tenancy_health, tenancy_milestones, tenancy_usage
from tests.graphql.client import SETTINGS, error_codes, gql, graphql_app, token
from tests.support.factories import Tenant

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

# ---------------------------------------------------------------------------------------------
# The world: a victim customer in one organization, and two kinds of attacker.
# ---------------------------------------------------------------------------------------------

OTHER_ADMIN = "other-organization ADMIN"
OTHER_CUSTOMER = "same-organization other CUSTOMER"
ATTACKERS = (OTHER_ADMIN, OTHER_CUSTOMER)


@dataclass
class World:
    """The first organization's customer (the victim), and who tries to reach it."""

    victim: Tenant
    customer: Customer
    workflow_id: uuid.UUID
    stage_ids: dict[str, uuid.UUID]
    task_ids: dict[str, uuid.UUID]
    template_ids: list[uuid.UUID]
    other: Tenant
    other_customer: Customer
    peer: Customer
    export_id: uuid.UUID
    automation: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def token(self, attacker: str) -> str:
        if attacker == OTHER_ADMIN:
            return token(self.other.id, Role.ADMIN, subject=self.other.admin.subject)
        return token(
            self.victim.id, Role.CUSTOMER, customer_id=self.peer.id, subject=self.peer.email
        )

    def secrets(self, attacker: str) -> set[str]:
        """Strings of the victim that must never reach this attacker."""
        c = self.customer
        own = {str(c.id), c.email, c.name, str(c.external_id), str(c.company)}
        own |= {str(self.workflow_id), str(self.export_id)}
        own |= {str(i) for i in self.stage_ids.values()}
        own |= {str(i) for i in self.task_ids.values()}
        if attacker == OTHER_ADMIN:
            own |= {str(self.victim.id), self.victim.org.slug, c.user_type, c.acquisition_channel}
            own |= {str(i) for i in self.template_ids}
        return (
            own
            | (self.automation.secrets() if self.automation else set())
            | self.extra.get("secrets", set())
        )


async def make_world(tenant: Tenant, other_tenant: Tenant) -> World:
    suffix = uuid.uuid4().hex[:8]
    customer = await tenant.customer(
        name=f"Victim {suffix}",
        email=f"victim-{suffix}@example.com",
        company=f"Victim Co {suffix}",
        external_id=f"victim-ext-{suffix}",
        user_type=f"vip{suffix}",
        acquisition_channel=f"chan{suffix}",
    )
    peer = await tenant.customer()
    other_customer = await other_tenant.customer()
    # Move the victim off its initial state, through the API, as itself.
    body = await gql(
        'mutation { updateTask(input: {taskKey: "verify_email", action: COMPLETE}) '
        "{ task { status } pointsAwarded } }",
        token=token(tenant.id, Role.CUSTOMER, customer_id=customer.id),
    )
    assert body == {"data": {"updateTask": {"task": {"status": "COMPLETED"}, "pointsAwarded": 10}}}
    async with (
        transaction()
    ):  # the analytics rollups of both organizations, as the worker keeps them
        await maintain.refresh(
            await Customer.filter(organization_id__in=[tenant.id, other_tenant.id]).values_list(
                "id", flat=True
            ),
            now=utcnow(),
        )
    async with transaction():
        export = await exports.create(
            tenant.admin,
            format="JSON",
            sections=["RECOMMENDATIONS"],
            scope=service.analytics(tenant.admin).scope,
            data={"recommendations": []},
            now=utcnow(),
        )
    workflow = await Workflow.get(customer_id=customer.id)
    stages = await WorkflowStage.filter(workflow_id=workflow.id)
    tasks = await WorkflowTask.filter(workflow_id=workflow.id)
    templates = await WorkflowTemplate.filter(organization_id=tenant.id)
    world = World(
        victim=tenant,
        customer=customer,
        workflow_id=workflow.id,
        stage_ids={s.key: s.id for s in stages},
        task_ids={t.key: t.id for t in tasks},
        template_ids=[t.id for t in templates],
        other=other_tenant,
        other_customer=other_customer,
        peer=peer,
        export_id=export.id,
    )
    world.extra = await tenancy_health.prepare(world)
    usage = await tenancy_usage.prepare(world)
    world.extra["secrets"] = world.extra.get("secrets", set()) | usage["secrets"]
    world.extra["usage_key"] = usage["key"]
    world.extra["secrets"] |= await tenancy_milestones.prepare(world)
    return world


@pytest.fixture
async def world(tenant: Tenant, other_tenant: Tenant) -> World:
    w = await make_world(tenant, other_tenant)
    w.automation = await tenancy_automation.seed(w)
    return w


async def snapshot(w: World) -> dict[str, Any]:
    """Everything of the victim an attack could change, read straight from the database."""
    cid, org = w.customer.id, w.victim.id
    return {
        "customer": await Customer.filter(id=cid).values(),
        "workflow": await Workflow.filter(customer_id=cid).values(),
        "stages": await WorkflowStage.filter(workflow_id=w.workflow_id)
        .order_by("position")
        .values(),
        "tasks": await WorkflowTask.filter(workflow_id=w.workflow_id).order_by("position").values(),
        "overrides": await StageOverride.filter(workflow_id=w.workflow_id).count(),
        "templates": await WorkflowTemplate.filter(organization_id=org).order_by("id").values(),
        "customers": await Customer.filter(organization_id=org)
        .order_by("id")
        .values_list("id", flat=True),
        "customer_outbox": await OutboxEvent.filter(customer_id=cid).count(),
        "org_outbox": await OutboxEvent.filter(organization_id=org).count(),
        **await tenancy_automation.snapshot(w),
        "health": await tenancy_health.snapshot(w),
        "usage": await tenancy_usage.snapshot(w),
        "milestones": await tenancy_milestones.snapshot(w),
    }


# ---------------------------------------------------------------------------------------------
# What each root field must answer to each attacker.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """An error with this code on the field's path, and no data for it."""

    code: str


@dataclass(frozen=True)
class Null:
    """`null`, no error."""


@dataclass(frozen=True)
class Empty:
    """An empty list (or a connection without edges), no error."""


@dataclass(frozen=True)
class Own:
    """Data, but only the caller's own: `check` proves it against the database."""

    check: Callable[[Any, World], Awaitable[None]]


Outcome = Refused | Null | Empty | Own


@dataclass(frozen=True)
class Case:
    root: str  # "Query.customer"
    name: str
    document: str
    variables: Callable[[World], dict[str, Any]]
    outcomes: dict[str, Outcome]

    @property
    def field(self) -> str:
        return self.root.split(".", 1)[1]


CUSTOMER_FIELDS = """id email name company externalId userType acquisitionChannel tags
  workflow { id points stages { id } } milestones { key percent achievedAt }"""
STAGE_FIELDS = "id key status progress tasks { id key status }"
WORKFLOW_FIELDS = f"""id status points paused remindersEnabled version progress
  estimatedMinutesRemaining badges {{ key }} currentStage {{ id key }}
  customer {{ id email name }} template {{ id key }} stages {{ {STAGE_FIELDS} }}"""
TEMPLATE_FIELDS = "id key version isDefault createdBy stageCount taskCount"
TASK_PAYLOAD = f"""task {{ id status }} workflow {{ {WORKFLOW_FIELDS} }}
  unlockedTasks {{ id }} unlockedStages {{ id }} completedStages {{ id }} pointsAwarded"""


async def other_org_customer_ids(w: World) -> set[str]:
    rows = await Customer.filter(organization_id=w.other.id).values_list("id", flat=True)
    return {str(i) for i in rows}


async def viewer_is_other_admin(data: Any, w: World) -> None:
    assert data["role"] == "ADMIN" and data["subject"] == w.other.admin.subject
    assert data["organization"] == {"id": str(w.other.id), "slug": w.other.org.slug}
    assert data["customer"] is None


async def viewer_is_peer(data: Any, w: World) -> None:
    assert data["role"] == "CUSTOMER" and data["subject"] == w.peer.email
    assert data["organization"] == {"id": str(w.victim.id), "slug": w.victim.org.slug}
    assert data["customer"]["id"] == str(w.peer.id)


async def only_other_org_customers(data: Any, w: World) -> None:
    ids = {e["node"]["id"] for e in data["edges"]}
    assert ids == await other_org_customer_ids(w)
    assert data["totalCount"] == len(ids)


async def subset_of_other_org_customers(data: Any, w: World) -> None:
    ids = {e["node"]["id"] for e in data["edges"]}
    assert ids <= await other_org_customer_ids(w)
    assert data["totalCount"] == len(await other_org_customer_ids(w))


async def only_other_org_templates(data: Any, w: World) -> None:
    rows = await WorkflowTemplate.filter(organization_id=w.other.id).values_list("id", flat=True)
    assert {t["id"] for t in data} == {str(i) for i in rows}


async def created_in_other_org(data: Any, w: World) -> None:
    row = await Customer.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]
    assert data["id"] != str(w.customer.id)
    assert data["workflow"]["id"] != str(w.workflow_id)


async def installed_in_other_org(data: Any, w: World) -> None:
    row = await WorkflowTemplate.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]
    assert (data["key"], data["version"], data["isDefault"]) == ("default", 2, True)


async def operator_in_other_org(data: Any, w: World) -> None:
    row = await Operator.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]
    assert data["email"] == w.victim.admin_operator.email


async def exported_in_other_org(data: Any, w: World) -> None:
    row = await ExportJob.get(id=data["id"])
    assert row.organization_id == w.other.id  # type: ignore[attr-defined]
    customers = await AnalyticsCustomer.filter(organization_id=w.other.id).count()
    assert row.payload is not None and row.payload["overview"]["customers"] == customers
    assert row.row_count == data["rowCount"] and data["status"] == "DONE"
    assert f"/exports/{data['id']}/download?token=" in data["downloadUrl"]


async def analytics_of_other_org(data: Any, w: World) -> None:
    counted = await AnalyticsCustomer.filter(organization_id=w.other.id).count()
    assert counted >= 1 and data["overview"]["customers"] == counted
    labels = {
        f["label"] for f in data["cohorts"]["byUserType"] + data["cohorts"]["byAcquisitionChannel"]
    }
    assert labels and w.customer.user_type not in labels
    assert w.customer.acquisition_channel not in labels
    reached = data["funnel"]["stages"][0]["reached"]
    assert reached == counted
    health = {s["segment"] for s in data["healthDistribution"] or []}
    assert w.customer.user_type not in health


async def audit_of_other_org(data: Any, w: World) -> None:
    own = AuditEntry.filter(organization_id=w.other.id, target_id=str(w.workflow_id))
    assert data["totalCount"] == await own.count() == len(data["edges"]) == 0


async def revoked_in_other_org(data: Any, w: World) -> None:
    assert data == {"subject": w.victim.admin.subject, "version": 1}
    rows = await TokenSubject.filter(subject=w.victim.admin.subject).values("organization_id")
    assert rows == [{"organization_id": w.other.id}]


async def limits_of_other_org(data: Any, w: World) -> None:
    own = {r.budget: r.limit for r in await RateLimitOverride.filter(organization_id=w.other.id)}
    for budget in data:
        name = budget["name"].lower()
        assert budget["overridden"] == (name in own) and budget["limit"] == own.get(
            name, budget["default"]
        )


async def limit_set_in_other_org(data: Any, w: World) -> None:
    assert data == {"name": "WRITES", "limit": "300/minute", "overridden": True}
    rows = await RateLimitOverride.filter(budget="writes").values("organization_id")
    assert {"organization_id": w.victim.id} not in rows
    assert {"organization_id": w.other.id} in rows


def for_both(outcome: Outcome) -> dict[str, Outcome]:
    return {OTHER_ADMIN: outcome, OTHER_CUSTOMER: outcome}


def victim(w: World) -> dict[str, Any]:
    return {"cid": str(w.customer.id)}


DRILL = "drillDown { userType acquisitionChannel signedUpFrom stageKey taskKey outcome }"
ANALYTICS_DOCUMENT = (
    "{ analytics { generatedAt filter { from to } overview { customers completed completionRate "
    f"activeLast7Days medianHoursToComplete pointsAwarded {DRILL} }} "
    f"funnel {{ stages {{ stageKey name reached dropped {DRILL} "
    "tasks { taskKey name reached } } "
    "stallTasks { taskKey dropped } } "
    f"cohorts {{ byUserType {{ label customers {DRILL} }} "
    "byAcquisitionChannel { label customers } "
    "bySignupWeek { week customers completedByWeek } } "
    "trends(granularity: WEEK) { points { start signups completions } "
    "changes { metric current } } "
    "forecast { inFlight probabilityWithin30Days method curve { days stillOnboarding } } "
    "recommendations { message } automationPerformance { runs } "
    "healthDistribution { segment } milestoneAchievements { key } } }"
)


async def _no_customers(data: Any) -> None:
    assert data["overview"] == {"customers": 0, "completed": 0}
    assert all(s["reached"] == 0 for s in data["funnel"]["stages"])


CASES: list[Case] = [
    Case(
        "Query.viewer",
        "viewer",
        "{ viewer { subject role organization { id slug } "
        "customer { id email workflow { id } } } }",
        lambda w: {},
        {OTHER_ADMIN: Own(viewer_is_other_admin), OTHER_CUSTOMER: Own(viewer_is_peer)},
    ),
    Case(
        "Query.customer",
        "customer by the victim's id",
        f"query($cid: ID) {{ customer(id: $cid) {{ {CUSTOMER_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.customers",
        "customers, first page",
        "{ customers(first: 100) { totalCount edges { cursor node { "
        + CUSTOMER_FIELDS
        + " } } pageInfo { hasNextPage endCursor } } }",
        lambda w: {},
        {OTHER_ADMIN: Own(only_other_org_customers), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.customers",
        "customers after the victim's cursor",
        "query($after: String) { customers(first: 100, after: $after) { totalCount "
        "edges { node { id email } } } }",
        lambda w: {"after": encode_cursor(w.customer)},
        {OTHER_ADMIN: Own(subset_of_other_org_customers), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.customers",
        "customers filtered by the victim's userType and channel",
        "query($f: CustomerFilter) { customers(first: 100, filter: $f) { totalCount "
        "edges { node { id } } } }",
        lambda w: {
            "f": {
                "userType": w.customer.user_type,
                "acquisitionChannel": w.customer.acquisition_channel,
                "workflowStatus": "ACTIVE",
            }
        },
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.customers",
        "customers at the victim's funnel step",
        "query($f: CustomerFilter) { customers(first: 100, filter: $f) { totalCount "
        "edges { node { id } } } }",
        lambda w: {
            "f": {
                "stageKey": "welcome",
                "taskKey": "verify_email",
                "outcome": "COMPLETED",
                "active": True,
                "signedUpFrom": "2000-01-01",
            }
        },
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.analytics",
        "analytics, every section",
        ANALYTICS_DOCUMENT,
        lambda w: {},
        {OTHER_ADMIN: Own(analytics_of_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.analytics",
        "analytics filtered to the victim's segment",
        "query($f: AnalyticsFilter) { analytics(filter: $f) { overview { customers completed } "
        "funnel { stages { reached } } } }",
        lambda w: {
            "f": {
                "userType": w.customer.user_type,
                "acquisitionChannel": w.customer.acquisition_channel,
            }
        },
        {
            OTHER_ADMIN: Own(lambda data, w: _no_customers(data)),
            OTHER_CUSTOMER: Refused("FORBIDDEN"),
        },
    ),
    Case(
        "Query.exportJob",
        "exportJob by the victim's id",
        "query($id: ID!) { exportJob(id: $id) { id status rowCount downloadUrl } }",
        lambda w: {"id": str(w.export_id)},
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.exportAnalytics",
        "exportAnalytics of every section",
        "mutation { exportAnalytics(input: {format: JSON, sections: [OVERVIEW, FUNNEL, "
        "COHORTS, TRENDS, FORECAST, RECOMMENDATIONS, CUSTOMERS]}) "
        "{ id status rowCount downloadUrl } }",
        lambda w: {},
        {OTHER_ADMIN: Own(exported_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.workflow",
        "workflow of the victim",
        f"query($cid: ID) {{ workflow(customerId: $cid) {{ {WORKFLOW_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.stages",
        "stages of the victim",
        f"query($cid: ID) {{ stages(customerId: $cid) {{ {STAGE_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.tasks",
        "tasks of the victim",
        "query($cid: ID) { tasks(customerId: $cid) { id key status progress stageKey } }",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.tasks",
        "tasks of the victim, filtered",
        "query($cid: ID) { tasks(customerId: $cid, status: [COMPLETED, AVAILABLE], "
        'stageKey: "welcome") { id } }',
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.workflowTemplates",
        "workflowTemplates",
        f"{{ workflowTemplates {{ {TEMPLATE_FIELDS} }} }}",
        lambda w: {},
        {OTHER_ADMIN: Own(only_other_org_templates), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.createCustomer",
        "createCustomer on the victim's template",
        "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
        lambda w: {
            "input": {
                "email": f"copy-{uuid.uuid4().hex[:6]}@example.com",
                "name": "Copy",
                "templateId": str(w.template_ids[0]),
            }
        },
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.createCustomer",
        "createCustomer with the victim's email and external id",
        "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) "
        "{ id email externalId workflow { id } } }",
        lambda w: {
            "input": {
                "email": w.customer.email,
                "name": "Same email, other tenant",
                "externalId": w.customer.external_id,
            }
        },
        {OTHER_ADMIN: Own(created_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateTask",
        "updateTask by the victim's task id",
        f"mutation($tid: ID) {{ updateTask(input: {{taskId: $tid, action: START}}) "
        f"{{ {TASK_PAYLOAD} }} }}",
        lambda w: {"tid": str(w.task_ids["watch_intro"])},
        for_both(Refused("NOT_FOUND")),
    ),
    Case(
        "Mutation.updateTask",
        "updateTask by key in the victim's workflow",
        "mutation($cid: ID) { updateTask(input: "
        f'{{taskKey: "watch_intro", customerId: $cid, action: COMPLETE}}) {{ {TASK_PAYLOAD} }} }}',
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateStage",
        "updateStage on the victim",
        "mutation($cid: ID!) { updateStage(input: {customerId: $cid, stageKey: "
        f'"setup", action: COMPLETE, reason: "takeover"}}) {{ {STAGE_FIELDS} }} }}',
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateWorkflowSettings",
        "pause the victim and mute its reminders",
        "mutation($cid: ID) { updateWorkflowSettings(input: {customerId: $cid, paused: true, "
        f"remindersEnabled: false}}) {{ {WORKFLOW_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.updateWorkflowSettings",
        "mute the victim's reminders",
        "mutation($cid: ID) { updateWorkflowSettings(input: {customerId: $cid, "
        "remindersEnabled: false}) { id remindersEnabled } }",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.installWorkflowTemplate",
        "installWorkflowTemplate as default, same key as the victim's",
        "mutation($d: String!) { installWorkflowTemplate(input: {definition: $d, "
        f"makeDefault: true}}) {{ {TEMPLATE_FIELDS} }} }}",
        lambda w: {"d": bundled_default_text()},
        {OTHER_ADMIN: Own(installed_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.login",
        "login as the victim's admin with a guessed password",
        'mutation($e: String!) { login(email: $e, password: "guessed password") { token } }',
        lambda w: {"e": w.victim.admin_operator.email},
        for_both(Refused("UNAUTHENTICATED")),
    ),
    Case(
        "Mutation.redeemSignInLink",
        "redeemSignInLink with a made-up secret",
        'mutation { redeemSignInLink(secret: "made-up-secret") { token } }',
        lambda w: {},
        for_both(Refused("UNAUTHENTICATED")),
    ),
    Case(
        "Mutation.issueCustomerToken",
        "issueCustomerToken for the victim",
        "mutation($cid: ID!) { issueCustomerToken(customerId: $cid) { token customerId } }",
        victim,
        {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.createOperator",
        "createOperator with the victim admin's email",
        'mutation($e: String!) { createOperator(input: {email: $e, name: "Twin", role: ADMIN}) '
        "{ id email role } }",
        lambda w: {"e": w.victim.admin_operator.email},
        {OTHER_ADMIN: Own(operator_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.auditLog",
        "auditLog, filtered on the victim's workflow",
        "query($cid: String) { auditLog(first: 100, filter: {targetId: $cid}) { totalCount "
        "edges { node { action targetId } } } }",
        lambda w: {"cid": str(w.workflow_id)},
        {OTHER_ADMIN: Own(audit_of_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.revokeTokens",
        "revokeTokens of the victim admin's subject",
        "mutation($s: String!) { revokeTokens(subject: $s) { subject version } }",
        lambda w: {"s": w.victim.admin.subject},
        {OTHER_ADMIN: Own(revoked_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.rateLimits",
        "rateLimits (the caller's organization's budgets only)",
        "{ rateLimits { name limit default overridden } }",
        lambda w: {},
        {OTHER_ADMIN: Own(limits_of_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Mutation.setRateLimit",
        "setRateLimit (lands in the caller's organization)",
        'mutation { setRateLimit(name: WRITES, limit: "300/minute") { name limit overridden } }',
        lambda w: {},
        {OTHER_ADMIN: Own(limit_set_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
]

CASES += tenancy_health.cases()
CASES += tenancy_usage.cases()
CASES += tenancy_milestones.cases()


from tests.graphql import tenancy_automation  # noqa: E402  (needs the case classes above)

CASES += tenancy_automation.CASES


def root_fields_of_built_schema() -> set[str]:
    schema = build_schema(SETTINGS)._schema
    return {
        f"{kind.name}.{name}"
        for kind in (schema.query_type, schema.mutation_type)
        if kind is not None
        for name in kind.fields
    }


def root_fields_of_sdl() -> set[str]:
    schema = graphql.build_schema(SCHEMA_FILE.read_text())
    return {
        f"{kind.name}.{name}"
        for kind in (schema.query_type, schema.mutation_type)
        if kind is not None
        for name in kind.fields
    }


def test_the_walk_covers_every_query_and_mutation_field() -> None:
    walked = {c.root for c in CASES}
    built, sdl = root_fields_of_built_schema(), root_fields_of_sdl()
    assert {"Query.viewer", "Mutation.updateTask"} <= built  # the introspection itself works
    assert built - walked == set(), "root fields without a tenancy case in CASES"
    assert sdl - walked == set(), "fields of schema.graphql without a tenancy case in CASES"
    assert walked - built == set(), "cases for fields the schema no longer has"
    for case in CASES:
        assert set(case.outcomes) == set(ATTACKERS), case.name


def check_outcome(case: Case, outcome: Outcome, body: dict[str, Any]) -> Any:
    data = body.get("data")
    if isinstance(outcome, Refused):
        assert error_codes(body) == [outcome.code], body
        assert body["errors"][0]["path"] == [case.field], body
        assert data is None or data == {case.field: None}, body
        return None
    assert "errors" not in body, body
    value = data[case.field]
    if isinstance(outcome, Null):
        assert value is None, body
    elif isinstance(outcome, Empty):
        if isinstance(value, dict):
            assert value["edges"] == [] and value["totalCount"] == 0, body
        else:
            assert value == [], body
    return value


SIGN_IN_ROOTS = {"Mutation.login", "Mutation.redeemSignInLink"}


@pytest.mark.parametrize("attacker", ATTACKERS)
async def test_a_foreign_caller_gets_nothing_and_changes_nothing(
    world: World, attacker: str
) -> None:
    assert {c.root for c in CASES} == root_fields_of_built_schema()
    before = await snapshot(world)
    assert before["workflow"][0]["points"] == 10  # the victim is not in its initial state
    failures: list[str] = []
    for case in CASES:
        variables = case.variables(world)
        if case.root in SIGN_IN_ROOTS:
            # Every in-process request comes from the test client's one address, and the
            # session's other tests fail sign-ins from it too: start each attempt with that
            # address's throttle and sign-in budget clear, so the case sees the refusal it
            # is about (not the budget the session's earlier sign-ins spent).
            await SignInThrottle.filter(key__startswith="address:").delete()
            await graphql_app().limiter.storage.reset()
        body = await gql(case.document, variables, token=world.token(attacker))
        try:
            value = check_outcome(case, case.outcomes[attacker], body)
            outcome = case.outcomes[attacker]
            if isinstance(outcome, Own):
                await outcome.check(value, world)
            sent = json.dumps(variables)
            leaked = {s for s in world.secrets(attacker) if s not in sent and s in json.dumps(body)}
            assert not leaked, f"victim data in the response: {leaked} in {body}"
        except AssertionError as exc:
            failures.append(f"{case.root} [{case.name}]: {exc}")
    assert not failures, "\n".join(failures)
    assert await snapshot(world) == before


async def test_searching_for_a_foreign_customer_finds_nothing(world: World) -> None:
    query = (
        "query($s: String) { customers(filter: {search: $s}) { totalCount edges { node { id } } } }"
    )
    body = await gql(query, {"s": world.customer.name}, token=world.token(OTHER_ADMIN))
    assert body == {"data": {"customers": {"totalCount": 0, "edges": []}}}
    own = await gql(query, {"s": world.other_customer.email}, token=world.token(OTHER_ADMIN))
    edges = own["data"]["customers"]["edges"]
    assert [e["node"]["id"] for e in edges] == [str(world.other_customer.id)]
