"""Tenancy and authorization over the real GraphQL API (DESIGN.md, "Tenancy and auth", rule 4).

Every request goes through the production view (`LiftoffGraphQL`): token checks, schema,
depth/alias/token limits and error shaping, against real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import jwt
import pytest
from graphql.language import Lexer, Source, TokenKind

import app.customers.service as customers_service
import app.events.outbox as outbox_module
from app.accounts.models import Role
from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.graphql.schema import build_schema
from app.kit.pagination import encode_cursor
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)
from app.onboarding.templates import bundled_default_text
from tests.graphql.client import SETTINGS, error_codes, gql, token
from tests.support.factories import Tenant

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
MASKED = "Unexpected error; it has been logged."
OPERATOR_NEEDS_ID = "Pass `customerId`: operators act on a named customer."

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

    def token(self, attacker: str) -> str:
        if attacker == OTHER_ADMIN:
            return token(self.other.id, Role.ADMIN, subject="admin@other.test")
        return token(
            self.victim.id, Role.CUSTOMER, customer_id=self.peer.id, subject=self.peer.email
        )

    def secrets(self, attacker: str) -> set[str]:
        """Strings of the victim that must never reach this attacker."""
        c = self.customer
        own = {str(c.id), c.email, c.name, str(c.external_id), str(c.company)}
        own |= {str(self.workflow_id)} | {str(i) for i in self.stage_ids.values()}
        own |= {str(i) for i in self.task_ids.values()}
        if attacker == OTHER_ADMIN:
            own |= {str(self.victim.id), self.victim.org.slug}
            own |= {str(i) for i in self.template_ids}
        return own


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
    workflow = await Workflow.get(customer_id=customer.id)
    stages = await WorkflowStage.filter(workflow_id=workflow.id)
    tasks = await WorkflowTask.filter(workflow_id=workflow.id)
    templates = await WorkflowTemplate.filter(organization_id=tenant.id)
    return World(
        victim=tenant,
        customer=customer,
        workflow_id=workflow.id,
        stage_ids={s.key: s.id for s in stages},
        task_ids={t.key: t.id for t in tasks},
        template_ids=[t.id for t in templates],
        other=other_tenant,
        other_customer=other_customer,
        peer=peer,
    )


@pytest.fixture
async def world(tenant: Tenant, other_tenant: Tenant) -> World:
    return await make_world(tenant, other_tenant)


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
  workflow { id points stages { id } }"""
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
    assert data["role"] == "ADMIN" and data["subject"] == "admin@other.test"
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


def for_both(outcome: Outcome) -> dict[str, Outcome]:
    return {OTHER_ADMIN: outcome, OTHER_CUSTOMER: outcome}


def victim(w: World) -> dict[str, Any]:
    return {"cid": str(w.customer.id)}


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
        "Query.workflow",
        "workflow of the victim",
        f"query($cid: ID) {{ workflow(customerId: $cid) {{ {WORKFLOW_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Null(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.stages",
        "stages of the victim",
        f"query($cid: ID) {{ stages(customerId: $cid) {{ {STAGE_FIELDS} }} }}",
        victim,
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.tasks",
        "tasks of the victim",
        "query($cid: ID) { tasks(customerId: $cid) { id key status progress stageKey } }",
        victim,
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
    ),
    Case(
        "Query.tasks",
        "tasks of the victim, filtered",
        "query($cid: ID) { tasks(customerId: $cid, status: [COMPLETED, AVAILABLE], "
        'stageKey: "welcome") { id } }',
        victim,
        {OTHER_ADMIN: Empty(), OTHER_CUSTOMER: Refused("FORBIDDEN")},
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
]


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


# ---------------------------------------------------------------------------------------------
# Roles inside one organization.
# ---------------------------------------------------------------------------------------------


def tokens_of(tenant: Tenant, customer: Customer) -> dict[Role, str]:
    return {
        Role.ADMIN: token(tenant.id, Role.ADMIN, subject=tenant.admin.subject),
        Role.CSM: token(tenant.id, Role.CSM, subject=tenant.csm.subject),
        Role.CUSTOMER: token(
            tenant.id, Role.CUSTOMER, customer_id=customer.id, subject=customer.email
        ),
    }


UPDATE_STAGE = """mutation($cid: ID!) { updateStage(input: {customerId: $cid, stageKey: "setup",
  action: UNLOCK, reason: "customer asked on the phone"}) { id key status } }"""
INSTALL_TEMPLATE = """mutation($d: String!) {
  installWorkflowTemplate(input: {definition: $d}) { key version } }"""
SETTINGS_MUTATION = """mutation($input: WorkflowSettingsInput!) {
  updateWorkflowSettings(input: $input) { id paused remindersEnabled version } }"""


async def test_csm_cannot_update_a_stage_but_admin_can(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    stage = await WorkflowStage.get(workflow__customer_id=customer.id, key="setup")
    body = await gql(UPDATE_STAGE, {"cid": str(customer.id)}, token=tokens[Role.CSM])
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "This needs the ADMIN role; you are CSM."
    assert body["data"] is None
    assert (await WorkflowStage.get(id=stage.id)).status == "LOCKED"
    assert await StageOverride.filter(stage_id=stage.id).count() == 0

    body = await gql(UPDATE_STAGE, {"cid": str(customer.id)}, token=tokens[Role.ADMIN])
    assert body == {
        "data": {"updateStage": {"id": str(stage.id), "key": "setup", "status": "UNLOCKED"}}
    }
    assert await StageOverride.filter(stage_id=stage.id).count() == 1


async def test_csm_cannot_install_a_template_but_admin_can(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    variables = {"d": bundled_default_text()}
    body = await gql(INSTALL_TEMPLATE, variables, token=tokens[Role.CSM])
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "This needs the ADMIN role; you are CSM."
    assert await WorkflowTemplate.filter(organization_id=tenant.id).count() == 1

    body = await gql(INSTALL_TEMPLATE, variables, token=tokens[Role.ADMIN])
    assert body == {"data": {"installWorkflowTemplate": {"key": "default", "version": 2}}}


async def test_customer_cannot_list_customers(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    query = "{ customers { totalCount edges { node { id } } } }"
    body = await gql(query, token=tokens[Role.CUSTOMER])
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "This needs the ADMIN or CSM role; you are CUSTOMER."
    assert body["data"] is None
    body = await gql(query, token=tokens[Role.CSM])
    assert body["data"]["customers"]["totalCount"] == 1


async def test_customer_cannot_create_customers(tenant: Tenant) -> None:
    customer = await tenant.customer()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    body = await gql(
        'mutation($e: String!) { createCustomer(input: {email: $e, name: "New"}) { id } }',
        {"e": email},
        token=tokens_of(tenant, customer)[Role.CUSTOMER],
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    assert not await Customer.filter(email=email).exists()


async def test_customer_cannot_pause_but_may_mute_reminders(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    events = await OutboxEvent.filter(customer_id=customer.id).count()

    for input in ({"paused": True}, {"paused": True, "remindersEnabled": False}):
        body = await gql(SETTINGS_MUTATION, {"input": input}, token=tokens[Role.CUSTOMER])
        assert error_codes(body) == ["FORBIDDEN"], input
        assert body["data"] is None
        wf = await Workflow.get(customer_id=customer.id)
        assert (wf.paused, wf.reminders_enabled, wf.version) == (False, True, 0)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == events

    body = await gql(
        SETTINGS_MUTATION, {"input": {"remindersEnabled": False}}, token=tokens[Role.CUSTOMER]
    )
    wf = await Workflow.get(customer_id=customer.id)
    assert body == {
        "data": {
            "updateWorkflowSettings": {
                "id": str(wf.id),
                "paused": False,
                "remindersEnabled": False,
                "version": 1,
            }
        }
    }
    assert (wf.paused, wf.reminders_enabled) == (False, False)
    last = await OutboxEvent.filter(customer_id=customer.id).order_by("-sequence").first()
    assert last is not None and last.type == "workflow.settings_changed"
    assert last.actor == f"customer:{customer.email}"

    body = await gql(
        SETTINGS_MUTATION,
        {"input": {"customerId": str(customer.id), "paused": True}},
        token=tokens[Role.CSM],
    )
    assert body["data"]["updateWorkflowSettings"]["paused"] is True
    assert (await Workflow.get(customer_id=customer.id)).paused is True


async def test_customer_omitting_customer_id_gets_its_own(tenant: Tenant) -> None:
    customer = await tenant.customer()
    await tenant.customer()  # someone else in the same organization
    body = await gql(
        "{ viewer { customer { id } } customer { id email } workflow { id customer { id } } "
        "stages { id } tasks { id } }",
        token=tokens_of(tenant, customer)[Role.CUSTOMER],
    )
    assert "errors" not in body, body
    wf = await Workflow.get(customer_id=customer.id)
    stages = await WorkflowStage.filter(workflow_id=wf.id).order_by("position")
    tasks = await WorkflowTask.filter(workflow_id=wf.id).order_by("position")
    assert body["data"] == {
        "viewer": {"customer": {"id": str(customer.id)}},
        "customer": {"id": str(customer.id), "email": customer.email},
        "workflow": {"id": str(wf.id), "customer": {"id": str(customer.id)}},
        "stages": [{"id": str(s.id)} for s in stages],
        "tasks": [{"id": str(t.id)} for t in tasks],
    }
    assert len(stages) == 4 and len(tasks) >= 10

    body = await gql(
        'mutation { updateTask(input: {taskKey: "watch_intro", action: START}) '
        "{ task { id status } } }",
        token=tokens_of(tenant, customer)[Role.CUSTOMER],
    )
    watch = next(t for t in tasks if t.key == "watch_intro")
    assert body == {
        "data": {"updateTask": {"task": {"id": str(watch.id), "status": "IN_PROGRESS"}}}
    }


OMITTED_CUSTOMER_ID = {
    "customer": "{ customer { id } }",
    "workflow": "{ workflow { id } }",
    "stages": "{ stages { id } }",
    "tasks": "{ tasks { id } }",
    "updateWorkflowSettings": "mutation { updateWorkflowSettings(input: {paused: true}) { id } }",
    "updateTask": 'mutation { updateTask(input: {taskKey: "watch_intro", action: START}) '
    "{ task { id } } }",
}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.CSM])
@pytest.mark.parametrize("field", sorted(OMITTED_CUSTOMER_ID))
async def test_operator_omitting_customer_id_is_told_to_pass_it(
    tenant: Tenant, role: Role, field: str
) -> None:
    customer = await tenant.customer()
    before = await Workflow.filter(customer_id=customer.id).values()
    body = await gql(OMITTED_CUSTOMER_ID[field], token=tokens_of(tenant, customer)[role])
    assert error_codes(body) == ["VALIDATION_FAILED"], body
    error = body["errors"][0]
    assert error["message"] == OPERATOR_NEEDS_ID
    assert error["path"] == [field]
    assert error["extensions"] == {"code": "VALIDATION_FAILED", "field": "customerId"}
    assert await Workflow.filter(customer_id=customer.id).values() == before


# ---------------------------------------------------------------------------------------------
# Authentication.
# ---------------------------------------------------------------------------------------------


def claims(org: uuid.UUID, /, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "someone@example.com",
        "org": str(org),
        "role": "ADMIN",
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "iat": now,
        "exp": now + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


SECRET = SETTINGS.resolved_secret_key()
INVALID = "The bearer token is not valid: "
SEND_BEARER = "Send `Authorization: Bearer <token>` (mint one with `liftoff token`)."
USE_BEARER = "Use `Authorization: Bearer <token>`."


def signed(org: uuid.UUID, /, **changes: Any) -> str:
    return "Bearer " + jwt.encode(claims(org, **changes), SECRET, algorithm="HS256")


BAD_CREDENTIALS: dict[str, tuple[Callable[[uuid.UUID], str | None], str]] = {
    "no header": (lambda org: None, SEND_BEARER),
    "empty header": (lambda org: "", SEND_BEARER),
    "basic scheme": (lambda org: "Basic dXNlcjpwYXNz", USE_BEARER),
    "bearer without token": (lambda org: "Bearer", USE_BEARER),
    "token without scheme": (lambda org: jwt.encode(claims(org), SECRET, "HS256"), USE_BEARER),
    "not a jwt": (lambda org: "Bearer not-a-jwt", INVALID + "Not enough segments."),
    "wrong signature": (
        lambda org: "Bearer " + jwt.encode(claims(org), "some-other-secret-" * 3, "HS256"),
        INVALID + "Signature verification failed.",
    ),
    "expired": (
        lambda org: signed(org, exp=int(time.time()) - 60),
        "The token has expired; sign in again.",
    ),
    "wrong aud": (lambda org: signed(org, aud="another-api"), INVALID + "Audience doesn't match."),
    "wrong iss": (lambda org: signed(org, iss="someone-else"), INVALID + "Invalid issuer."),
    "alg none": (
        lambda org: "Bearer " + jwt.encode(claims(org), None, algorithm="none"),
        INVALID + "The specified alg value is not allowed.",
    ),
    "HS512 with the right secret": (
        lambda org: "Bearer " + jwt.encode(claims(org), SECRET, algorithm="HS512"),
        INVALID + "The specified alg value is not allowed.",
    ),
    "no exp": (lambda org: signed(org, exp=None), INVALID + 'Token is missing the "exp" claim.'),
    "no aud": (lambda org: signed(org, aud=None), INVALID + 'Token is missing the "aud" claim.'),
    "no org": (lambda org: signed(org, org=None), INVALID + 'Token is missing the "org" claim.'),
    "unknown role": (lambda org: signed(org, role="ROOT"), INVALID + "'ROOT' is not a valid Role."),
    "customer without cid": (
        lambda org: signed(org, role="CUSTOMER"),
        "A CUSTOMER token must carry a `cid` claim.",
    ),
    "customer with malformed cid": (
        lambda org: signed(org, role="CUSTOMER", cid="nope"),
        INVALID + "badly formed hexadecimal UUID string.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_bad_credentials_are_unauthenticated(tenant: Tenant, case: str) -> None:
    make, message = BAD_CREDENTIALS[case]
    header = make(tenant.id)
    query = "{ viewer { subject role } }"
    body = await gql(query, token=None, authorization=header)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert body["errors"][0]["message"] == message
    assert body["data"] is None

    email = f"intruder-{uuid.uuid4().hex[:8]}@example.com"
    body = await gql(
        'mutation($e: String!) { createCustomer(input: {email: $e, name: "Intruder"}) { id } }',
        {"e": email},
        token=None,
        authorization=header,
    )
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert not await Customer.filter(email=email).exists()


async def test_a_good_token_is_accepted(tenant: Tenant) -> None:
    body = await gql("{ viewer { subject role } }", token=None, authorization=signed(tenant.id))
    assert body == {"data": {"viewer": {"subject": "someone@example.com", "role": "ADMIN"}}}
    lower = signed(tenant.id).replace("Bearer ", "bearer ")
    body = await gql("{ viewer { role } }", token=None, authorization=lower)
    assert body == {"data": {"viewer": {"role": "ADMIN"}}}


# ---------------------------------------------------------------------------------------------
# Errors: codes everywhere, the unexpected masked and logged.
# ---------------------------------------------------------------------------------------------


async def test_every_kind_of_error_carries_its_code(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    cid = str(customer.id)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("{ viewer { subject ", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("{ nope }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("mutation { updateStage { id } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ('{ tasks(customerId: "x", status: [NOPE]) { id } }', {}, "GRAPHQL_VALIDATION_FAILED"),
        (f'{{ customer(id: "{uuid.uuid4()}") {{ id }} }}', {}, "NOT_FOUND"),
        ("{ customers(first: -1) { totalCount } }", {}, "VALIDATION_FAILED"),
        ('{ customers(after: "garbage") { totalCount } }', {}, "VALIDATION_FAILED"),
        (
            'mutation { installWorkflowTemplate(input: {definition: "key: ["}) { id } }',
            {},
            "INVALID_TEMPLATE",
        ),
        (
            "mutation($cid: ID) { updateTask(input: {customerId: $cid, "
            'taskKey: "connect_data_source", action: START}) { task { id } } }',
            {"cid": cid},
            "TASK_LOCKED",
        ),
        (
            "mutation($cid: ID) { updateTask(input: {customerId: $cid, "
            'taskKey: "verify_email", action: SKIP}) { task { id } } }',
            {"cid": cid},
            "TASK_REQUIRED",
        ),
    ]
    for query, variables, code in cases:
        body = await gql(query, variables, token=admin)
        assert error_codes(body) == [code], (query, body)
        assert MASKED not in json.dumps(body), (query, body)


@pytest.mark.parametrize("variables", [{}, {"n": "ten"}], ids=["missing", "badly typed"])
async def test_a_bad_variable_is_the_callers_error(
    tenant: Tenant, variables: dict[str, Any]
) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    body = await gql(
        "query($n: Int!) { customers(first: $n) { totalCount } }", variables, token=admin
    )
    assert error_codes(body) in (["GRAPHQL_VALIDATION_FAILED"], ["BAD_USER_INPUT"]), body
    assert body["errors"][0]["message"].startswith("Variable '$n' has invalid value"), body


async def test_an_unexpected_exception_is_masked_and_logged(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection to 10.0.0.7 failed: password hunter2")

    monkeypatch.setattr(customers_service, "get_customer", broken)
    with caplog.at_level(logging.ERROR, logger="app.graphql"):
        body = await gql(
            "query($cid: ID) { customer(id: $cid) { id } viewer { role } }",
            {"cid": str(customer.id)},
            token=tokens_of(tenant, customer)[Role.ADMIN],
        )
    assert body["data"] == {"customer": None, "viewer": {"role": "ADMIN"}}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["message"] == MASKED
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["customer"]
    assert "hunter2" not in json.dumps(body) and "RuntimeError" not in json.dumps(body)

    logged = [r for r in caplog.records if r.name == "app.graphql" and r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError
    assert "hunter2" in str(logged[0].exc_info[1])
    assert "Traceback (most recent call last)" in caplog.text
    assert "in broken" in caplog.text


async def test_an_unexpected_failure_in_a_mutation_rolls_back(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()
    events = await OutboxEvent.filter(customer_id=customer.id).count()

    async def broken(**kwargs: object) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(outbox_module, "record", broken)
    with caplog.at_level(logging.ERROR, logger="app.graphql"):
        body = await gql(
            SETTINGS_MUTATION,
            {"input": {"remindersEnabled": False}},
            token=tokens_of(tenant, customer)[Role.CUSTOMER],
        )
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (MASKED, {"code": "INTERNAL_SERVER_ERROR"})
    ]
    wf = await Workflow.get(customer_id=customer.id)
    assert (wf.reminders_enabled, wf.version) == (True, 0)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == events
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


async def test_expected_errors_are_not_logged_as_errors(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()
    with caplog.at_level(logging.DEBUG, logger="app.graphql"):
        body = await gql(
            f'{{ customer(id: "{uuid.uuid4()}") {{ id }} }}',
            token=tokens_of(tenant, customer)[Role.ADMIN],
        )
    assert error_codes(body) == ["NOT_FOUND"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# ---------------------------------------------------------------------------------------------
# Limits: refused before anything runs.
# ---------------------------------------------------------------------------------------------


def deep_settings_mutation(depth: int) -> str:
    """updateWorkflowSettings with `depth` nested object fields, the root one included."""
    selection = "id"
    for level in reversed(range(depth - 1)):
        selection = f"{'customer' if level % 2 == 0 else 'workflow'} {{ {selection} }}"
    return (
        "mutation { updateWorkflowSettings(input: {remindersEnabled: false}) "
        f"{{ {selection} }} }}"
    )


def count_tokens(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


async def settings_unchanged(customer: Customer, events: int) -> None:
    wf = await Workflow.get(customer_id=customer.id)
    assert (wf.reminders_enabled, wf.version) == (True, 0)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == events


async def assert_refused_then_allowed(
    tenant: Tenant,
    refused: str,
    allowed: str,
    code: str,
    message: str,
    operation_name: str | None = None,
) -> None:
    customer = await tenant.customer()
    customer_token = tokens_of(tenant, customer)[Role.CUSTOMER]
    events = await OutboxEvent.filter(customer_id=customer.id).count()

    body = await gql(refused, token=customer_token, operation_name=operation_name)
    assert body["data"] is None
    assert error_codes(body) == [code], body
    assert message in body["errors"][0]["message"]
    await settings_unchanged(customer, events)

    body = await gql(allowed, token=customer_token, operation_name=operation_name)
    assert "errors" not in body, body
    assert (await Workflow.get(customer_id=customer.id)).reminders_enabled is False


async def test_a_query_deeper_than_the_limit_is_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_query_depth
    await assert_refused_then_allowed(
        tenant,
        refused=deep_settings_mutation(limit + 1),
        allowed=deep_settings_mutation(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"exceeds maximum operation depth of {limit}",
    )


async def test_too_many_aliases_are_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_aliases

    def with_aliases(n: int) -> str:
        padding = " ".join(f"a{i}: __typename" for i in range(n - 1))
        return (
            "mutation { s: updateWorkflowSettings(input: {remindersEnabled: false}) { id } "
            f"{padding} }}"
        )

    await assert_refused_then_allowed(
        tenant,
        refused=with_aliases(limit + 1),
        allowed=with_aliases(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"{limit + 1} aliases found. Allowed: {limit}",
    )


async def test_too_many_tokens_are_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_tokens

    def with_tokens(n: int) -> str:
        # The padding is a list value in a second operation that never runs: repeated fields
        # would trip graphql-core's own validation budget before our limit is reached.
        base = (
            "mutation Mute { updateWorkflowSettings(input: {remindersEnabled: false}) { id } } "
            'query Pad { tasks(customerId: "x", status: [%s]) { id } }'
        )
        padding = n - count_tokens(base % "")
        document = base % " ".join(["AVAILABLE"] * padding)
        assert count_tokens(document) == n
        return document

    await assert_refused_then_allowed(
        tenant,
        refused=with_tokens(limit + 1),
        allowed=with_tokens(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"Document contains more than {limit} tokens. Parsing aborted.",
        operation_name="Mute",
    )


async def test_limits_hold_under_concurrent_requests(tenant: Tenant) -> None:
    customer = await tenant.customer()
    customer_token = tokens_of(tenant, customer)[Role.CUSTOMER]
    limit = SETTINGS.max_query_depth

    def deep_query(depth: int) -> str:
        selection = "id"
        for level in reversed(range(depth - 1)):
            selection = f"{'customer' if level % 2 == 0 else 'workflow'} {{ {selection} }}"
        return f"{{ workflow {{ {selection} }} }}"

    documents = [deep_query(limit + 1), deep_query(limit)] * 10
    bodies = await asyncio.gather(*(gql(d, token=customer_token) for d in documents))
    for document, body in zip(documents, bodies, strict=True):
        if document == deep_query(limit):
            assert "errors" not in body, body
        else:
            assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
            assert body["data"] is None
