"""The customers list by health: level and score filters, HEALTH_ASC/HEALTH_DESC keyset pages
over tied scores with the unscored customers last, and cursors that belong to their order."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.health import recompute
from app.health.models import HealthScore
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.support.factories import Tenant

LIST = """
query($first: Int, $after: String, $f: CustomerFilter, $o: CustomerOrder!) {
  customers(first: $first, after: $after, filter: $f, orderBy: $o) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id health { score level } } }
  }
}
"""


@pytest.fixture
def gql() -> InProcessGraphQL:
    return InProcessGraphQL(make_settings())


async def _ask(gql: InProcessGraphQL, token: str, **variables: Any) -> dict[str, Any]:
    body = await gql.execute(LIST, {"o": "CREATED_ASC", **variables}, token=token)
    assert "errors" not in body, body
    return dict(body["data"]["customers"])


async def _walk(gql: InProcessGraphQL, token: str, size: int, **variables: Any) -> list[str]:
    """Every id of the list, page by page, checking each page's info."""
    seen: list[str] = []
    after = None
    while True:
        page = await _ask(gql, token, first=size, after=after, **variables)
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert len(page["edges"]) <= size
        seen += [e["node"]["id"] for e in page["edges"]]
        if page["edges"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        assert len(page["edges"]) == size
        after = page["pageInfo"]["endCursor"]


async def _scores(tenant: Tenant, rng: random.Random) -> dict[str, tuple[float, str]]:
    """Scores with many ties, written over the computed ones; level from the default
    thresholds' shape (70 / 40)."""
    rows = await HealthScore.filter(organization_id=tenant.id)
    out = {}
    for row in rows:
        score = float(rng.choice([5, 12.5, 40, 40, 55.25, 70, 70, 88, 100]))
        level = "HEALTHY" if score >= 70 else "AT_RISK" if score >= 40 else "CRITICAL"
        await get_connection("default").execute_query(
            "UPDATE health_score SET score = $1, level = $2, computed_score = $1, "
            "computed_level = $2 WHERE id = $3",
            [score, level, row.id],
        )
        out[str(row.customer_id)] = (score, level)  # type: ignore[attr-defined]
    return out


async def test_health_filters_and_orders_page_through_ties(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = token_for(
        gql.settings, organization_id=tenant.id, role=Role.CSM, subject=tenant.csm.subject
    )
    customers = [await tenant.customer() for _ in range(14)]
    await recompute.recompute_all(tenant.id)
    unscored = {str(c.id) for c in customers[:3]}
    await get_connection("default").execute_query(
        "DELETE FROM health_score WHERE customer_id = ANY($1::uuid[])", [list(unscored)]
    )
    scores = await _scores(tenant, random.Random(10))
    signup = [str(c.id) for c in customers]

    ascending = sorted(scores, key=lambda cid: (scores[cid][0], cid))
    descending = sorted(scores, key=lambda cid: (scores[cid][0], cid), reverse=True)
    last = sorted(unscored)
    for size in (1, 3, 4, 100):
        assert await _walk(gql, token, size, o="HEALTH_ASC") == ascending + last, size
        assert await _walk(gql, token, size, o="HEALTH_DESC") == descending + last, size
        assert await _walk(gql, token, size) == signup, size

    def expected(keep: Any, order: list[str]) -> list[str]:
        return [cid for cid in order if cid in scores and keep(*scores[cid])]

    cases: list[tuple[dict[str, Any], Any]] = [
        ({"healthLevel": "AT_RISK"}, lambda s, lv: lv == "AT_RISK"),
        ({"healthBelow": 40}, lambda s, lv: s < 40),
        ({"healthAbove": 40}, lambda s, lv: s > 40),
        ({"healthAbove": 12.5, "healthBelow": 70}, lambda s, lv: 12.5 < s < 70),
        ({"healthLevel": "HEALTHY", "healthBelow": 100}, lambda s, lv: lv == "HEALTHY" and s < 100),
    ]
    for f, keep in cases:
        for order, ids in (("HEALTH_ASC", ascending), ("HEALTH_DESC", descending)):
            want = expected(keep, ids)
            assert want, f
            assert await _walk(gql, token, 2, f=f, o=order) == want, (f, order)
        assert await _walk(gql, token, 2, f=f) == expected(keep, signup), f
        counted = await _ask(gql, token, first=1, f=f)
        assert counted["totalCount"] == len(want), f
        page = await _ask(gql, token, first=100, f=f, o="HEALTH_ASC")
        for edge in page["edges"]:
            shown = edge["node"]["health"]
            assert (shown["score"], shown["level"]) == scores[edge["node"]["id"]]


async def test_cursors_belong_to_their_order_and_bounds_are_checked(
    gql: InProcessGraphQL, tenant: Tenant
) -> None:
    token = token_for(
        gql.settings, organization_id=tenant.id, role=Role.CSM, subject=tenant.csm.subject
    )
    for _ in range(3):
        await tenant.customer()
    await recompute.recompute_all(tenant.id)
    by_health = await _ask(gql, token, first=1, o="HEALTH_ASC")
    by_signup = await _ask(gql, token, first=1)
    for cursor, order in (
        (by_health["pageInfo"]["endCursor"], "CREATED_ASC"),
        (by_health["pageInfo"]["endCursor"], "HEALTH_DESC"),
        (by_signup["pageInfo"]["endCursor"], "HEALTH_ASC"),
    ):
        body = await gql.execute(LIST, {"first": 1, "after": cursor, "o": order}, token=token)
        assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED", (order, body)
    for bound in (-1, 101):
        body = await gql.execute(
            LIST, {"first": 1, "f": {"healthBelow": bound}, "o": "HEALTH_ASC"}, token=token
        )
        assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED", body
