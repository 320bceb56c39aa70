"""Milestone fields of the tenancy walk: the victim has achieved a milestone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.customers.models import Customer
from app.db import transaction
from app.kit.clock import utcnow
from app.milestones import service
from app.milestones.definitions import bundled_default_text
from app.milestones.models import MilestoneAchievement, MilestoneSet
from app.usage.rules import EventIn
from app.usage.service import ingest_events

if TYPE_CHECKING:
    from tests.graphql.test_tenancy import Case, World

PROGRESS_FIELDS = """key name current target percent missing achieved achievedAt
  timesAchieved reward { points badge { key } } criteria"""


async def prepare(w: World) -> set[str]:
    """The victim's first project, evaluated into an achievement; the victim's secrets."""
    event = EventIn(
        name="project_created",
        occurred_at=utcnow(),
        idempotency_key=f"tenancy-{w.customer.id}",
        customer_id=str(w.customer.id),
    )
    async with transaction():
        await ingest_events(w.victim.admin, events=[event], actor="test", retention_days=400)
        done = await service.evaluate_customers(
            w.victim.id, [w.customer.id], now=utcnow(), award=False
        )
    assert [a.milestone.key for a in done] == ["first_project"]
    sets = await MilestoneSet.filter(organization_id=w.victim.id).values_list("id", flat=True)
    return {str(i) for i in sets}


async def snapshot(w: World) -> dict[str, Any]:
    org = w.victim.id
    return {
        "achievements": await MilestoneAchievement.filter(organization_id=org)
        .order_by("id")
        .values(),
        "sets": await MilestoneSet.filter(organization_id=org).order_by("id").values(),
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

    admin_only = {OTHER_CUSTOMER: Refused("FORBIDDEN")}

    async def other_sets(data: Any, w: World) -> None:
        rows = await MilestoneSet.filter(organization_id=w.other.id).values_list("id", flat=True)
        assert {s["id"] for s in data} == {str(i) for i in rows} and rows

    async def other_stats(data: Any, w: World) -> None:
        achieved = await MilestoneAchievement.filter(organization_id=w.other.id).count()
        assert sum(s["overall"]["achieved"] for s in data) == achieved == 0
        customers = await Customer.filter(organization_id=w.other.id).count()
        assert {s["overall"]["customers"] for s in data} == {customers}
        labels = {x["label"] for s in data for x in s["byUserType"]}
        assert w.customer.user_type not in labels

    async def installed_in_other_org(data: Any, w: World) -> None:
        row = await MilestoneSet.get(id=data["id"])
        assert row.organization_id == w.other.id and row.version == 2  # type: ignore[attr-defined]

    return [
        Case(
            "Query.milestones",
            "milestones of the victim",
            f"query($cid: ID) {{ milestones(customerId: $cid) {{ {PROGRESS_FIELDS} }} }}",
            victim,
            {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")},
        ),
        Case(
            "Query.milestoneSets",
            "milestoneSets",
            "{ milestoneSets { id version name milestoneCount definition createdBy } }",
            lambda w: {},
            {OTHER_ADMIN: Own(other_sets), **admin_only},
        ),
        Case(
            "Query.milestoneStats",
            "milestoneStats",
            "{ milestoneStats { key overall { customers achieved rate medianDaysToAchieve } "
            "byUserType { label achieved } byAcquisitionChannel { label achieved } } }",
            lambda w: {},
            {OTHER_ADMIN: Own(other_stats), **admin_only},
        ),
        Case(
            "Mutation.installMilestoneSet",
            "installMilestoneSet",
            "mutation($d: String!) { installMilestoneSet(input: {definition: $d}) { id version } }",
            lambda w: {"d": bundled_default_text()},
            {OTHER_ADMIN: Own(installed_in_other_org), **admin_only},
        ),
    ]
