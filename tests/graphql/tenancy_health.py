"""Health fields of the tenancy walk: the victim has a score, history, an override, a job."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app.customers.listing import Order, health_cursor
from app.db import transaction
from app.health import daily, overrides, recompute
from app.health.definitions import bundled_default_text
from app.health.models import HealthJob, HealthModel, HealthOverride, HealthScore, HealthSnapshot
from app.health.rules import HealthLevel
from app.kit.clock import utcnow

if TYPE_CHECKING:
    from tests.graphql.test_tenancy import Case, World

HEALTH_FIELDS = """customerId score level computedScore confidence modelVersion segment
  components { key value weight contribution explanation } riskFactors { message impact }
  override { id reason createdBy } delta7d delta30d
  changesSince(days: 0) { delta changes { message } }"""


async def prepare(w: World) -> dict[str, Any]:
    """Scores for both organizations, an override and a job on the victim's; with the
    victim's secrets."""
    await daily.snapshot_organization(w.victim.id, now=utcnow())
    await recompute.recompute_all(w.other.id)
    async with transaction():
        override, _, _ = await overrides.set_override(
            w.victim.csm,
            customer_id=str(w.customer.id),
            score=12,
            level=HealthLevel.CRITICAL,
            reason="Victim's renewal is in danger",
            expires_at=utcnow() + timedelta(days=3),
            now=utcnow(),
        )
        job = await recompute.start_job(w.victim.admin, recompute.Scope())
    model = await HealthModel.get(organization_id=w.victim.id)
    secrets = {str(override.id), str(job.id), str(model.id), "Victim's renewal is in danger"}
    return {"job": str(job.id), "secrets": secrets}


async def snapshot(w: World) -> dict[str, Any]:
    org = w.victim.id
    return {
        "scores": await HealthScore.filter(organization_id=org).order_by("id").values(),
        "snapshots": await HealthSnapshot.filter(organization_id=org).count(),
        "overrides": await HealthOverride.filter(organization_id=org).order_by("id").values(),
        "jobs": await HealthJob.filter(organization_id=org).order_by("id").values(),
        "models": await HealthModel.filter(organization_id=org).count(),
    }


def cases() -> list[Case]:
    from tests.graphql.test_tenancy import (
        OTHER_ADMIN,
        OTHER_CUSTOMER,
        Case,
        Own,
        Refused,
        victim,
    )

    refused = {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")}
    admin_only = {OTHER_CUSTOMER: Refused("FORBIDDEN")}

    async def other_distribution(data: Any, w: World) -> None:
        total = await HealthScore.filter(organization_id=w.other.id).count()
        assert data["overall"]["total"] == total > 0
        assert w.customer.user_type not in {s["segment"] for s in data["segments"]}

    async def other_models(data: Any, w: World) -> None:
        rows = await HealthModel.filter(organization_id=w.other.id).values_list("id", flat=True)
        assert {m["id"] for m in data} == {str(i) for i in rows}

    async def other_model_installed(data: Any, w: World) -> None:
        row = await HealthModel.get(id=data["id"])
        assert row.organization_id == w.other.id and row.version == 2  # type: ignore[attr-defined]

    async def other_customers_by_health(data: Any, w: World) -> None:
        from tests.graphql.test_tenancy import other_org_customer_ids

        ids = [e["node"]["id"] for e in data["edges"]]
        assert ids and set(ids) == await other_org_customer_ids(w), ids
        scores = [e["node"]["health"]["score"] for e in data["edges"] if e["node"]["health"]]
        assert scores and scores == sorted(scores), scores  # the unscored come last
        assert all(e["node"]["health"] is None for e in data["edges"][len(scores) :])

    async def other_customers_critical_near_12(data: Any, w: World) -> None:
        rows = await HealthScore.filter(
            organization_id=w.other.id, level="CRITICAL", score__lt=13, score__gt=11
        )
        assert {e["node"]["id"] for e in data["edges"]} == {
            str(r.customer_id)  # type: ignore[attr-defined]
            for r in rows
        }
        assert data["totalCount"] == len(rows)

    async def empty_job_in_other_org(data: Any, w: World) -> None:
        row = await HealthJob.get(id=data["id"])
        assert row.organization_id == w.other.id and row.total == 0  # type: ignore[attr-defined]

    by_health = (
        "query($after: String, $f: CustomerFilter) { customers(first: 100, after: $after, "
        "filter: $f, orderBy: HEALTH_ASC) { totalCount edges { node { id health { score } } } } }"
    )
    return [
        Case(
            "Query.customers",
            "customers by health after the victim's health cursor",
            by_health,
            lambda w: {"after": health_cursor(Order.HEALTH_ASC, -1.0, w.customer.id)},
            {OTHER_ADMIN: Own(other_customers_by_health), **admin_only},
        ),
        Case(
            "Query.customers",
            "customers at the victim's overridden health level",
            by_health,
            lambda w: {"f": {"healthLevel": "CRITICAL", "healthBelow": 13, "healthAbove": 11}},
            {OTHER_ADMIN: Own(other_customers_critical_near_12), **admin_only},
        ),
        Case(
            "Query.healthScore",
            "healthScore of the victim",
            f"query($cid: ID) {{ healthScore(customerId: $cid) {{ {HEALTH_FIELDS} }} }}",
            victim,
            refused,
        ),
        Case(
            "Query.healthHistory",
            "healthHistory of the victim",
            "query($cid: ID) { healthHistory(customerId: $cid, days: 30) "
            "{ takenAt score level changes { message } } }",
            victim,
            refused,
        ),
        Case(
            "Query.healthDistribution",
            "healthDistribution filtered by the victim's segment",
            "query($u: String) { healthDistribution(filter: {userType: $u}) "
            "{ overall { total } segments { segment } } }",
            lambda w: {"u": w.customer.user_type},
            {OTHER_ADMIN: Own(_empty_distribution), **admin_only},
        ),
        Case(
            "Query.healthDistribution",
            "healthDistribution",
            "{ healthDistribution { overall { total average levels { level count } "
            "histogram { low count } } segments { segment total } } }",
            lambda w: {},
            {OTHER_ADMIN: Own(other_distribution), **admin_only},
        ),
        Case(
            "Query.healthJob",
            "healthJob of the victim's organization",
            "query($id: ID!) { healthJob(id: $id) { id status progress } }",
            lambda w: {"id": w.extra["job"]},
            refused,
        ),
        Case(
            "Query.healthModels",
            "healthModels",
            "{ healthModels { id version definition } }",
            lambda w: {},
            {OTHER_ADMIN: Own(other_models), **admin_only},
        ),
        Case(
            "Mutation.installHealthModel",
            "installHealthModel",
            "mutation($d: String!) { installHealthModel(input: {definition: $d}) { id version } }",
            lambda w: {"d": bundled_default_text()},
            {OTHER_ADMIN: Own(other_model_installed), **admin_only},
        ),
        Case(
            "Mutation.recalculateHealthScores",
            "recalculateHealthScores of the victim",
            "mutation($cid: ID!) { recalculateHealthScores(filter: {customerIds: [$cid]}) "
            "{ id total } }",
            victim,
            {OTHER_ADMIN: Own(empty_job_in_other_org), **admin_only},
        ),
        Case(
            "Mutation.overrideHealthScore",
            "overrideHealthScore of the victim",
            "mutation($cid: ID!, $at: DateTime!) { overrideHealthScore(input: {customerId: "
            '$cid, score: 99, reason: "takeover", expiresAt: $at}) { score } }',
            lambda w: {**victim(w), "at": (utcnow() + timedelta(days=1)).isoformat()},
            refused,
        ),
        Case(
            "Mutation.clearHealthOverride",
            "clearHealthOverride of the victim",
            "mutation($cid: ID!) { clearHealthOverride(customerId: $cid) { score } }",
            victim,
            refused,
        ),
    ]


async def _empty_distribution(data: Any, w: World) -> None:
    assert data["overall"]["total"] == 0 and data["segments"] == []
