"""The customers list: filters, keyset pages, stored workflow figures, and a count that is run
only when asked (exact up to the limit, a labelled estimate above it)."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.customers import listing
from app.customers.models import Customer
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


async def test_a_page_reads_its_workflows_in_its_own_statement(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = _token(gql, tenant)
    made = [await tenant.customer() for _ in range(3)]
    await tenant.act(made[1].id, "verify_email", TaskAction.COMPLETE)
    async with gql.client() as client:
        await gql.execute("{ viewer { role } }", token=token, client=client)  # token check
        with counting_statements() as statements:
            listed = await _list(gql, token, first=3)
        # fragments and aliases reach the workflow too
        fragment = await gql.execute(
            "query { customers(first: 3) { edges { node { ...W } } } }"
            " fragment W on Customer { email wf: workflow { status progress } }",
            token=token,
            client=client,
        )
        one = await gql.execute(
            "query($id: ID) { customer(id: $id) { workflow { status progress } } }",
            {"id": str(made[1].id)},
            token=token,
            client=client,
        )
    assert len(statements) == 1 and "JOIN workflow" in statements[0], statements
    figures = [e["node"]["workflow"] for e in listed["edges"]]
    assert figures[1]["progress"] > 0 and figures[0]["progress"] == 0
    assert one["data"]["customer"]["workflow"]["progress"] == figures[1]["progress"]
    wf = [e["node"]["wf"] for e in fragment["data"]["customers"]["edges"]]
    assert [w["progress"] for w in wf] == [f["progress"] for f in figures]


@pytest.mark.parametrize(
    "plan",
    [
        "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off",  # the index walk
        "SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off",  # trigrams
    ],
)
async def test_search_pages_are_the_same_whichever_plan_finds_them(
    gql: InProcessGraphQL, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    token = _token(gql, tenant)
    names = ["Ana Garcia", "Bo Lind", "Cy GARCIA", "Di Park", "Ed Garciaz", "Fa Lind"]
    for i, name in enumerate(names * 2):
        await tenant.customer(name=name, email=f"p{i}@search.test")
    await tenant.customer(name="Gus Moe", email="garcia.moe@search.test")  # by email

    async def pages(search: str) -> list[str]:
        seen, after = [], None
        while True:
            page = await _list(gql, token, first=2, after=after, f={"search": search})
            seen += [e["node"]["email"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return seen
            after = page["pageInfo"]["endCursor"]

    planner = {term: await pages(term) for term in ("garcia", "lind", "zqxj")}
    monkeypatch.setattr(listing, "_SETTINGS", f"{listing._SETTINGS}; {plan}")
    forced = {term: await pages(term) for term in planner}
    assert forced == planner
    assert planner["garcia"] == [f"p{i}@search.test" for i in (0, 2, 4, 6, 8, 10)] + [
        "garcia.moe@search.test"
    ]
    assert planner["zqxj"] == []


async def test_search_matches_name_or_email_case_insensitively_never_across_them(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = _token(gql, tenant)
    await tenant.customer(name="Jörg MÜLLER", email="jm@Umlaut.test")
    await tenant.customer(name="Zed Ab", email="cd@span.test")
    renamed = await tenant.customer(name="Old Name", email="rn@span.test")
    await Customer.filter(id=renamed.id).update(name="Ingrid Østergaard")

    async def emails(term: str) -> list[str]:
        found = await _list(gql, token, f={"search": term})
        return [e["node"]["email"].lower() for e in found["edges"]]

    with counting_statements() as statements:
        assert await emails("müller") == ["jm@umlaut.test"]  # lower() of non-ASCII letters
    assert any("search_text LIKE" in sql for sql in statements), statements
    assert await emails("RG mü") == ["jm@umlaut.test"]
    assert await emails("UMLAUT.T") == ["jm@umlaut.test"]
    assert await emails("østergaard") == ["rn@span.test"]  # kept up to date on update
    assert await emails("old name") == []
    # name "Zed Ab" and email "cd@..." are searched apart: no match across the two
    assert await emails("abcd") == []
    assert await emails("ab\x1fcd") == []  # the separator itself: name and email with ILIKE
    assert await emails("ab") == ["cd@span.test"]


async def test_counts_of_indexed_filters_walk_their_index(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = _token(gql, tenant)
    for _ in range(3):
        await tenant.customer(acquisition_channel="ads")
    counted: dict[str, list[str]] = {}
    async with gql.client() as client:
        for name, where in {
            "none": {},
            "channel": {"acquisitionChannel": "ads"},
            "search": {"search": "customer"},
        }.items():
            with counting_statements() as statements:
                body = await gql.execute(COUNTED, {"f": where}, token=token, client=client)
            assert body["data"]["customers"]["totalCount"] == 3, body
            counted[name] = [sql for sql in statements if "count(" in sql]
    # in index order, so the planner reads that index's range (index-only), not the table
    assert all("ORDER BY created_at, id" in sql for sql in counted["none"] + counted["channel"])
    # a search is left to the planner: the trigram indexes may be the way
    assert not any("ORDER BY" in sql for sql in counted["search"])
