"""Roles inside one organization over the real GraphQL API (DESIGN.md, "Tenancy and auth").

ADMIN, CSM and CUSTOMER tokens of the same organization, through the production view
(`LiftoffGraphQL`) against real PostgreSQL: what each role may and may not do.
"""

from __future__ import annotations

import uuid

import pytest

from app.accounts.models import Role
from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.onboarding.models import (
    StageOverride,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    WorkflowTemplate,
)
from app.onboarding.templates import bundled_default_text
from tests.graphql.client import SETTINGS_MUTATION, error_codes, gql, tokens_of
from tests.support.factories import Tenant

OPERATOR_NEEDS_ID = "Pass `customerId`: operators act on a named customer."

UPDATE_STAGE = """mutation($cid: ID!) { updateStage(input: {customerId: $cid, stageKey: "setup",
  action: UNLOCK, reason: "customer asked on the phone"}) { id key status } }"""
INSTALL_TEMPLATE = """mutation($d: String!) {
  installWorkflowTemplate(input: {definition: $d}) { key version } }"""


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
