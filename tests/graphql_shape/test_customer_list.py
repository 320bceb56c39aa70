"""The customers list: filters, keyset pages, stored workflow figures, and a count that is run
only when asked (exact up to the limit, a labelled estimate above it)."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.customers import listing
from app.db import transaction
from app.onboarding import service
from app.onboarding.states import StageAction, TaskAction
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.graphql_shape.test_dataloaders import counting_statements
from tests.support.factories import Tenant

LIST = """
query($first: Int, $after: String, $f: CustomerFilter) {
  customers(first: $first, after: $after, filter: $f) {
    pageInfo { hasNextPage endCursor }
    edges { node { email workflow { status progress estimatedMinutesRemaining } } }
  }
}
"""
COUNTED = """
query($f: CustomerFilter) { customers(first: 2, filter: $f) {
  totalCount totalCountIsEstimate edges { node { email } } } }
"""


async def _list(gql: InProcessGraphQL, token: str, **variables: Any) -> dict[str, Any]:
    body = await gql.execute(LIST, variables, token=token)
    assert "errors" not in body, body
    return dict(body["data"]["customers"])


@pytest.fixture
def gql() -> InProcessGraphQL:
    return InProcessGraphQL(make_settings())


def _token(gql: InProcessGraphQL, tenant: Tenant) -> str:
    return token_for(
        gql.settings, organization_id=tenant.id, role=Role.CSM, subject=tenant.csm.subject
    )


async def test_filters_pages_and_stored_figures(gql: InProcessGraphQL, tenant: Tenant) -> None:
    token = _token(gql, tenant)
    made = [
        await tenant.customer(email=f"{name}@list.test", name=name.title(), user_type=kind)
        for name, kind in [("ada", "startup"), ("bob_x", "smb"), ("cy%", "startup")]
    ]
    for key in ("verify_email", "complete_profile"):
        await tenant.act(made[0].id, key, TaskAction.COMPLETE)

    everyone = await _list(gql, token, first=2)
    assert [e["node"]["email"] for e in everyone["edges"]] == ["ada@list.test", "bob_x@list.test"]
    first = everyone["edges"][0]["node"]["workflow"]
    assert first["status"] == "ACTIVE" and first["progress"] > 0
    rest = await _list(gql, token, first=2, after=everyone["pageInfo"]["endCursor"])
    assert [e["node"]["email"] for e in rest["edges"]] == ["cy%@list.test"]
    assert rest["pageInfo"]["hasNextPage"] is False

    startups = await _list(gql, token, f={"userType": "STARTUP"})
    assert [e["node"]["email"] for e in startups["edges"]] == ["ada@list.test", "cy%@list.test"]
    # LIKE wildcards in a search are literal characters
    searches = [("_x", ["bob_x@list.test"]), ("%", ["cy%@list.test"]), ("ADA", ["ada@list.test"])]
    for search, emails in searches:
        found = await _list(gql, token, f={"search": search})
        assert [e["node"]["email"] for e in found["edges"]] == emails, search
    assert (await _list(gql, token, f={"workflowStatus": "COMPLETED"}))["edges"] == []
    active = await _list(gql, token, f={"workflowStatus": "ACTIVE"})
    assert len(active["edges"]) == 3


async def test_completed_workflows_are_listed_by_status(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = _token(gql, tenant)
    customer = await tenant.customer(email="done@list.test")
    await tenant.customer(email="open@list.test")
    for key in ("welcome", "setup", "features", "mastery"):  # admin overrides, with a reason
        async with transaction():
            await service.update_stage(
                tenant.admin,
                customer_id=str(customer.id),
                stage_key=key,
                action=StageAction.COMPLETE,
                reason="Finished on a call.",
            )
    done = await _list(gql, token, f={"workflowStatus": "COMPLETED"})
    assert [e["node"]["email"] for e in done["edges"]] == ["done@list.test"]
    assert done["edges"][0]["node"]["workflow"]["progress"] == 100.0


async def test_the_count_runs_only_when_asked(gql: InProcessGraphQL, tenant: Tenant) -> None:
    token = _token(gql, tenant)
    for _ in range(3):
        await tenant.customer()
    async with gql.client() as client:
        with counting_statements() as without:
            await gql.execute(LIST, {"first": 2}, token=token, client=client)
        with counting_statements() as counted:
            body = await gql.execute(COUNTED, {}, token=token, client=client)
    assert not any("count(" in sql for sql in without), without
    assert sum("count(" in sql for sql in counted) == 1, counted
    assert body["data"]["customers"]["totalCount"] == 3
    assert body["data"]["customers"]["totalCountIsEstimate"] is False


async def test_large_counts_are_labelled_estimates(
    gql: InProcessGraphQL, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token(gql, tenant)
    for _ in range(4):
        await tenant.customer()
    monkeypatch.setattr(listing, "EXACT_COUNT_LIMIT", 2)
    body = await gql.execute(COUNTED, {}, token=token)
    data = body["data"]["customers"]
    assert data["totalCountIsEstimate"] is True
    assert data["totalCount"] >= 3  # at least what was seen exactly, else the planner's figure
