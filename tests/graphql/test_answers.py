"""Consistent answers: unknown or foreign customers are NOT_FOUND everywhere; one progress scale."""

from __future__ import annotations

import uuid

import pytest

from app.accounts.models import Role
from app.events.models import OutboxEvent
from app.onboarding.states import TaskAction
from tests.graphql.client import error_codes, gql, tokens_of
from tests.support.factories import Tenant

BY_CUSTOMER = {
    "customer": "query($cid: ID) { customer(id: $cid) { id } }",
    "workflow": "query($cid: ID) { workflow(customerId: $cid) { id } }",
    "stages": "query($cid: ID) { stages(customerId: $cid) { key } }",
    "tasks": "query($cid: ID) { tasks(customerId: $cid) { key } }",
}


@pytest.mark.parametrize("field", sorted(BY_CUSTOMER))
async def test_unknown_and_foreign_customers_are_not_found(
    field: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await tenant.customer()
    theirs = await other_tenant.customer()
    for role in (Role.ADMIN, Role.CSM):
        token = tokens_of(tenant, mine)[role]
        found = await gql(BY_CUSTOMER[field], {"cid": str(mine.id)}, token=token)
        assert "errors" not in found and found["data"][field], found
        for cid in (str(uuid.uuid4()), str(theirs.id)):
            body = await gql(BY_CUSTOMER[field], {"cid": cid}, token=token)
            assert error_codes(body) == ["NOT_FOUND"], (field, role, body)
            assert body["errors"][0]["extensions"]["customer"] == cid
            assert body["data"] is None or body["data"][field] is None


PROGRESS = """query($cid: ID) {
  workflow(customerId: $cid) {
    progress
    stages { key progress tasks { key required status progress } }
  }
}"""


async def test_progress_is_a_percent_everywhere(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    await tenant.act(customer.id, "complete_profile", TaskAction.COMPLETE)
    await tenant.act(customer.id, "connect_data_source", TaskAction.COMPLETE)
    await tenant.act(customer.id, "invite_team", TaskAction.PROGRESS, progress=40)

    body = await gql(PROGRESS, {"cid": str(customer.id)}, token=admin)
    assert "errors" not in body, body
    workflow = body["data"]["workflow"]
    tasks = [t for s in workflow["stages"] for t in s["tasks"]]
    required = [t for t in tasks if t["required"]]
    done = [t for t in required if t["status"] == "COMPLETED"]
    assert len(done) == 3
    assert workflow["progress"] == round(100 * len(done) / len(required), 2)
    stages = {s["key"]: s["progress"] for s in workflow["stages"]}
    assert stages["welcome"] == 100.0 and stages["mastery"] == 0.0
    assert 0 < stages["setup"] < 100
    progressed = {t["key"]: t["progress"] for t in tasks}
    assert progressed["verify_email"] == 100 and progressed["invite_team"] == 40

    last = await OutboxEvent.filter(customer_id=customer.id).order_by("-sequence").first()
    assert last is not None and last.payload["workflow"]["progress"] == workflow["progress"]
