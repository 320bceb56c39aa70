"""Admin stage overrides are visible on the stage: who, when, what and why."""

from __future__ import annotations

from app.accounts.models import Role
from tests.graphql.client import gql, tokens_of
from tests.support.factories import Tenant

OVERRIDE = """mutation($c: ID!, $a: StageAction!, $r: String!) {
  updateStage(input: {customerId: $c, stageKey: "setup", action: $a, reason: $r}) {
    key status overrides { action reason actor actorRole createdAt } } }"""


async def test_overrides_are_listed_on_their_stage(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    variables = {"c": str(customer.id), "a": "UNLOCK", "r": "VIP account, skip the welcome"}
    first = (await gql(OVERRIDE, variables, token=admin))["data"]["updateStage"]
    assert first["status"] == "UNLOCKED"
    variables.update(a="COMPLETE", r="set up by our team on a call")
    second = (await gql(OVERRIDE, variables, token=admin))["data"]["updateStage"]
    assert [
        (o["action"], o["reason"], o["actor"], o["actorRole"]) for o in second["overrides"]
    ] == [
        ("UNLOCK", "VIP account, skip the welcome", tenant.admin.subject, "ADMIN"),
        ("COMPLETE", "set up by our team on a call", tenant.admin.subject, "ADMIN"),
    ]
    stages = await gql(
        "query($c: ID) { stages(customerId: $c) { key overrides { action } } }",
        {"c": str(customer.id)},
        token=tokens_of(tenant, customer)[Role.CSM],
    )
    by_key = {s["key"]: [o["action"] for o in s["overrides"]] for s in stages["data"]["stages"]}
    assert by_key == {"welcome": [], "setup": ["UNLOCK", "COMPLETE"], "features": [], "mastery": []}
